"""The exact cost of a pruning combination, priced on the model's own architecture before training.

Which heads, neurons or layers a run keeps does not change its cost: every structured dimension
keeps a fixed count per block, and gives the plan fragment that keeps the first units at a ratio
(:class:`gtsp.sparsify.dimension.Dimension` ``priced_fragment``, with ``grid``, its ratios worth
pricing). So the compacted architecture of any combination is built from the dense
hyper-parameters and one :class:`~gtsp.sparsify.CompactionPlan`, and then:

- FLOPs are counted on real validation graphs (:func:`gtsp.accounting.flops.analytic_flops_per_graph`).
  Executed FLOPs (``flops``, the default) are what the compacted model computes with dense
  kernels: unstructured weight zeros save nothing, so weight sparsity is not priced at all.
  Nominal FLOPs (``flops_nominal``, the paper's convention) scale the masked matrices' FLOPs
  linearly in their density, so two counts per structure (all masked weights kept, all zero, by
  the dimension's ``zero_priced``) price every weight ratio exactly, given per-layer densities
  (``budget_options``: ``scope: layer``, which budget runs use);
- latency is measured on one validation batch of the run's batch size, dense and compacted
  timed alternately in this process (a ratio on one machine, not an absolute time). Only
  dimensions whose savings execute are priced.
"""
from __future__ import annotations

import copy
import itertools
import statistics
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch_geometric.data import Batch, Data

from gtsp.accounting.flops import analytic_flops_per_graph
from gtsp.accounting.latency import measure_throughput
from gtsp.data.info import DatasetInfo
from gtsp.models import build_model
from gtsp.sparsify import CompactionPlan, apply_plan, registry
from gtsp.sparsify.dimension import Dimension

COST_GRAPHS = 16  # validation graphs each FLOP count runs on (spread over the split)
TIMING_REPEATS = 5  # ratios of tiny batches are noisy on a shared machine: median of 5


@dataclass(frozen=True)
class Candidate:
    """One combination of ratios (dimensions at 0 left out) and its cost as a fraction of dense."""

    ratios: dict[str, float]
    cost: float

    @property
    def label(self) -> str:
        return ",".join(f"{d}={self.ratios[d]:g}" for d in registry.names() if self.ratios.get(d)) or "dense"


def priced_dimensions(nominal: bool) -> list[Dimension]:
    """The dimensions a budget prices: those whose savings execute, and with ``nominal`` those that only count."""
    return [d for d in registry.dimensions() if (d.priced_fragment is not None and d.executes)
            or (nominal and not d.executes and d.zero_priced is not None)]


def dimension_grids(model: nn.Module, nominal: bool) -> dict[str, list[float]]:
    """Ratios worth trying per priced dimension for ``model``: each distinct kept count once, never an empty block."""
    return {d.name: d.grid_for(model) for d in priced_dimensions(nominal)}


def structural_model(name: str, info: DatasetInfo, hparams: dict[str, Any], ratios: dict[str, float]) -> nn.Module:
    """The compacted architecture of ``ratios`` (dimensions that execute), freshly initialised, in eval mode."""
    model = build_model(name, info, **hparams)
    plan = CompactionPlan({d.name: d.priced_fragment(model, ratios[d.name]) for d in priced_dimensions(False)
                           if ratios.get(d.name)})
    return apply_plan(model, plan).eval()


def _combinations(grids: dict[str, list[float]], dims: list[str]):
    for values in itertools.product(*(grids[d] for d in dims)):
        yield dict(zip(dims, values))


def flops_candidates(name: str, info: DatasetInfo, hparams: dict[str, Any], graphs: list[Data],
                     nominal: bool = False) -> list[Candidate]:
    """Every combination of the grids with its FLOPs per graph as a fraction of dense: executed FLOPs
    (dimensions that execute only), or with ``nominal`` also those that only count, at their density."""
    dense = build_model(name, info, **hparams)
    grids = dimension_grids(dense, nominal)
    executed = [d.name for d in priced_dimensions(False)]
    counted = [d for d in priced_dimensions(nominal) if not d.executes]
    base = analytic_flops_per_graph(dense, graphs, COST_GRAPHS)["pruned"]
    out = []
    for ratios in _combinations(grids, executed):
        model = structural_model(name, info, hparams, ratios)
        full = analytic_flops_per_graph(model, graphs, COST_GRAPHS)["pruned"]
        saved = {d.name: full - _zeroed_flops(model, d, graphs) for d in counted}
        for extra in _combinations(grids, [d.name for d in counted]):
            cost = full - sum(ratio * saved[d] for d, ratio in extra.items())
            out.append(Candidate(_nonzero({**ratios, **extra}), cost / base))
    return out


def _zeroed_flops(model: nn.Module, dimension: Dimension, graphs: list[Data]) -> float:
    """Counted FLOPs of ``model`` with everything ``dimension`` masks set to zero."""
    zeroed = copy.deepcopy(model)
    dimension.zero_priced(zeroed)
    return analytic_flops_per_graph(zeroed, graphs, COST_GRAPHS)["pruned"]


def latency_candidates(name: str, info: DatasetInfo, hparams: dict[str, Any], batch: Batch,
                       device: torch.device | str = "cpu") -> list[Candidate]:
    """Every combination of dimensions that execute with its measured inference time on ``batch`` (on
    ``device``, where the run will train and be measured) as a fraction of dense."""
    batch = batch.to(device)
    dense = build_model(name, info, **hparams).to(device).eval()
    grids = dimension_grids(dense, nominal=False)
    out = []
    for ratios in _combinations(grids, list(grids)):
        if not any(ratios.values()):
            out.append(Candidate({}, 1.0))
            continue
        model = structural_model(name, info, hparams, ratios).to(device)
        ratio = [_seconds(model, batch, device) / _seconds(dense, batch, device) for _ in range(TIMING_REPEATS)]
        out.append(Candidate(_nonzero(ratios), statistics.median(ratio)))
    return out


def _seconds(model: nn.Module, batch: Batch, device: torch.device | str) -> float:
    return measure_throughput(model, [batch], repeats=3, device=device)["seconds_per_pass"]


def _nonzero(ratios: dict[str, float]) -> dict[str, float]:
    return {d: r for d, r in ratios.items() if r}
