"""The compaction plan: every structural decision a pruned model needs, and nothing else.

A plan says which layers, heads and FFN neurons a compacted model keeps and how its token
selectors are set. With the backbone's hyper-parameters it rebuilds the compacted
architecture exactly, so a compacted model is stored as ``(backbone, hyper-parameters,
plan, state_dict)`` and loaded with a plain ``load_state_dict`` -- no pickled modules.

Lists follow the contract's declared order (:meth:`GraphTransformer.attention_modules`,
:meth:`~GraphTransformer.feedforwards`) of the model BEFORE layers are removed, so they do
not depend on which layers go; :func:`apply_plan` slices heads and neurons first, then
removes layers, then lets the backbone shrink shared state (``compact_shared``).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from torch import nn

from gtsp.errors import GtspError
from gtsp.sparsify.token_selector import TokenSelector


@dataclass
class CompactionPlan:
    """What a compacted model keeps (None: that dimension was not pruned).

    Attributes:
        kept_layers: indices of ``model.layers`` kept.
        kept_heads: per attention module, the kept head indices.
        kept_neurons: per feed-forward block, the kept hidden neurons.
        token: token selector settings (``ratio``, ``tau``, ``rule``) installed on every attention.
        weight_density: fraction of maskable weights left nonzero (informative: unstructured
            zeros live in the state dict, not in the architecture).
    """

    kept_layers: list[int] | None = None
    kept_heads: list[list[int]] | None = None
    kept_neurons: list[list[int]] | None = None
    token: dict[str, Any] | None = None
    weight_density: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> "CompactionPlan":
        values = values or {}
        unknown = sorted(set(values) - {f.name for f in fields(cls)})
        if unknown:
            raise GtspError(f"compaction plan has unknown entries {unknown}: was it written by a newer gtsp?")
        return cls(**values)

    def merged(self, other: dict[str, Any]) -> "CompactionPlan":
        """This plan with the non-None entries of ``other`` (a fragment from one sparsifier) set."""
        values = self.to_dict()
        clash = [k for k, v in other.items() if v is not None and values.get(k) is not None]
        if clash:
            raise GtspError(f"two sparsifiers decided {clash}: prune each dimension once")
        values.update({k: v for k, v in other.items() if v is not None})
        return CompactionPlan(**values)


@torch.no_grad()
def apply_plan(model: nn.Module, plan: CompactionPlan) -> nn.Module:
    """Make ``model`` (a plain backbone: no masks, gates or wrappers) the architecture ``plan`` describes.

    Works on a freshly built model (then load the compacted ``state_dict``) and on a trained one
    whose masks were folded (then the kept weights are the trained ones). Returns ``model``.
    """
    if plan.kept_heads is not None:
        attentions = model.attention_modules()
        _check_count("attention modules", len(plan.kept_heads), len(attentions))
        for (_, attention), keep in zip(attentions, plan.kept_heads):
            if len(keep) < attention.num_heads:
                attention.prune_heads(torch.as_tensor(keep, dtype=torch.long))
    if plan.kept_neurons is not None:
        ffns = model.feedforwards()
        _check_count("feed-forward blocks", len(plan.kept_neurons), len(ffns))
        for (_, ffn), keep in zip(ffns, plan.kept_neurons):
            if len(keep) < ffn.hidden:
                ffn.prune_neurons(torch.as_tensor(keep, dtype=torch.long))
    if plan.kept_layers is not None:
        _check_count("layers", max(plan.kept_layers, default=-1) + 1, len(model.layers), at_most=True)
        model.layers = nn.ModuleList(model.layers[i] for i in plan.kept_layers)
    model.compact_shared()
    if plan.token is not None:
        for _, attention in model.attention_modules():
            if attention.token_selector is None:
                weight = attention.qkv.weight
                attention.token_selector = TokenSelector(attention.dim, **plan.token).to(weight.device, weight.dtype)
    return model


def _check_count(what: str, planned: int, actual: int, at_most: bool = False) -> None:
    if planned > actual if at_most else planned != actual:
        raise GtspError(f"the compaction plan is for a model with {planned} {what}, this one has {actual}: "
                        "build the model with the hyper-parameters stored beside the plan")
