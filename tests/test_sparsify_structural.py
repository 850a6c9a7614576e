"""Token, head and layer pruning on every backbone: the compacted model computes what the masked
model computed, is really smaller, learns its masks, and refuses impossible settings."""
from __future__ import annotations

import copy
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch_geometric.data import Batch, Data

from gtsp.accounting.flops import analytic_flops_per_graph
from gtsp.data.info import DatasetInfo
from gtsp.data.transforms import FEATURES
from gtsp.errors import GtspError
from gtsp.models import MODELS, build_model
from gtsp.nn.attention import MultiHeadSelfAttention
from gtsp.sparsify import CompositeSparsifier
from gtsp.sparsify.head import HeadSparsifier
from gtsp.sparsify.layer import LayerSparsifier, SkippableLayer
from gtsp.sparsify.plan import apply_plan
from gtsp.sparsify.token import TokenSparsifier
from gtsp.sparsify.token_selector import TokenSelector
from tests.conftest import random_graph

INFO = DatasetInfo("tiny", 7, 4, False, "multiclass", 2, "accuracy", True)
BACKBONES = ("gps", "graphtrans", "graphormer")
DIMENSIONS = ("token", "head", "layer")
HPARAMS = {
    "gps": dict(dropout=0.0, attn_dropout=0.0),
    "graphtrans": dict(gnn_layers=1, dropout=0.0, attn_dropout=0.0),
    "graphormer": dict(dropout=0.0, attn_dropout=0.0),
}
SIZES = (3, 9, 5, 14)  # graphs of different sizes: padding and per-graph k both matter


def make_model(name: str, layers: int = 2, heads: int = 4, seed: int = 0, **extra):
    torch.manual_seed(seed)
    return build_model(name, INFO, hidden=32, layers=layers, heads=heads, **(HPARAMS[name] | extra))


def make_graphs(name: str, sizes=SIZES, seed: int = 0) -> list[Data]:
    features = MODELS[name].required_features(HPARAMS[name])
    graphs = []
    for i, n in enumerate(sizes):
        graph = random_graph(n, seed=seed + i, rwse=False)
        for feature in features:
            graph = FEATURES[feature]()(graph)
        graphs.append(graph)
    return graphs


def batch_of(name: str, sizes=SIZES, seed: int = 0) -> Batch:
    return Batch.from_data_list(make_graphs(name, sizes, seed))


