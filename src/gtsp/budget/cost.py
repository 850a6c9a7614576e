"""The exact cost of a pruning combination, priced on the model's own architecture before training.

Which heads, neurons or layers a run keeps does not change its cost: every sparsifier keeps a
fixed count per block (``round((1 - r) * H)`` heads per attention, ``(1 - r)`` of each FFN's
neurons, ``round(r * L)`` layers removed, ``ceil((1 - r) * n_i)`` tokens per graph). So the
compacted architecture of any combination can be built from the dense hyper-parameters and a
:class:`~gtsp.sparsify.plan.CompactionPlan` that keeps the first units, and then:

- FLOPs are counted on real validation graphs (:func:`gtsp.accounting.flops.analytic_flops_per_graph`).
  Executed FLOPs (``flops``, the default) are what the compacted model computes with dense
  kernels: unstructured weight zeros save nothing, so weight sparsity is not priced at all.
  Nominal FLOPs (``flops_nominal``, the paper's convention) scale the masked matrices' FLOPs
  linearly in their density, so two counts per structure (all masked weights kept, all zero)
  price every weight ratio exactly, given per-layer densities (``scope: layer``, which budget runs use);
- latency is measured on one validation batch of the run's batch size, dense and compacted
  timed alternately in this process (a ratio on one machine, not an absolute time). Weight
  sparsity saves no time here, so latency budgets use the structured dimensions only.
"""
from __future__ import annotations

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
from gtsp.sparsify.head import heads_to_keep
from gtsp.sparsify.layer import layers_to_remove
from gtsp.sparsify.plan import CompactionPlan, apply_plan
from gtsp.sparsify.schedules import keep_count

STRUCTURAL_GRID = (0.0, 0.25, 0.5, 0.75)  # tried in token, head, layer and neuron
WEIGHT_GRID = (0.0, 0.3, 0.5, 0.7, 0.9)
COST_GRAPHS = 16  # validation graphs each FLOP count runs on (spread over the split)
TIMING_REPEATS = 5  # ratios of tiny batches are noisy on a shared machine: median of 5


@dataclass(frozen=True)
class Candidate:
    """One combination of ratios (dimensions at 0 left out) and its cost as a fraction of dense."""

    ratios: dict[str, float]
    cost: float

    @property
    def label(self) -> str:
        return ",".join(f"{d}={r:g}" for d, r in self.ratios.items()) or "dense"


def dimension_grids(model: nn.Module, with_weight: bool) -> dict[str, list[float]]:
    """Ratios worth trying per dimension for ``model``: each distinct kept count once, never an empty block."""
    attentions = [m for _, m in model.attention_modules()]
    heads = attentions[0].num_heads if attentions else 0
    hidden = min((f.hidden for _, f in model.feedforwards()), default=0)
    layers = len(model.layers)
    grids = {
        "token": list(STRUCTURAL_GRID) if attentions else [0.0],
        "head": _distinct(lambda r: heads_to_keep(r, heads), lambda k: k >= 1) if heads else [0.0],
        "layer": _distinct(lambda r: layers_to_remove(r, layers), lambda k: k < layers),
        "neuron": _distinct(lambda r: keep_count(1.0 - r, hidden), lambda k: k >= 1) if hidden else [0.0],
    }
    if with_weight:
        grids["weight"] = list(WEIGHT_GRID)
    return grids


def _distinct(count, allowed) -> list[float]:
    ratios, seen = [], set()
    for ratio in STRUCTURAL_GRID:
        kept = count(ratio)
        if allowed(kept) and kept not in seen:
            seen.add(kept)
            ratios.append(ratio)
    return ratios


def structural_model(name: str, info: DatasetInfo, hparams: dict[str, Any], ratios: dict[str, float]) -> nn.Module:
    """The compacted architecture of ``ratios`` (token, head, layer, neuron), freshly initialised, in eval mode."""
    model = build_model(name, info, **hparams)
    plan = CompactionPlan(token={"ratio": ratios["token"]} if ratios.get("token") else None)
    if ratios.get("head"):
        plan.kept_heads = [list(range(heads_to_keep(ratios["head"], a.num_heads))) for _, a in model.attention_modules()]
    if ratios.get("neuron"):
        plan.kept_neurons = [list(range(keep_count(1.0 - ratios["neuron"], f.hidden))) for _, f in model.feedforwards()]
    if ratios.get("layer"):
        plan.kept_layers = list(range(len(model.layers) - layers_to_remove(ratios["layer"], len(model.layers))))
    return apply_plan(model, plan).eval()


@torch.no_grad()
def _zero_masked_weights(model: nn.Module) -> None:
    for _, linear in model.prunable_linears():
        linear.weight.zero_()


def _combinations(grids: dict[str, list[float]], dims: tuple[str, ...]):
    for values in itertools.product(*(grids[d] for d in dims)):
        yield dict(zip(dims, values))


def flops_candidates(name: str, info: DatasetInfo, hparams: dict[str, Any], graphs: list[Data],
                     nominal: bool = False) -> list[Candidate]:
    """Every combination of the grids with its FLOPs per graph as a fraction of dense: executed FLOPs
    (structured dimensions only), or with ``nominal`` also weight sparsity at its density."""
    dense = build_model(name, info, **hparams)
    grids = dimension_grids(dense, with_weight=nominal)
    base = analytic_flops_per_graph(dense, graphs, COST_GRAPHS)["pruned"]
    out = []
    for ratios in _combinations(grids, ("token", "head", "layer", "neuron")):
        model = structural_model(name, info, hparams, ratios)
        full = analytic_flops_per_graph(model, graphs, COST_GRAPHS)["pruned"]
        if not nominal:
            out.append(Candidate(_nonzero(ratios), full / base))
            continue
        _zero_masked_weights(model)
        empty = analytic_flops_per_graph(model, graphs, COST_GRAPHS)["pruned"]
        for weight in grids["weight"]:
            cost = empty + (1.0 - weight) * (full - empty)
            out.append(Candidate(_nonzero({**ratios, "weight": weight}), cost / base))
    return out


def latency_candidates(name: str, info: DatasetInfo, hparams: dict[str, Any], batch: Batch,
                       device: torch.device | str = "cpu") -> list[Candidate]:
    """Every structured combination with its measured inference time on ``batch`` (on ``device``, where
    the run will train and be measured) as a fraction of dense."""
    batch = batch.to(device)
    dense = build_model(name, info, **hparams).to(device).eval()
    grids = dimension_grids(dense, with_weight=False)
    out = []
    for ratios in _combinations(grids, ("token", "head", "layer", "neuron")):
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
