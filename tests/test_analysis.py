"""gtsp analyze: head and layer redundancy find duplicated heads and layers, every backbone is analysable
through the contract, token selections are read back, and the command writes its figures for a pruned run."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch_geometric.data import Batch

from gtsp.analysis.analyze import analyse_model
from gtsp.analysis.capture import capture
from gtsp.analysis.curves import analyse_curves, find_runs
from gtsp.analysis.heads import head_distances, js_distance
from gtsp.analysis.layers import attention_similarity, representation_similarity
from gtsp.analysis.subject import Subject, sample_positions
from gtsp.cli import main
from gtsp.data.registry import GraphDataset
from gtsp.data.shortest_paths import ShortestPaths
from gtsp.errors import GtspError
from gtsp.models import build_model
from gtsp.sparsify.plan import CompactionPlan
from gtsp.sparsify.token_selector import TokenSelector, tokens_to_keep
from tests.conftest import random_graph

BACKBONES = ("gps", "graphtrans", "graphormer")
SIZES = (5, 9, 3, 12, 7)


def graphs_for(backbone: str) -> list:
    graphs = [random_graph(n, seed=i) for i, n in enumerate(SIZES)]
    return [ShortestPaths()(g) for g in graphs] if backbone == "graphormer" else graphs


def tiny_model(backbone: str, info, **extra):
    torch.manual_seed(0)
    hparams = dict(hidden=16, layers=3, heads=4, attn_dropout=0.0, dropout=0.0) | extra
    if backbone == "graphtrans":
        hparams["gnn_layers"] = 1
    return build_model(backbone, info, **hparams).eval()


def copy_head(attention, source: int, target: int) -> None:
    """Make head ``target`` compute exactly what head ``source`` computes (its q, k and v rows)."""
    d, h = attention.head_dim, attention.num_heads
    with torch.no_grad():
        for part in range(3):
            rows = slice(part * h * d, (part + 1) * h * d)
            weight, bias = attention.qkv.weight[rows], attention.qkv.bias[rows]
            weight[target * d:(target + 1) * d] = weight[source * d:(source + 1) * d].clone()
            bias[target * d:(target + 1) * d] = bias[source * d:(source + 1) * d].clone()


def copy_bias_head(bias, source: int, target: int) -> None:
    """Graphormer: head ``target`` of the shared spatial / edge bias becomes head ``source``'s."""
    with torch.no_grad():
        bias.spatial.weight[:, target] = bias.spatial.weight[:, source]
        bias.virtual[target] = bias.virtual[source]
        if bias.edge_proj is not None:
            heads = bias.num_heads
            for position in range(bias.max_path):
                bias.edge_proj.weight[position * heads + target] = bias.edge_proj.weight[position * heads + source]


@pytest.mark.parametrize("backbone", BACKBONES)
def test_two_identical_heads_are_at_distance_zero_and_nearest(backbone, tiny_info):
    model = tiny_model(backbone, tiny_info)
    _, attention = model.attention_modules()[1]
    copy_head(attention, source=0, target=2)
    if backbone == "graphormer":  # a Graphormer head is also its bias head
        copy_bias_head(model.bias, source=0, target=2)
    distance = head_distances(capture(model, Batch.from_data_list(graphs_for(backbone))))
    first = 4  # heads of the first attention come first
    pair = distance[first, first + 2]
    assert float(pair) == pytest.approx(0.0, abs=1e-6)
    off_diagonal = distance + torch.eye(distance.size(0), dtype=distance.dtype) * 10
    others = off_diagonal.clone()
    others[first, first + 2] = others[first + 2, first] = 10
    assert float(pair) < float(others.min())
    assert torch.allclose(distance, distance.T)


@pytest.mark.parametrize("backbone", BACKBONES)
def test_two_identical_layers_have_similarity_one_on_the_same_input(backbone, tiny_info):
    model = tiny_model(backbone, tiny_info)
    model.layers[2].load_state_dict(model.layers[0].state_dict())
    record = capture(model, Batch.from_data_list(graphs_for(backbone)), same_input=True)
    representations = representation_similarity(record.layer_outputs)
    attention = attention_similarity(record, len(record.layer_outputs))
    for matrix in (representations["representation_cka"], representations["representation_cosine"],
                   attention["attention_cka"], attention["attention_cosine"]):
        assert float(matrix[0, 2]) == pytest.approx(1.0, abs=1e-5)
        assert float(matrix[0, 1]) < 1.0 - 1e-4  # a different layer is not
    heads = head_distances(record)
    assert torch.allclose(heads[:4, 8:12].diagonal(), torch.zeros(4, dtype=heads.dtype), atol=1e-6)


