"""GTSP sparsifiers by dimension, and the builder the runner and CLI use.

``--prune token=0.5,head=0.5,layer=0.25,weight=0.5,neuron=0.5``: each ratio is the
fraction removed; ``prune_args`` (YAML) passes per-dimension options, e.g.
``{"head": {"mode": "topk"}, "weight": {"regrow": 0.3}}``.
"""
from __future__ import annotations

import importlib
import inspect
from typing import Any

from gtsp.errors import GtspError
from gtsp.sparsify.base import Sparsifier, check_ratio
from gtsp.sparsify.composite import CompositeSparsifier

# dimension -> (module, class); imported on first use, so a dense run loads none of them
SPARSIFIERS: dict[str, tuple[str, str]] = {
    "token": ("gtsp.sparsify.token", "TokenSparsifier"),
    "head": ("gtsp.sparsify.head", "HeadSparsifier"),
    "layer": ("gtsp.sparsify.layer", "LayerSparsifier"),
    "weight": ("gtsp.sparsify.weight", "WeightSparsifier"),
    "neuron": ("gtsp.sparsify.neuron", "NeuronSparsifier"),
}
DIMENSIONS = tuple(SPARSIFIERS)


def sparsifier_class(dimension: str) -> type[Sparsifier]:
    """The class that prunes ``dimension``."""
    module, name = SPARSIFIERS[dimension]
    return getattr(importlib.import_module(module), name)


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
        cls = sparsifier_class(dimension)
        options = dict(prune_args.get(dimension, {}))
        accepted = [name for name in inspect.signature(cls).parameters if name != "ratio"]
        wrong = sorted(set(options) - set(accepted))
        if wrong:
            raise GtspError(f"unknown {dimension} pruning option(s) {wrong}: choose from {', '.join(accepted)}")
        if "seed" in accepted:
            options.setdefault("seed", seed)
        members.append(cls(ratio, **options))
    return CompositeSparsifier(members) if members else None


def sparsity_record(prune: dict[str, float]) -> dict[str, float]:
    """``{"token": r, "head": r, "layer": r, "weight": r, "neuron": r}`` with 0 where unused."""
    return {d: float(prune.get(d, 0.0)) for d in DIMENSIONS}


__all__ = ["SPARSIFIERS", "DIMENSIONS", "Sparsifier", "CompositeSparsifier", "build_sparsifier", "sparsifier_class",
           "sparsity_record"]