def train_steps(model, sparsifier, batch: Batch, steps: int = 4) -> None:
    """A few optimiser steps calling the hooks as the trainer does."""
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-2)
    model.train()
    for step in range(1, steps + 1):
        loss = F.cross_entropy(model(batch), batch.y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        sparsifier.on_step(step)
    sparsifier.on_epoch_end(1)


def make_sparsifier(dimension: str, **options):
    if dimension == "token":
        return TokenSparsifier(0.5, **options)
    if dimension == "head":
        return HeadSparsifier(0.5, **({"update_every": 1} | options))
    return LayerSparsifier(0.5, **({"drop_prob": 0.25} | options))  # every layer runs in a few steps


def paper_style_attention(self, x, mask=None, bias=None, prefix=0):
    """The masked model of token pruning: every token stays in the sequence, the dropped ones are
    hidden as keys and get no output (what the paper's code does, at full cost)."""
    index, kept, _ = self.token_selector(x, mask, prefix)
    keep = torch.zeros(x.shape[:2], dtype=torch.bool).scatter(1, index, kept)
    return self._attend(x, keep, bias) * keep.unsqueeze(-1)


def attention_lengths(model) -> list[tuple[int, int]]:
    """``(L, K)`` per attention call of one forward: the input length and the attended length."""
    seen = []
    for module in model.modules():
        if isinstance(module, TokenSelector):
            module.register_forward_hook(lambda m, args, out: seen.append((args[0].size(1), out[0].size(1))))
    return seen


# ---- the compacted model is the masked model, only smaller --------------------------------------------
@pytest.mark.parametrize("dimension", DIMENSIONS)
@pytest.mark.parametrize("name", BACKBONES)
def test_compacted_computes_what_masked_computed(name: str, dimension: str, monkeypatch) -> None:
    layers = 4 if dimension == "layer" else 2
    model = make_model(name, layers=layers)
    dense = copy.deepcopy(model)
    sparsifier = make_sparsifier(dimension)
    sparsifier.prepare(model)
    train_steps(model, sparsifier, batch_of(name, seed=10))
    batch = batch_of(name)
    model.eval()

    with torch.no_grad():
        if dimension == "token":
            with monkeypatch.context() as patch:
                patch.setattr(MultiHeadSelfAttention, "forward", paper_style_attention)
                masked = model(batch)
        elif dimension == "layer":
            removed = sparsifier.mask(model)
            assert len(removed) == 2
            masked = model(batch)
        else:
            masked = model(batch)
        compacted, plan = sparsifier.compact(model)
        compacted.eval()
        lengths = attention_lengths(compacted)
        out = compacted(batch)
        # the plan + the backbone's hyper-parameters + a plain state_dict rebuild the same model
        rebuilt = apply_plan(make_model(name, layers=layers, seed=7), plan)
        rebuilt.load_state_dict(compacted.state_dict())
        again = rebuilt.eval()(batch)
    assert (out - masked).abs().max() < 1e-4
    assert torch.equal(again, out)

    if dimension == "token":
        assert lengths and all(k < length for length, k in lengths)
    elif dimension == "head":
        for attention in (m for m in compacted.modules() if isinstance(m, MultiHeadSelfAttention)):
            assert attention.num_heads == 2
            assert attention.qkv.weight.shape == (3 * 2 * attention.head_dim, 32)
            assert attention.out.weight.shape == (32, 2 * attention.head_dim)
    else:
        assert len(compacted.layers) == 2
        assert not any(isinstance(layer, SkippableLayer) for layer in compacted.layers)
    flops = [analytic_flops_per_graph(m, make_graphs(name, (20, 12)))["dense"] for m in (dense, compacted)]
    assert flops[1] < flops[0]


@pytest.mark.parametrize("name", BACKBONES)
def test_head_compaction_removes_about_half_the_attention_flops(name: str) -> None:
    # No local MPNN in GPS and no edge encoding in Graphormer: attention is then the only thing heads touch.
    model = make_model(name, **{"gps": {"local": "none"}, "graphormer": {"max_path": 0}}.get(name, {}))
    dense = copy.deepcopy(model)
    sparsifier = HeadSparsifier(0.5)
    sparsifier.prepare(model)
    compacted, _ = sparsifier.compact(model)
    graphs = make_graphs(name, (16,))

    def attention_flops(net) -> float:
        return analytic_flops_per_graph(net, graphs)["dense"]

    saved = attention_flops(dense) - attention_flops(compacted)
    attention = dense.layers[0].attention
    length = 16 + (name != "gps")  # GraphTrans and Graphormer add one prefix token
    per_layer = 4 * attention.num_heads * length ** 2 * attention.head_dim + 2 * length * 32 * 32 * 4
    assert saved == pytest.approx(0.5 * len(dense.layers) * per_layer, rel=1e-6)


# ---- masks are learned ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", BACKBONES)
def test_gradients_reach_the_token_scorers(name: str) -> None:
    model = make_model(name, layers=3)
    TokenSparsifier(0.5).prepare(model)
    batch = batch_of(name)
    model.train()
    F.cross_entropy(model(batch), batch.y).backward()
    selectors = [m for m in model.modules() if isinstance(m, TokenSelector)]
    assert len(selectors) == 3
    # The gate scales the kept tokens going INTO attention, so even the last layer of a [CLS]/[VNode]
    # readout (whose node outputs are never read) trains its scorer through the special token's output.
    for selector in selectors:
        assert selector.scorer.weight.grad is not None and selector.scorer.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("name", BACKBONES)
def test_head_scores_accumulate_for_active_and_inactive_heads(name: str) -> None:
    model = make_model(name)
    HeadSparsifier(0.5).prepare(model)
    batch = batch_of(name)
    model.train()
    F.cross_entropy(model(batch), batch.y).backward()
    for _, attention in model.attention_modules():
        assert (attention.head_transform.gate == 0).sum() == 2
        assert (attention.head_transform.scores > 0).all()  # inactive heads too: the gate's gradient exists at 0


# ---- per-graph k, padding, prefix -------------------------------------------------------------------
def test_selector_keeps_a_share_of_each_graph_and_never_padding() -> None:
    torch.manual_seed(0)
    selector = TokenSelector(8, ratio=0.5)
    x = torch.randn(2, 20, 8)
    mask = torch.arange(20).unsqueeze(0) < torch.tensor([[4], [20]])
    for training in (True, False):
        selector.train(training)
        index, kept, gate = selector(x, mask)
        assert index.shape == (2, 10)
        assert kept.sum(1).tolist() == [2, 10]
        assert mask.gather(1, index)[kept].all()
        assert torch.equal(gate, kept.float())  # exactly 1 at kept slots, also in training
        assert all(row.unique().numel() == row.numel() for row in index)  # scatter-back never collides


@pytest.mark.parametrize("name", BACKBONES)
def test_model_keeps_k_per_graph_and_always_the_prefix(name: str) -> None:
    model = make_model(name)
    TokenSparsifier(0.5).prepare(model)
    calls = []
    for selector in (m for m in model.modules() if isinstance(m, TokenSelector)):
        selector.register_forward_hook(lambda m, args, out: calls.append((args[1], args[2], *out)))
    batch = batch_of(name, sizes=(4, 20))
    prefix = 0 if name == "gps" else 1
    for training in (True, False):
        model.train(training)
        calls.clear()
        with torch.no_grad():
            model(batch)
        assert len(calls) == 2
        for mask, passed_prefix, index, kept, gate in calls:
            assert passed_prefix == prefix  # the layer passes its layout's prefix: nothing to guess
            assert kept.sum(1).tolist() == [prefix + 2, prefix + 10]
            assert mask.gather(1, index)[kept].all()  # padding never selected
            if prefix:
                assert (index[:, 0] == 0).all() and kept[:, 0].all()  # the special token stays
                assert (index[:, 1:] > 0).all()  # and is not counted among the nodes
            assert torch.equal(gate, kept.float())


def test_token_summary_reports_the_kept_fraction() -> None:
    model = make_model("gps")
    sparsifier = TokenSparsifier(0.5)
    sparsifier.prepare(model)
    model.eval()
    with torch.no_grad():
        model(batch_of("gps", sizes=(4, 20)))
    sparsifier.on_epoch_end(1)
    assert sparsifier.summary()["kept_token_fraction"] == pytest.approx(12 / 24)


# ---- schedules --------------------------------------------------------------------------------------
def test_dynamic_heads_change_at_update_steps_at_fixed_density() -> None:
    model = make_model("graphtrans", heads=8)
    sparsifier = HeadSparsifier(0.5, update_every=2, death_ratio=0.5)
    sparsifier.prepare(model)
    sparsifier.schedule(epochs=10, steps_per_epoch=2)
    before = sparsifier.active_heads()
    train_steps(model, sparsifier, batch_of("graphtrans"), steps=1)
    assert sparsifier.active_heads() == before  # no update before update_every steps
    sparsifier.on_step(2)
    after = sparsifier.active_heads()
    assert all(len(a) == 4 for a in after)
    assert all(len(set(a) - set(b)) == 2 for a, b in zip(after, before))  # half the active heads replaced
    # Updates stop after 90% of training (step 18 of 20), and only then may an epoch be selected.
    assert sparsifier.last_update_step == 18
    assert not sparsifier.selectable(8) and sparsifier.selectable(9)
    sparsifier.on_step(20)
    assert sparsifier.active_heads() == after


def test_topk_heads_train_dense_then_keep_the_best() -> None:
    model = make_model("gps")
    sparsifier = HeadSparsifier(0.5, mode="topk")
    sparsifier.prepare(model)
    sparsifier.schedule(epochs=4, steps_per_epoch=1)
    gate = model.layers[0].attention.head_transform
    assert gate.gate.tolist() == [1.0] * 4
    sparsifier.on_epoch_end(1)
    assert not sparsifier.selectable(1)
    gate.scores.copy_(torch.tensor([0.1, 3.0, 0.2, 2.0]))
    sparsifier.on_epoch_end(2)
    assert gate.gate.tolist() == [0.0, 1.0, 0.0, 1.0]
    assert sparsifier.selectable(2)


def test_layer_drop_skips_whole_layers_in_training_only() -> None:
    class Count(torch.nn.Module):
        calls = 0

        def forward(self, x, ctx):
            Count.calls += 1
            return x + 1

    torch.manual_seed(0)
    wrapper = SkippableLayer(Count(), drop_prob=0.5)
    x = torch.zeros(3, 4)
    ctx = SimpleNamespace(token_weights=lambda rows: torch.ones(rows.size(0)))  # every row a real token
    for _ in range(200):
        wrapper(x, ctx)
    assert 60 < Count.calls < 140
    assert int(wrapper.batches) == Count.calls  # redundancy measured on every batch the layer ran
    wrapper.eval()
    Count.calls = 0
    assert torch.equal(wrapper(x, ctx), x + 1) and Count.calls == 1


def test_layer_redundancy_is_measured_per_layer() -> None:
    model = make_model("graphormer", layers=3)
    sparsifier = LayerSparsifier(0.34, drop_prob=0.0, criterion="cka")
    sparsifier.prepare(model)
    train_steps(model, sparsifier, batch_of("graphormer"))
    scores = sparsifier.layer_redundancy()
    assert all(-1.0 <= s <= 1.0 for s in scores["cosine"])
    assert all(0.0 <= s <= 1.0 + 1e-6 for s in scores["cka"])
    assert sparsifier.choose() == [int(torch.tensor(scores["cka"]).argmax())]
    measured = sparsifier.measure_redundancy([batch_of("graphormer", seed=5)])
    assert None not in measured["cosine"] and None not in measured["cka"]


# ---- refusals ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", (TokenSparsifier, HeadSparsifier, LayerSparsifier))
@pytest.mark.parametrize("ratio", (1.0, -0.1))
def test_ratios_outside_the_unit_interval_are_refused(cls, ratio: float) -> None:
    with pytest.raises(GtspError, match="outside"):
        cls(ratio)


def test_removing_every_head_is_refused() -> None:
    with pytest.raises(GtspError, match="0 heads"):
        HeadSparsifier(0.5).prepare(make_model("graphtrans", heads=1))  # round(0.5) == 0


def test_removing_every_layer_is_refused() -> None:
    with pytest.raises(GtspError, match="all of them"):
        LayerSparsifier(0.75).prepare(make_model("gps", layers=2))  # round(1.5) == 2


@pytest.mark.parametrize("cls", (TokenSparsifier, HeadSparsifier))
def test_pruning_attention_of_a_model_without_attention_is_refused(cls) -> None:
    with pytest.raises(GtspError, match="has none"):
        cls(0.5).prepare(make_model("gps", heads=0))


def test_compacting_layers_without_scores_is_refused() -> None:
    sparsifier = LayerSparsifier(0.5)
    model = sparsifier.prepare(make_model("gps"))
    with pytest.raises(GtspError, match="no redundancy score"):
        sparsifier.compact(model)


# ---- checkpoints ------------------------------------------------------------------------------------
@pytest.mark.parametrize("dimension", DIMENSIONS)
def test_a_sparsifier_restored_from_its_state_compacts_identically(dimension: str) -> None:
    name = "graphormer"
    layers = 4 if dimension == "layer" else 2
    model = make_model(name, layers=layers)
    sparsifier = make_sparsifier(dimension)
    sparsifier.prepare(model)
    train_steps(model, sparsifier, batch_of(name, seed=10), steps=3)
    state = copy.deepcopy(sparsifier.state_dict())
    weights = copy.deepcopy(model.state_dict())

    # A resumed run: a fresh model and sparsifier, the sparsifier state loaded before the model's.
    restored_model = make_model(name, layers=layers, seed=1)
    restored = make_sparsifier(dimension)
    restored.prepare(restored_model)
    restored.load_state_dict(state)
    restored_model.load_state_dict(weights)

    batch = batch_of(name)
    with torch.no_grad():
        expected = sparsifier.compact(model)[0].eval()(batch)
        got = restored.compact(restored_model)[0].eval()(batch)
    assert torch.equal(expected, got)
    assert restored.summary() == sparsifier.summary()


# ---- the three together: one plan, one compaction ----------------------------------------------------
@pytest.mark.parametrize("name", ("graphtrans", "graphormer"))
def test_layer_head_and_token_pruning_compose(name: str, monkeypatch) -> None:
    model = make_model(name, layers=4)
    joint = CompositeSparsifier([make_sparsifier("token"), make_sparsifier("head"), make_sparsifier("layer")])
    assert [m.dimension for m in joint.members] == ["head", "layer", "token"]  # hooks in the registry's order
    joint.prepare(model)
    train_steps(model, joint, batch_of(name, seed=10))

    batch = batch_of(name)
    model.eval()
    with torch.no_grad(), monkeypatch.context() as patch:
        joint.members[1].mask(model)
        patch.setattr(MultiHeadSelfAttention, "forward", paper_style_attention)
        masked = model(batch)
    compacted, plan = joint.compact(model)
    with torch.no_grad():
        out = compacted.eval()(batch)
        rebuilt = apply_plan(make_model(name, layers=4, seed=3), plan)
        rebuilt.load_state_dict(compacted.state_dict())
        again = rebuilt.eval()(batch)
    assert (out - masked).abs().max() < 1e-4
    assert torch.equal(out, again)
    assert len(compacted.layers) == 2 and len(plan.get("layer").kept) == 2
    assert all(a.num_heads == 2 for _, a in compacted.attention_modules())
    assert len(plan.get("head").kept) == 4  # planned on all four layers' attentions, before two were removed
    # the masked model is left as it was: compaction works on a copy
    assert len(model.layers) == 4 and all(isinstance(layer, SkippableLayer) for layer in model.layers)


def test_the_epoch_that_chooses_layers_is_not_selectable() -> None:
    """The trainer asks before ``on_epoch_end``; that epoch's evaluation still ran every layer."""
    model = make_model("gps", layers=4)
    sparsifier = LayerSparsifier(0.5)
    sparsifier.prepare(model)
    sparsifier.schedule(epochs=8, steps_per_epoch=1)
    train_steps(model, sparsifier, batch_of("gps"), steps=8)  # every layer runs at least once
    assert not sparsifier.selectable(2)
    assert {layer.drop_prob for layer in model.layers} == {0.5}
    sparsifier.on_epoch_end(1)
    assert sparsifier.removed is None
    sparsifier.on_epoch_end(2)  # prune_epoch = 8 // 4: the layers are chosen and skipped from now on
    assert sparsifier.selectable(3)
    # the kept layers fine-tune without LayerDrop (finetune_drop_prob=0), the removed ones never run
    assert [layer.skip for layer in model.layers].count(True) == 2
    assert {layer.drop_prob for layer in model.layers} == {0.0}


@pytest.mark.parametrize("mode", ["dynamic", "topk"])
def test_joint_heads_settle_by_the_time_the_weight_densities_are_final(mode: str) -> None:
    from gtsp.sparsify.weight import WeightSparsifier

    epochs, steps = 20, 10
    options = {"mode": mode, "update_every": 10} | ({"prune_epoch": 18} if mode == "topk" else {})
    alone = HeadSparsifier(0.5, **options)
    alone.schedule(epochs, steps)
    joint = CompositeSparsifier([HeadSparsifier(0.5, **options), WeightSparsifier(0.5, update_every=3)])
    joint.schedule(epochs, steps)
    weight, head = joint.members  # hook order: weight first
    end = weight.final_epoch()
    assert end is not None and 0 < end < epochs - 2
    if mode == "dynamic":  # alone: head updates run to 90% of training; joint: to the weights' end
        assert alone.last_update_step == 180 and head.last_update_step == end * steps
    else:
        assert alone.prune_epoch == 18 and head.prune_epoch == end
        head.pruned = True  # as on_epoch_end(end) leaves it
    # every epoch from the weights' end on shows the final architecture to model selection
    assert all(joint.selectable(e) for e in range(end, epochs + 1)) and not joint.selectable(end - 1)


# ---- adaptive token keeping -------------------------------------------------------------------------
def test_adaptive_selector_keeps_the_positively_scored_tokens_of_each_graph() -> None:
    torch.manual_seed(0)
    selector = TokenSelector(8, ratio=0.5, rule="adaptive").eval()
    x = torch.randn(3, 20, 8)
    mask = torch.arange(20).unsqueeze(0) < torch.tensor([[4], [20], [9]])
    with torch.no_grad():
        scores = selector.scorer(x).squeeze(-1)
        index, kept, gate = selector(x, mask)
    positive = ((scores > 0) & mask).sum(1)
    assert kept.sum(1).tolist() == positive.clamp(min=1).tolist()  # each graph its own count, at least 1
    assert index.size(1) == int(positive.clamp(min=1).max())  # the layout is as wide as the widest keep
    assert mask.gather(1, index)[kept].all() and torch.equal(gate, kept.float())
    chosen = scores.gather(1, index)
    assert all((chosen[g][kept[g]] > 0).all() for g in range(3) if positive[g] > 0)
    assert len(set((kept.sum(1).double() / mask.sum(1)).tolist())) > 1  # graphs keep different shares
    assert selector.kept_histogram.sum() == 3 and selector.kept_tokens == kept.sum()


def test_adaptive_penalty_pulls_the_mean_keep_probability_to_the_target() -> None:
    model = make_model("gps")
    sparsifier = TokenSparsifier(0.75, rule="adaptive", penalty=10.0)
    sparsifier.prepare(model)
    batch = batch_of("gps", seed=3)
    scorers = [s.scorer for s in selectors_of(model)]
    optimizer = torch.optim.SGD([p for s in scorers for p in s.parameters()], lr=0.5)
    model.train()
    means = []
    for _ in range(30):
        model(batch)
        means.append(float(torch.stack([s.soft_keep for s in selectors_of(model)]).mean()))
        loss = sparsifier.extra_loss()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        assert all(s.soft_keep is None for s in selectors_of(model))  # the graph is not held past the step
    assert abs(means[-1] - 0.25) < abs(means[0] - 0.25) and abs(means[-1] - 0.25) < 0.1
    model.eval()
    with torch.no_grad():
        model(batch)
    histogram = sparsifier.summary()["kept_fraction_histogram"]
    assert sum(histogram["graph_layers"]) == len(SIZES) * 2 and len(histogram["edges"]) == 11


@pytest.mark.parametrize("name", BACKBONES)
def test_adaptive_token_compaction_computes_what_the_masked_model_computed(name: str) -> None:
    model = make_model(name)
    sparsifier = TokenSparsifier(0.5, rule="adaptive")
    sparsifier.prepare(model)
    train_steps(model, sparsifier, batch_of(name, seed=10))
    batch = batch_of(name)
    model.eval()
    with torch.no_grad():
        masked = model(batch)
        compacted, plan = sparsifier.compact(model)
        out = compacted.eval()(batch)
    assert plan.get("token").rule == "adaptive" and torch.equal(out, masked)


def selectors_of(model) -> list[TokenSelector]:
    return [m for m in model.modules() if isinstance(m, TokenSelector)]


def test_layers_layerdrop_never_ran_are_scored_in_the_next_evaluation() -> None:
    model = make_model("gps", layers=4)
    sparsifier = LayerSparsifier(0.5)
    sparsifier.prepare(model)
    sparsifier.schedule(epochs=8, steps_per_epoch=1)
    sparsifier.on_epoch_end(2)  # due (8 // 4), but no layer has run in training: nothing to choose from
    assert sparsifier.removed is None and sparsifier.eval_scored == [0, 1, 2, 3]
    restored = LayerSparsifier(0.5)
    restored.prepare(make_model("gps", layers=4))
    restored.load_state_dict(sparsifier.state_dict())  # a resumed run scores the same layers in eval
    assert all(w.measure_in_eval for w in restored.model.layers)
    model.eval()
    with torch.no_grad():
        model(batch_of("gps"))
    sparsifier.on_epoch_end(3)
    assert len(sparsifier.removed) == 2 and sparsifier.eval_scored == []
    assert not any(w.measure_in_eval for w in model.layers)
