"""The compaction plan: every structural decision a pruned model needs, and nothing else.

A plan holds one fragment per pruned dimension (:class:`gtsp.sparsify.dimension.Dimension`:
which heads, neurons or layers stay, how token selectors are set). With the backbone's
hyper-parameters it rebuilds the compacted architecture exactly, so a compacted model is stored
as ``(backbone, hyper-parameters, plan, state_dict)`` and loaded with a plain ``load_state_dict``
-- no pickled modules.

Fragments index the contract's declared order (:meth:`GraphTransformer.attention_modules`,
:meth:`~GraphTransformer.feedforwards`) of the model BEFORE layers are removed;
:func:`apply_plan` applies them in the registry's order, then lets the backbone shrink shared
state (``compact_shared``). Plans of earlier model files (one flat entry per dimension, e.g.
``kept_heads``) are read through each dimension's ``legacy_key``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from gtsp.errors import GtspError


@dataclass
class CompactionPlan:
    """``{dimension name: fragment}`` of the pruned dimensions."""

    fragments: dict[str, Any] = field(default_factory=dict)

    def get(self, name: str) -> Any:
        """The fragment of dimension ``name``, or None when it was not pruned."""
        return self.fragments.get(name)

    def to_dict(self) -> dict[str, Any]:
        from gtsp.sparsify import registry

        return {d.name: self.fragments[d.name].to_dict() for d in registry.dimensions() if d.name in self.fragments}

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> CompactionPlan:
        """The plan a model file or ``results.json`` recorded (today's or the earlier flat form)."""
        from gtsp.sparsify import registry

        values = dict(values or {})
        known = registry.dimensions()
        legacy = {d.legacy_key: d for d in known if d.legacy_key and d.legacy_key != d.name}
        fragments = {}
        if set(values) & set(legacy):
            for d in known:
                entry = values.pop(d.legacy_key, None) if d.legacy_key else None
                if entry is not None:
                    fragments[d.name] = d.fragment.from_legacy(entry)
            values = {k: v for k, v in values.items() if v is not None}
        by_name = {d.name: d for d in known}
        unknown = sorted(set(values) - set(by_name))
        if unknown:
            raise GtspError(f"compaction plan has unknown entries {unknown}: was it written by a newer gtsp?")
        fragments.update({name: by_name[name].fragment.from_dict(v) for name, v in values.items()})
        return cls(fragments)

    def merged(self, other: CompactionPlan) -> CompactionPlan:
        """This plan with ``other``'s fragments added; a dimension decided twice is an error."""
        clash = sorted(set(self.fragments) & set(other.fragments))
        if clash:
            raise GtspError(f"two sparsifiers decided {clash}: prune each dimension once")
        return CompactionPlan({**self.fragments, **other.fragments})


@torch.no_grad()
def apply_plan(model: nn.Module, plan: CompactionPlan) -> nn.Module:
    """Make ``model`` (a plain backbone: no masks, gates or wrappers) the architecture ``plan`` describes.

    Works on a freshly built model (then load the compacted ``state_dict``) and on a trained one
    whose masks were folded (then the kept weights are the trained ones). Returns ``model``.
    """
    from gtsp.sparsify import registry

    for dimension in registry.dimensions():
        if plan.get(dimension.name) is not None:
            plan.get(dimension.name).apply(model)
    model.compact_shared()
    return model


def check_count(what: str, planned: int, actual: int, at_most: bool = False) -> None:
    """Refuse a fragment made for a model with another number of blocks."""
    if planned > actual if at_most else planned != actual:
        raise GtspError(f"the compaction plan is for a model with {planned} {what}, this one has {actual}: "
                        "build the model with the hyper-parameters stored beside the plan")
