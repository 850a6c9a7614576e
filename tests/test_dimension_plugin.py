"""A new pruning dimension is one plugin: defined here, in this test module alone, it trains, compacts,
is priced by the budget and appears in a report, with no other file of gtsp touched.

The toy dimension ``tail`` keeps the first ``(1 - ratio)`` hidden neurons of every feed-forward
block (a fixed choice, no learning): a gate in the block's ``hidden_transform`` slot while
training, ``prune_neurons`` at compaction.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import ClassVar

import pytest
import torch
from torch import nn

from gtsp.budget.cost import flops_candidates, structural_model
from gtsp.cli import main
from gtsp.config import RunConfig
from gtsp.errors import GtspError
from gtsp.sparsify import registry
from gtsp.sparsify.base import Sparsifier
from gtsp.sparsify.dimension import Dimension, Fragment, RatioOptions, check_range
from gtsp.sparsify.plan import CompactionPlan, check_count


def kept_count(ratio: float, hidden: int) -> int:
    return max(1, math.ceil((1.0 - ratio) * hidden))


@dataclass(frozen=True)
class TailOptions(RatioOptions):
    dimension_name: ClassVar[str] = "tail"
    scale: float = 1.0  # multiplies the kept neurons (an option of the toy's own)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range("tail", "scale", self.scale, 0.0, 10.0)


class TailGate(nn.Module):
    def __init__(self, gate: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("gate", gate)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden * self.gate


@dataclass
class TailFragment(Fragment):
    kept: list[int]  # kept neurons per feed-forward block (the first ones)

    def apply(self, model: nn.Module) -> None:
        ffns = model.feedforwards()
        check_count("feed-forward blocks", len(self.kept), len(ffns))
        for (_, ffn), count in zip(ffns, self.kept):
            if count < ffn.hidden:  # (priced together with neuron pruning, the blocks may be narrower already)
                ffn.prune_neurons(torch.arange(count))


class TailSparsifier(Sparsifier):
    dimension = "tail"

    def __init__(self, ratio: float, scale: float = 1.0) -> None:
        super().__init__(TailOptions(ratio, scale))

    def prepare(self, model: nn.Module) -> nn.Module:
        for _, ffn in model.feedforwards():
            gate = torch.zeros(ffn.hidden)
            gate[: kept_count(self.ratio, ffn.hidden)] = self.options.scale
            ffn.hidden_transform = TailGate(gate)
        self.model = model
        return model

    def plan(self, model: nn.Module) -> CompactionPlan:
        return CompactionPlan({"tail": TailFragment([kept_count(self.ratio, f.hidden) for _, f in model.feedforwards()])})

    def strip(self, model: nn.Module) -> None:
        for _, ffn in model.feedforwards():
            ffn.scale_neurons(ffn.hidden_transform.gate)
            ffn.hidden_transform = None


TAIL = Dimension(name="tail", options=TailOptions, sparsifier=TailSparsifier, fragment=TailFragment,
                 label="FFN tail", colour="tab:olive", ratios=(0.0, 0.5),
                 priced_fragment=lambda model, r: TailFragment([kept_count(r, f.hidden) for _, f in model.feedforwards()]))

TINY = {"hidden": 16, "layers": 2, "heads": 2}


@pytest.fixture
def tail():
    with registry.registered(TAIL) as dimension:
        yield dimension


def test_the_toy_dimension_trains_compacts_and_is_reported(tail, tmp_path, cache_root):
    run_dir = tmp_path / "runs" / "tail"
    argv = ["train", "--dataset", "MUTAG", "--model", "gps", "--hidden", "16", "--layers", "2", "--heads", "2",
            "--epochs", "2", "--batch-size", "32", "--warmup-epochs", "1", "--quiet", "--cache-root", str(cache_root)]
    assert main([*argv, "--prune", "tail=0.5", "--prune-arg", "tail.scale=2", "--out", str(run_dir)]) == 0
    results = json.loads((run_dir / "results.json").read_text())
    kept = results["compaction_plan"]["tail"]["kept"]
    assert results["sparsity"]["tail"] == 0.5 and kept and all(k < 2 * TINY["hidden"] for k in kept)
    assert results["compaction_max_abs_diff"] < 1e-5  # the compacted model computes what the gated one did
    assert results["flops_per_graph"]["executed"] < results["flops_per_graph"]["dense"]
    spec = json.loads((run_dir / "compacted.safetensors.json").read_text())
    assert list(spec["plan"]) == ["tail"]
    assert main(["evaluate", str(run_dir / "compacted.safetensors"), "--cache-root", str(cache_root)]) == 0
    assert main([*argv, "--out", str(tmp_path / "runs" / "dense")]) == 0
    assert main(["report", str(tmp_path / "runs"), "--out", str(tmp_path / "report")]) == 0
    report = (tmp_path / "report" / "report.md").read_text()
    assert "tail 0.5" in report


def test_the_toy_dimension_is_priced_by_the_budget(tail, cache_root):
    from gtsp.accounting.flops import analytic_flops_per_graph
    from gtsp.train.run import prepare_data

    data = prepare_data(RunConfig(dataset="MUTAG", model="gps", cache_root=str(cache_root)).validate())
    prices = {c.label: c.cost for c in flops_candidates("gps", data.info, TINY, data.valid)}
    dense = analytic_flops_per_graph(structural_model("gps", data.info, TINY, {}), data.valid, 16)["pruned"]
    halved = analytic_flops_per_graph(structural_model("gps", data.info, TINY, {"tail": 0.5}), data.valid, 16)
    assert prices["tail=0.5"] == pytest.approx(halved["pruned"] / dense) and prices["tail=0.5"] < 1.0
    assert any(label.startswith("head=") and "tail=0.5" in label for label in prices)  # combined with the others


def test_the_toy_dimension_options_are_parsed_and_checked_by_its_dataclass(tail):
    assert tail.parse("0.5", {"scale": "2"}).scale == 2.0
    with pytest.raises(GtspError, match="scale=20.0 is outside"):
        RunConfig(prune={"tail": 0.5}, prune_args={"tail": {"scale": 20}}).validate()
    with pytest.raises(GtspError, match=r"unknown tail pruning option\(s\) \['width'\]"):
        RunConfig(prune={"tail": 0.5}, prune_args={"tail": {"width": 2}}).validate()
    assert "tail (scale=1.0)" in tail.help()


def test_without_registration_the_toy_dimension_is_unknown():
    with pytest.raises(GtspError, match=r"unknown pruning dimension\(s\) \['tail'\]"):
        RunConfig(prune={"tail": 0.5}).validate()
