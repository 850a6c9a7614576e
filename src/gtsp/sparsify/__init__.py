"""GTSP sparsifiers by dimension, and the builder the runner and CLI use.

``--prune token=0.5,head=0.5,layer=0.25,weight=0.5,neuron=0.5``: each ratio is the
fraction removed; ``prune_args`` (YAML) passes per-dimension options, e.g.
``{"head": {"mode": "topk"}, "weight": {"regrow": 0.3}}``. What each dimension is and accepts
is declared once, by its :class:`~gtsp.sparsify.dimension.Dimension` in :mod:`gtsp.sparsify.registry`.
"""
from __future__ import annotations

from typing import Any

from gtsp.errors import GtspError
from gtsp.sparsify import registry
from gtsp.sparsify.base import Sparsifier
from gtsp.sparsify.composite import CompositeSparsifier
from gtsp.sparsify.plan import CompactionPlan, apply_plan


def check_pruning(prune: dict[str, Any], prune_args: dict[str, Any] | None = None,
                  seed: int | None = None) -> dict[str, Any]:
    """``{dimension: checked options}`` for every dimension in ``prune`` (ratio 0 included), or one
    clear error: an unknown dimension or option, a value of the wrong type or range, options of a
    dimension that is not pruned."""
    prune_args = prune_args or {}
    for name, options in prune_args.items():
        registry.dimension(name)
        if not isinstance(options, dict):
            raise GtspError(f"prune_args.{name}={options!r} is not a mapping of options: write e.g. "
                            f"--prune-arg {name}.KEY=VALUE")
        if not prune.get(name):
            listed = ", ".join(f"{name}.{key}" for key in options)
            raise GtspError(f"pruning options {listed} are given but {name} is not pruned: add "
                            f"--prune {name}=R, or drop the options")
    return {name: registry.dimension(name).parse(ratio, prune_args.get(name), seed) for name, ratio in prune.items()}


def build_sparsifier(prune: dict[str, float], prune_args: dict[str, dict[str, Any]] | None = None,
                     seed: int = 0) -> CompositeSparsifier | None:
    """One sparsifier per nonzero ratio in ``prune``, joined; None when nothing is pruned."""
    checked = check_pruning(prune, prune_args, seed)
    members = [registry.dimension(name).build(options) for name, options in checked.items() if options.ratio]
    return CompositeSparsifier(members) if members else None


def sparsity_record(prune: dict[str, float]) -> dict[str, float]:
    """Every registered dimension's ratio, 0 where unused."""
    return {d: float(prune.get(d, 0.0)) for d in registry.names()}


def training_needs(prune: dict[str, float]) -> dict[str, bool]:
    """What training must allow for the pruned dimensions: ``unused_parameters`` (DDP)."""
    pruned = [registry.dimension(name) for name, ratio in prune.items() if ratio]
    return {"unused_parameters": any(d.unused_parameters for d in pruned)}


__all__ = ["Sparsifier", "CompositeSparsifier", "CompactionPlan", "apply_plan", "build_sparsifier", "check_pruning", "sparsity_record",
           "training_needs"]
