"""The weight dimension of GTSP: unstructured gradual magnitude pruning with regrowth
(WeightSparsifier) and structured neuron pruning (NeuronSparsifier), on every registered backbone.

A "fake training" runs real forward/backward/optimiser steps on one tiny batch and
calls ``on_step`` as the trainer does: 4 epochs x 5 steps, pruning window epochs 1..3
(steps 5..15), masks updated every 3 steps, so updates happen at steps 8, 11, 14 and 15.
"""
from __future__ import annotations

import copy
import io

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize
from torch_geometric.data import Batch
from torch_geometric.nn.dense.linear import Linear as PygLinear

from gtsp.accounting.flops import analytic_flops_per_graph
from gtsp.accounting.params import count_params
from gtsp.data.transforms import FEATURES
from gtsp.errors import GtspError
from gtsp.models import MODELS, build_model
from gtsp.nn.ffn import FeedForward
from gtsp.sparsify.neuron import NeuronSparsifier, gate_of
from gtsp.sparsify.plan import apply_plan
from gtsp.sparsify.schedules import CubicSchedule, cosine_decay, keep_count
from gtsp.sparsify.weight import WeightSparsifier, weight_mask
from tests.conftest import random_graph

EPOCHS, STEPS_PER_EPOCH = 4, 5
WINDOW = dict(start_epoch=1, end_epoch=3, update_every=3)
UPDATES = (8, 11, 14, 15)
END_STEP = 15
BACKBONES = sorted(MODELS)


def hparams(name: str) -> dict:
    hp = dict(hidden=16, layers=2, heads=2, dropout=0.0, attn_dropout=0.0)
    return hp | ({"gnn_layers": 2} if name == "graphtrans" else {})


