"""GTSP sparsifiers by dimension, and the builder the runner and CLI use.

``--prune token=0.5,head=0.5,layer=0.25,weight=0.5,neuron=0.5``: each ratio is the
fraction removed; ``prune_args`` (YAML) passes per-dimension options, e.g.
``{"head": {"mode": "topk"}, "weight": {"regrow": 0.3}}``.
"""
from __future__ import annotations

from typing import Any

from gtsp.errors import GtspError
from gtsp.sparsify.base import Sparsifier, check_ratio
from gtsp.sparsify.composite import CompositeSparsifier
from gtsp.sparsify.head import HeadSparsifier
from gtsp.sparsify.layer import LayerSparsifier
from gtsp.sparsify.neuron import NeuronSparsifier
from gtsp.sparsify.token import TokenSparsifier
from gtsp.sparsify.weight import WeightSparsifier

SPARSIFIERS: dict[str, type[Sparsifier]] = {
    "token": TokenSparsifier, "head": HeadSparsifier, "layer": LayerSparsifier,
    "weight": WeightSparsifier, "neuron": NeuronSparsifier,
}
DIMENSIONS = tuple(SPARSIFIERS)


def build_sparsifier(prune: dict[str, float], prune_args: dict[str, dict[str, Any]] | None = None,
                     seed: int = 0) -> CompositeSparsifier | None:
    """One sparsifier per nonzero ratio in ``prune``, joined; None when nothing is pruned."""
    prune_args = prune_args or {}
    unknown = sorted(set(prune) - set(SPARSIFIERS)) + sorted(set(prune_args) - set(SPARSIFIERS))
    if unknown:
        raise GtspError(f"unknown pruning dimension(s) {unknown}: choose from {', '.join(DIMENSIONS)}")
    members = []
    for dimension, ratio in prune.items():
        if check_ratio(dimension, ratio) == 0.0:
            continue
        options = dict(prune_args.get(dimension, {}))
        if "seed" in SPARSIFIERS[dimension].__init__.__code__.co_varnames:
            options.setdefault("seed", seed)
        members.append(SPARSIFIERS[dimension](ratio, **options))
    return CompositeSparsifier(members) if members else None


def sparsity_record(prune: dict[str, float]) -> dict[str, float]:
    """``{"token": r, "head": r, "layer": r, "weight": r, "neuron": r}`` with 0 where unused."""
    return {d: float(prune.get(d, 0.0)) for d in DIMENSIONS}


__all__ = ["SPARSIFIERS", "DIMENSIONS", "Sparsifier", "CompositeSparsifier", "build_sparsifier",
           "sparsity_record"]