def test_js_distance_is_zero_for_equal_rows_and_one_for_disjoint_rows():
    p = torch.tensor([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0]])
    q = torch.tensor([[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])
    assert js_distance(p, q).tolist() == pytest.approx([0.0, 1.0])


@pytest.mark.parametrize("backbone", BACKBONES)
def test_captured_maps_are_distributions_over_real_tokens(backbone, tiny_info):
    model = tiny_model(backbone, tiny_info)
    record = capture(model, Batch.from_data_list(graphs_for(backbone)))
    assert len(record.attentions) == len(record.layer_outputs) == 3
    prefix = 0 if backbone == "gps" else 1
    for attention in record.attentions:
        assert attention.prefix == prefix
        sums = attention.probs.sum(-1)  # [B, H, L]
        real = attention.mask.unsqueeze(1).expand_as(sums)
        assert torch.allclose(sums[real], torch.ones_like(sums[real]), atol=1e-5)
        assert float(sums[~real].abs().sum()) == 0.0
    rows = sum(SIZES) + prefix * len(SIZES)
    assert all(output.shape == (rows, 16) for output in record.layer_outputs)


@pytest.mark.parametrize("backbone", BACKBONES)
def test_token_selections_are_read_back_per_graph(backbone, tiny_info):
    model = tiny_model(backbone, tiny_info)
    for _, attention in model.attention_modules():
        attention.token_selector = TokenSelector(attention.dim, ratio=0.5).eval()
    record = capture(model, Batch.from_data_list(graphs_for(backbone)))
    for attention in record.attentions:
        for graph, size in enumerate(SIZES):
            kept = attention.node_kept(graph, size)
            assert int(kept.sum()) == tokens_to_keep(0.5, size)
            dropped = attention.prefix + torch.nonzero(~kept).flatten()
            assert float(attention.probs[graph][:, :, dropped].abs().sum()) == 0.0  # nobody attends to them
            assert float(attention.probs[graph][:, dropped].abs().sum()) == 0.0  # they attend to nobody


@pytest.mark.parametrize("backbone", BACKBONES)
def test_every_backbone_gets_every_model_analysis(backbone, tiny_info, tmp_path):
    model = tiny_model(backbone, tiny_info)
    graphs = graphs_for(backbone)
    data = GraphDataset(tiny_info, graphs, graphs, graphs)
    subject = Subject(model, None, {"dataset": "tiny", "backbone": backbone}, CompactionPlan(), data,
                      sample_positions(len(graphs), 4), tmp_path)
    written = {p.name for p in analyse_model(subject, tmp_path / "out")}
    assert {"heads.png", "heads.json", "layers.png", "layers.json", "attention_received.png",
            "attention_received.json", "sample.json"} <= written
    heads = json.loads((tmp_path / "out" / "heads.json").read_text())
    assert len(heads["heads"]) == 12 and len(heads["matrix"]) == 12


def test_sample_positions_are_fixed_and_spread():
    assert sample_positions(100, 5) == [0, 25, 50, 74, 99]
    assert sample_positions(3, 10) == [0, 1, 2]
    with pytest.raises(GtspError, match="--graphs"):
        sample_positions(10, 0)


def write_run(folder: Path, weight: float, train: list[float], test: list[float]) -> None:
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps({"sparsity": {"weight": weight}, "metric": {"name": "accuracy"}}))
    lines = [json.dumps({"epoch": i + 1, "train_metric": a, "test": b}) for i, (a, b) in enumerate(zip(train, test))]
    (folder / "metrics.jsonl").write_text("\n".join(lines) + "\n")


def test_curves_over_a_folder_of_runs(tmp_path):
    write_run(tmp_path / "runs" / "w0", 0.0, [0.7, 0.9, 1.0], [0.6, 0.7, 0.7])
    write_run(tmp_path / "runs" / "w5", 0.5, [0.7, 0.8, 0.85], [0.65, 0.72, 0.75])
    runs = find_runs(tmp_path / "runs")
    assert [r.name for r in runs] == ["w0", "w5"]
    analyse_curves(runs, tmp_path / "out")
    numbers = json.loads((tmp_path / "out" / "curves.json").read_text())
    assert [r["label"] for r in numbers["runs"]] == ["dense", "weight 0.5"]
    assert numbers["runs"][0]["final_gap"] == pytest.approx(np.mean([0.1, 0.2, 0.3]))
    assert (tmp_path / "out" / "curves.png").stat().st_size > 0