def backbone(name: str, info, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return build_model(name, info, **hparams(name))


def graphs_for(name: str) -> list:
    graphs = [random_graph(n, seed=i, rwse=False) for i, n in enumerate([5, 9, 3, 12])]
    for feature in MODELS[name].required_features(hparams(name)):
        graphs = [FEATURES[feature]()(g) for g in graphs]
    return graphs


def fit(model: nn.Module, sparsifier, batch: Batch, steps: range, optimizer=None, before_step=None) -> None:
    """Train as the Trainer does: backward, optimiser step, then ``on_step(step)``."""
    optimizer = optimizer or torch.optim.Adam(model.parameters(), lr=1e-2)
    for step in steps:
        model.train()
        loss = F.cross_entropy(model(batch), batch.y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if before_step is not None:
            before_step(step)
        sparsifier.on_step(step)


def pruned(name: str, info, sparsifier, steps: range = range(1, EPOCHS * STEPS_PER_EPOCH + 1), **kwargs):
    model = backbone(name, info)
    graphs = graphs_for(name)
    batch = Batch.from_data_list(graphs)
    sparsifier.prepare(model)
    sparsifier.schedule(EPOCHS, STEPS_PER_EPOCH)
    fit(model, sparsifier, batch, steps, **kwargs)
    return model, graphs, batch


def kept_masks(sparsifier: WeightSparsifier) -> list[torch.Tensor]:
    return [layer.mask.mask.clone() for layer in sparsifier.layers]


# ---- the schedule --------------------------------------------------------------------------------
def test_cubic_schedule_hits_its_ends_and_decreases():
    ratio = 0.7
    plan = CubicSchedule.from_epochs(ratio, epochs=10, steps_per_epoch=7, update_every=4)  # window epochs 1..8
    assert (plan.start_step, plan.end_step, plan.end_epoch) == (7, 56, 8)
    assert plan.density(plan.start_step) == 1.0 and plan.density(0) == 1.0
    assert plan.density(plan.end_step) == 1.0 - ratio and plan.density(70) == 1.0 - ratio
    densities = [plan.density(s) for s in range(0, 71)]
    assert all(a >= b for a, b in zip(densities, densities[1:]))
    updates = [s for s in range(0, 71) if plan.is_update(s)]
    assert updates[0] == 11 and updates[-1] == 56 and 55 in updates and all(s <= 56 for s in updates)
    # Zhu & Gupta: sparsity s_f * (1 - (1 - p)^3)
    mid = plan.start_step + (plan.end_step - plan.start_step) // 2
    p = (mid - plan.start_step) / (plan.end_step - plan.start_step)
    assert 1 - plan.density(mid) == pytest.approx(ratio * (1 - (1 - p) ** 3))
    one_shot = CubicSchedule.from_epochs(0.5, 4, 5, start_epoch=2, end_epoch=2)
    assert one_shot.density(9) == 1.0 and one_shot.density(10) == 0.5 and one_shot.is_update(10)
    assert cosine_decay(0.0) == 1.0 and cosine_decay(1.0) == pytest.approx(0.0)
    for bad in (dict(start_epoch=3, end_epoch=2), dict(end_epoch=11), dict(start_epoch=0, end_epoch=0)):
        with pytest.raises(GtspError):
            CubicSchedule.from_epochs(0.5, 10, 7, **bad)


@pytest.mark.parametrize("ratio", [1.0, -0.1, 1.5])
def test_ratio_outside_unit_interval_is_refused(ratio):
    with pytest.raises(GtspError):
        WeightSparsifier(ratio)
    with pytest.raises(GtspError):
        NeuronSparsifier(ratio)


def test_bad_options_are_refused():
    with pytest.raises(GtspError):
        WeightSparsifier(0.5, regrow=1.0)
    with pytest.raises(GtspError):
        WeightSparsifier(0.5, scope="row")


# ---- which weights are masked --------------------------------------------------------------------
@pytest.mark.parametrize("name", BACKBONES)
def test_mask_rule_covers_blocks_only(name, tiny_info):
    model = backbone(name, tiny_info)
    names = [n for n, _ in model.prunable_linears()]
    assert names and all(n.endswith((".qkv", ".out", ".fc1", ".fc2", ".lin")) for n in names)
    assert all(n.startswith(("layers.", "gnn.")) for n in names)  # never encoders, head, bias tables
    assert sum(n.endswith(".qkv") for n in names) == hparams(name)["layers"]
    if name == "graphtrans":
        assert any(n.startswith("gnn.") for n in names)  # the GNN stack outside model.layers
    # a module another sparsifier attaches inside an attention block is not masked
    model.layers[0].attention.token_selector = nn.Linear(16, 1)
    assert [n for n, _ in model.prunable_linears()] == names
    assert [n for n, _ in WeightSparsifier(0.5).prepare(model).prunable_linears()] == names


# ---- gradual magnitude pruning -------------------------------------------------------------------
@pytest.mark.parametrize("name", BACKBONES)
@pytest.mark.parametrize("scope", ["global", "layer"])
def test_density_is_exact_at_the_end_and_stays(name, scope, tiny_info):
    ratio = 0.6
    sparsifier = WeightSparsifier(ratio, scope=scope, **WINDOW)
    pruned(name, tiny_info, sparsifier)
    total = sum(layer.mask.mask.numel() for layer in sparsifier.layers)
    kept = sum(int(layer.mask.mask.sum()) for layer in sparsifier.layers)
    if scope == "global":
        assert kept == keep_count(1.0 - ratio, total)
    else:
        for layer in sparsifier.layers:
            assert int(layer.mask.mask.sum()) == keep_count(1.0 - ratio, layer.mask.mask.numel())
    assert [h["step"] for h in sparsifier.history] == list(UPDATES)
    assert sparsifier.history[-1]["density"] == 1.0 - ratio and sparsifier.history[-1]["regrown"] == 0
    densities = [h["density"] for h in sparsifier.history]
    assert all(a > b for a, b in zip(densities, densities[1:]))
    summary = sparsifier.summary()
    assert summary["target_density"] == 1.0 - ratio and summary["updates"] == len(UPDATES)
    assert summary["achieved_density"] == pytest.approx(1.0 - ratio, abs=1e-2)
    assert [sparsifier.selectable(e) for e in range(1, EPOCHS + 1)] == [False, False, True, True]


def test_masks_are_frozen_after_the_end_step(tiny_info):
    sparsifier = WeightSparsifier(0.5, **WINDOW)
    model, _, batch = pruned("gps", tiny_info, sparsifier, steps=range(1, END_STEP + 1))
    at_end = kept_masks(sparsifier)
    assert not any(layer.mask.record for layer in sparsifier.layers)  # no gradient bookkeeping any more
    fit(model, sparsifier, batch, range(END_STEP + 1, 31))
    assert all(torch.equal(a, b) for a, b in zip(at_end, kept_masks(sparsifier)))


def test_dense_gradient_is_recorded_at_pruned_weights(tiny_info):
    sparsifier = WeightSparsifier(0.5, **WINDOW)
    model, _, batch = pruned("gps", tiny_info, sparsifier, steps=range(1, 9))  # one update done
    layer = sparsifier.layers[0]
    model.zero_grad()
    layer.mask.grad_score.zero_()
    F.cross_entropy(model(batch), batch.y).backward()
    active = layer.mask.mask.bool()
    assert (~active).any()
    # active entries: the dense gradient is the gradient of the stored weight
    assert torch.allclose(layer.mask.grad_score[active], layer.original.grad.abs()[active])
    # pruned entries: the stored weight gets no gradient, the score does
    assert torch.all(layer.original.grad[~active] == 0) and layer.mask.grad_score[~active].abs().sum() > 0


def test_regrowth_brings_back_the_largest_dense_gradients(tiny_info):
    sparsifier = WeightSparsifier(0.5, regrow=0.3, **WINDOW)
    snapshots: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    checks: list[int] = []

    def before_step(step: int) -> None:
        if step in UPDATES:  # masks and dense-gradient scores just before this update
            snapshots[step] = (torch.cat([m.flatten() for m in kept_masks(sparsifier)]).bool(),
                               torch.cat([layer.mask.grad_score.flatten() for layer in sparsifier.layers]))

    def check(step: int) -> None:
        before, scores = snapshots[step]
        after = torch.cat([layer.mask.mask.flatten() for layer in sparsifier.layers]).bool()
        regrown, stayed = ~before & after, ~before & ~after
        if regrown.any():
            checks.append(int(regrown.sum()))
            assert scores[regrown].min() >= scores[stayed].max()  # regrowth ranks by dense gradient
            originals = torch.cat([layer.original.detach().flatten() for layer in sparsifier.layers])
            assert torch.all(originals[regrown] == 0)  # regrown weights restart at 0

    model, _, batch = pruned("gps", tiny_info, sparsifier, steps=range(0))  # prepared, not trained yet
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for step in range(1, END_STEP + 1):
        fit(model, sparsifier, batch, range(step, step + 1), optimizer=optimizer, before_step=before_step)
        if step in UPDATES:
            check(step)
    assert checks, "no weight pruned at one update came back at a later one"
    history = sparsifier.history
    assert all(h["regrown"] > 0 for h in history[:-1]) and history[-1]["regrown"] == 0
    assert sparsifier.summary()["regrown_total"] == sum(h["regrown"] for h in history)


def test_no_regrowth_when_disabled(tiny_info):
    sparsifier = WeightSparsifier(0.5, regrow=0.0, **WINDOW)
    pruned("gps", tiny_info, sparsifier)
    assert sparsifier.summary()["regrown_total"] == 0
    assert not any(layer.mask.record for layer in sparsifier.layers)


# ---- compaction and accounting -------------------------------------------------------------------
@pytest.mark.parametrize("name", BACKBONES)
def test_compacted_model_matches_and_accounting_drops(name, tiny_info):
    ratio = 0.5
    sparsifier = WeightSparsifier(ratio, scope="layer", **WINDOW)
    model, graphs, batch = pruned(name, tiny_info, sparsifier)
    model.eval()
    with torch.no_grad():
        expected = model(batch)
    compacted, plan = sparsifier.compact(model)
    assert plan.get("weight").density == pytest.approx(1 - ratio, abs=0.01) and plan.get("head") is None
    assert not any(parametrize.is_parametrized(m) for m in compacted.modules())
    layers = compacted.prunable_linears()
    assert all(type(m) in (nn.Linear, PygLinear) for _, m in layers)
    for (_, plain), layer in zip(layers, sparsifier.layers):
        # the masked weight, folded in; the masked original still works (torch shares the parametrized class)
        assert torch.equal(plain.weight, layer.module.weight)
        assert int((plain.weight == 0).sum()) >= int((layer.mask.mask == 0).sum())
    with torch.no_grad():
        assert (compacted.eval()(batch) - expected).abs().max() < 1e-4

    masked_weights = sum(layer.mask.mask.numel() for layer in sparsifier.layers)
    unmasked = copy.deepcopy(model)
    for _, module in unmasked.prunable_linears():
        weight_mask(module).mask.fill_(1.0)
    drop = count_params(unmasked)["nonzero"] - count_params(compacted)["nonzero"]
    assert drop == pytest.approx(ratio * masked_weights, rel=0.02)

    dense = analytic_flops_per_graph(model, graphs)
    assert analytic_flops_per_graph(compacted, graphs)["pruned"] == pytest.approx(dense["pruned"], rel=1e-9)
    emptied = copy.deepcopy(model)
    for _, module in emptied.prunable_linears():
        weight_mask(module).mask.zero_()
    masked_flops = dense["dense"] - analytic_flops_per_graph(emptied, graphs)["pruned"]
    assert masked_flops > 0
    assert dense["dense"] - dense["pruned"] == pytest.approx(ratio * masked_flops, rel=0.02)


def test_state_dict_round_trip_and_resume(tiny_info):
    """A checkpoint of a half-pruned model loads into a freshly prepared one, which then prunes identically."""
    def sgd(model):  # stateless, so the resumed run sees exactly the same updates
        return torch.optim.SGD(model.parameters(), lr=0.05)

    first = WeightSparsifier(0.5, **WINDOW)
    model, _, batch = pruned("gps", tiny_info, first, steps=range(1, 10))
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "hooks": first.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=False)

    second = WeightSparsifier(0.5, **WINDOW)
    fresh = second.prepare(backbone("gps", tiny_info, seed=123))
    second.schedule(EPOCHS, STEPS_PER_EPOCH)
    second.load_state_dict(saved["hooks"])  # the trainer's order: hooks first, then the model
    fresh.load_state_dict(saved["model"])
    model.eval(), fresh.eval()
    with torch.no_grad():
        assert torch.equal(model(batch), fresh(batch))
    assert all(torch.equal(a, b) for a, b in zip(kept_masks(first), kept_masks(second)))

    fit(model, first, batch, range(10, 21), optimizer=sgd(model))
    fit(fresh, second, batch, range(10, 21), optimizer=sgd(fresh))
    assert first.history == second.history
    assert all(torch.equal(a, b) for a, b in zip(kept_masks(first), kept_masks(second)))
    other = WeightSparsifier(0.5, **WINDOW)
    other.prepare(backbone("graphormer", tiny_info))
    with pytest.raises(GtspError, match="do not match"):  # a checkpoint of another model is refused
        other.load_state_dict(saved["hooks"])


# ---- structured: neurons -------------------------------------------------------------------------
@pytest.mark.parametrize("name", BACKBONES)
def test_neuron_pruning_compacts_to_narrower_ffns(name, tiny_info):
    ratio = 0.5
    sparsifier = NeuronSparsifier(ratio, **WINDOW)
    gates: list[torch.Tensor] = []

    def watch(step: int) -> None:
        gates.append(torch.cat([gate_of(f).clone() for _, f in sparsifier.ffns]))

    model, graphs, batch = pruned(name, tiny_info, sparsifier, before_step=watch)
    # gated neurons never come back
    assert all(torch.all(later <= earlier) for earlier, later in zip(gates, gates[1:]))
    widths = {n: keep_count(1.0 - ratio, f.hidden) for n, f in sparsifier.ffns}
    assert {n: int(gate_of(f).sum()) for n, f in sparsifier.ffns} == widths
    assert [h["step"] for h in sparsifier.history] == list(UPDATES)
    head_width = model.head.fc1.out_features
    model.eval()
    with torch.no_grad():
        expected = model(batch)
    compacted, plan = sparsifier.compact(model)
    for n, ffn in compacted.feedforwards():
        assert ffn.fc1.out_features == ffn.fc2.in_features == ffn.hidden == widths[n]
        assert ffn.hidden_transform is None
    assert [len(k) for k in plan.get("neuron").kept] == [widths[n] for n, _ in compacted.feedforwards()]
    assert compacted.head.fc1.out_features == head_width  # the prediction head is never pruned
    rebuilt = apply_plan(backbone(name, tiny_info, seed=5), plan)
    rebuilt.load_state_dict(compacted.state_dict())
    with torch.no_grad():
        assert (compacted.eval()(batch) - expected).abs().max() < 1e-5
        assert torch.equal(rebuilt.eval()(batch), compacted(batch))
    assert count_params(compacted)["dense"] < count_params(model)["dense"]
    assert analytic_flops_per_graph(compacted, graphs)["dense"] < analytic_flops_per_graph(model, graphs)["dense"]
    summary = sparsifier.summary()
    assert summary["kept_neurons"] == sum(widths.values()) and summary["updates"] == len(UPDATES)


def test_removing_every_neuron_is_refused(tiny_info):
    model = build_model("gps", tiny_info, hidden=4, layers=1, heads=2)  # GIN MLP: 4 hidden neurons
    with pytest.raises(GtspError, match="every one"):
        NeuronSparsifier(0.9).prepare(model)  # round(0.1 * 4) = 0
    with pytest.raises(GtspError):
        FeedForward(4, 8).prune_neurons(torch.tensor([], dtype=torch.long))
    model = build_model("gps", tiny_info, hidden=4, layers=1, heads=2)
    sparsifier = NeuronSparsifier(0.5)
    sparsifier.prepare(model)
    gate_of(model.layers[0].ffn).zero_()
    with pytest.raises(GtspError, match="empty"):
        sparsifier.compact(model)
    with pytest.raises(GtspError, match="gtsp backbone"):  # a model that does not declare the contract
        NeuronSparsifier(0.5).prepare(nn.Sequential(FeedForward(4, 8)))


def test_neuron_state_round_trip(tiny_info):
    sparsifier = NeuronSparsifier(0.5, **WINDOW)
    model, _, batch = pruned("gps", tiny_info, sparsifier, steps=range(1, 12))
    fresh_sparsifier = NeuronSparsifier(0.5, **WINDOW)
    fresh = fresh_sparsifier.prepare(backbone("gps", tiny_info, seed=7))
    fresh_sparsifier.schedule(EPOCHS, STEPS_PER_EPOCH)
    fresh_sparsifier.load_state_dict(sparsifier.state_dict())
    fresh.load_state_dict(model.state_dict())
    model.eval(), fresh.eval()
    with torch.no_grad():
        assert torch.equal(model(batch), fresh(batch))
    assert fresh_sparsifier.summary() == sparsifier.summary()


# ---- through the real trainer: a run cut mid-window resumes to the same result ------------------
class _CrashingWeightSparsifier(WeightSparsifier):
    def on_step(self, step: int) -> None:
        if step == 13:  # between the updates at 11 and 14; the checkpoint is from step 10
            raise KeyboardInterrupt
        super().on_step(step)


def test_trainer_resume_with_weight_pruning(cache_root, tmp_path):
    from gtsp.data.registry import load_dataset
    from gtsp.train.trainer import Trainer, seed_everything

    data = load_dataset("MUTAG", cache_root=str(cache_root), features=("rwse",), seed=0)

    def trainer(out, kind=WeightSparsifier):
        seed_everything(0)
        model = build_model("gps", data.info, hidden=16, layers=2, heads=2, attn_dropout=0.0)
        hooks = kind(0.5, **WINDOW)
        hooks.prepare(model)
        run = Trainer(model, data, out, epochs=EPOCHS, batch_size=32, lr=2e-3, weight_decay=1e-5,
                      warmup_epochs=1, grad_clip=5.0, seed=0, hooks=hooks, progress=False)
        hooks.schedule(EPOCHS, len(run.loader))
        return run, hooks

    full, full_hooks = trainer(tmp_path / "full")
    assert len(full.loader) == STEPS_PER_EPOCH
    result = full.fit()
    assert result.best_epoch >= WINDOW["end_epoch"]  # not selectable before the final density
    with pytest.raises(KeyboardInterrupt):
        trainer(tmp_path / "cut", _CrashingWeightSparsifier)[0].fit()
    resumed, resumed_hooks = trainer(tmp_path / "cut")
    again = resumed.fit(resume=True)
    assert (again.val, again.test, again.best_epoch) == (result.val, result.test, result.best_epoch)
    assert resumed_hooks.history == full_hooks.history
    for a, b in zip(resumed.model.state_dict().values(), full.model.state_dict().values()):
        assert torch.equal(a, b)