def test_curves_refuse_a_log_without_training_metric(tmp_path):
    write_run(tmp_path / "old", 0.0, [0.5], [0.5])
    (tmp_path / "old" / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "test": 0.5}) + "\n")
    with pytest.raises(GtspError, match="train_metric"):
        analyse_curves([tmp_path / "old"], tmp_path / "out")


def test_analyze_refuses_a_missing_run(capsys, tmp_path):
    assert main(["analyze", str(tmp_path / "nothing"), "--out", str(tmp_path / "out")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_analyze_a_token_head_and_layer_pruned_mutag_run(cache_root, tmp_path):
    run_dir, out = tmp_path / "run", tmp_path / "analysis"
    assert main(["train", "--dataset", "MUTAG", "--epochs", "2", "--hidden", "32", "--batch-size", "16",
                 "--prune", "token=0.5,head=0.5,layer=0.5", "--cache-root", str(cache_root),
                 "--out", str(run_dir), "--quiet"]) == 0
    assert main(["analyze", str(run_dir), "--out", str(out), "--graphs", "8",
                 "--cache-root", str(cache_root)]) == 0
    for name in ("heads", "layers", "attention_received", "kept_tokens", "curves"):
        assert (out / f"{name}.json").is_file()
        assert (out / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
    plan = json.loads((run_dir / "compacted.safetensors.json").read_text())["plan"]
    heads = json.loads((out / "heads.json").read_text())
    assert heads["model"] == "before compaction" and len(heads["heads"]) == 16
    kept = {(h["layer"], h["head"]) for h in heads["heads"] if h["kept"]}
    assert kept == {(layer, head) for layer in plan["layer"]["kept"] for head in plan["head"]["kept"][layer]}
    layers = json.loads((out / "layers.json").read_text())["views"][0]
    assert [i for i, gone in enumerate(layers["removed"]) if gone] == sorted(set(range(4)) - set(plan["layer"]["kept"]))
    tokens = json.loads((out / "kept_tokens.json").read_text())
    assert all(0.0 < layer["mean"] <= 1.0 for layer in tokens["fractions"].values())
    # an exported file has no checkpoint: its kept heads are analysed under their original indices
    exported = tmp_path / "model.safetensors"
    assert main(["export", str(run_dir), "--out", str(exported)]) == 0
    assert main(["analyze", str(exported), "--out", str(tmp_path / "file"), "--graphs", "4",
                 "--cache-root", str(cache_root)]) == 0
    delivered = json.loads((tmp_path / "file" / "heads.json").read_text())
    assert delivered["model"] == "delivered"
    assert {(h["layer"], h["head"]) for h in delivered["heads"]} == kept


def test_padded_batch_rule_keeps_whole_small_graphs():
    from gtsp.analysis.token_rules import compare_rules

    graphs = [random_graph(2, seed=0, rwse=False), random_graph(10, seed=1, rwse=False)]
    per_graph, padded = compare_rules(graphs, ratio=0.5, batch_size=2)
    assert per_graph.kept_share == pytest.approx((1 + 5) / 12)
    assert padded.kept_share == pytest.approx((2 + 5) / 12)  # k = 5 from the padded length 10
    assert padded.all_kept_share == pytest.approx(0.5) and per_graph.all_kept_share == 0.0


def test_head_summary_separates_heads_of_removed_layers():
    """Heads that went with their layer are pruned overall, but only kept layers' heads were scored."""
    import torch
    from gtsp.analysis.heads import HeadLabel, head_summary

    labels = [HeadLabel(0, 0, True), HeadLabel(0, 1, False),           # layer 0 kept, head 1 scored out
              HeadLabel(1, 0, False, False), HeadLabel(1, 1, False, False)]  # layer 1 removed
    distance = torch.tensor([[0.0, 0.3, 0.5, 0.6],
                             [0.3, 0.0, 0.4, 0.7],
                             [0.5, 0.4, 0.0, 0.1],
                             [0.6, 0.7, 0.1, 0.0]])
    summary = head_summary(distance, labels)
    # nearest distances: 0.3, 0.3, 0.1, 0.1
    assert summary["mean_nearest_distance"]["kept"] == pytest.approx(0.3)
    assert summary["mean_nearest_distance"]["pruned"] == pytest.approx((0.3 + 0.1 + 0.1) / 3)
    assert summary["mean_nearest_distance_in_kept_layers"]["pruned"] == pytest.approx(0.3)
    assert summary["mean_nearest_distance_in_kept_layers"]["kept"] == pytest.approx(0.3)
