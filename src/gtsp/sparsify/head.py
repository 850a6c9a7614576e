"""Head pruning: keep a fixed number of attention heads per layer (GTSP, Liu et al., Neural Networks 2024).

Every attention module the backbone declares keeps ``round((1 - ratio) * H)`` of its ``H``
heads through a :class:`HeadGate` put in its ``head_transform`` slot: a 0/1 gate per head
multiplied into the head outputs. A head's importance is the accumulated
``|<head output, dL/d gated head output>|`` per graph (the gradient of the loss with respect
to the head's gate, Michel et al., NeurIPS 2019, "Are Sixteen Heads Really Better than
One?"), which the gate records while training. It is meaningful for inactive heads too: the
gradient with respect to a gate exists at 0.

Modes:

- ``"dynamic"`` (the paper): start from a random subset at the target density; every
  ``update_every`` optimiser steps, in each layer, the ``death_ratio`` fraction of active
  heads with the lowest score die and as many previously inactive heads with the highest
  score grow back (regrowth among heads that were inactive BEFORE this update, so a head
  cannot die and regrow at once), then the scores restart. The set stops changing after
  the first ``1 - settle_fraction`` of training, and only epochs after the last change
  may be selected as the best model.
- ``"topk"``: train dense while accumulating scores; at ``prune_epoch`` (default: half of
  training) keep the top-scoring heads of each layer and fine-tune the rest of the way.

Compaction plans the active heads of every attention; the gates (0/1, or soft values) are
folded into each ``out`` projection and :func:`gtsp.sparsify.plan.apply_plan` slices the
projections and lets the backbone drop shared per-head state (``compact_shared``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from gtsp.errors import GtspError
from gtsp.sparsify.base import Sparsifier, check_contract
from gtsp.sparsify.dimension import Dimension, Fragment, RatioOptions, check_choice, check_range, distinct_ratios
from gtsp.sparsify.plan import CompactionPlan, check_count
from gtsp.sparsify.sync import mean_across_ranks

MODES = ("dynamic", "topk")


@dataclass(frozen=True)
class HeadOptions(RatioOptions):
    """Options of head pruning (see :class:`HeadSparsifier`)."""

    dimension_name: ClassVar[str] = "head"
    mode: str = "dynamic"
    update_every: int = 200
    death_ratio: float = 0.5
    seed: int = 0
    prune_epoch: int | None = None
    settle_fraction: float = 0.1

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("head", "mode", self.mode, MODES)
        check_range("head", "update_every", self.update_every, 1)
        check_range("head", "death_ratio", self.death_ratio, 0.0, 1.0, high_open=False)
        check_range("head", "settle_fraction", self.settle_fraction, 0.0, 1.0)


@dataclass
class HeadFragment(Fragment):
    """The kept head indices of every attention module (declared order, before layers go)."""

    kept: list[list[int]]

    @classmethod
    def from_legacy(cls, value: Any) -> HeadFragment:
        return cls(value)

    def apply(self, model: nn.Module) -> None:
        attentions = named_attentions(model)
        check_count("attention modules", len(self.kept), len(attentions))
        for (_, attention), keep in zip(attentions, self.kept):
            if len(keep) < attention.num_heads:
                attention.prune_heads(torch.as_tensor(keep, dtype=torch.long))


class HeadGate(nn.Module):
    """A gate per head on the ``[B, H, L, d]`` head outputs, and the importance it records.

    Attributes:
        gate: ``[H]`` multiplier of each head's output (0/1 while pruning).
        scores: ``[H]`` accumulated ``|<head output, dL/d gated output>|`` summed over graphs.
        record: accumulate ``scores`` on every backward pass.
    """

    def __init__(self, num_heads: int) -> None:
        super().__init__()
        self.register_buffer("gate", torch.ones(num_heads))
        self.register_buffer("scores", torch.zeros(num_heads))
        self.record = True

    def forward(self, heads: Tensor) -> Tensor:
        gated = heads * self.gate.view(1, -1, 1, 1)
        if self.record and gated.requires_grad:
            gated.register_hook(self._score_hook(heads.detach()))
        return gated

    def _score_hook(self, heads: Tensor):
        def accumulate(grad: Tensor) -> None:
            per_graph = (heads * grad).sum(dim=(2, 3))  # dL/d gate, one value per graph and head
            self.scores.add_(per_graph.abs().sum(0))
        return accumulate


def named_attentions(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The backbone's attention modules (its declared contract)."""
    return model.attention_modules()


def gate_of(attention: nn.Module) -> HeadGate:
    gate = attention.head_transform
    if not isinstance(gate, HeadGate):
        raise GtspError("this attention has no head gate: call HeadSparsifier.prepare(model) first")
    return gate


def heads_to_keep(ratio: float, num_heads: int) -> int:
    """``round((1 - ratio) * H)`` (Python rounding: half to even), with float noise removed first."""
    return round(round((1.0 - ratio) * num_heads, 9))


class HeadSparsifier(Sparsifier):
    """Keeps ``round((1 - ratio) * H)`` heads in every attention layer.

    Args:
        ratio: fraction of heads REMOVED per layer, ``0 <= ratio < 1``.
        mode: ``"dynamic"`` (death and regrowth at a fixed density) or ``"topk"`` (dense, then one cut).
        update_every: optimiser steps between two death/regrowth rounds (dynamic).
        death_ratio: fraction of active heads replaced per round, rounded up (dynamic).
        seed: seed of the initial random head subset (dynamic).
        prune_epoch: epoch after which the top heads are kept (topk; default ``epochs // 2``).
        settle_fraction: final fraction of training without head changes (dynamic).

    ``compact(model)`` returns a copy with every attention sliced to its active heads, and its plan.
    """

    dimension = "head"

    def __init__(self, ratio: float, mode: str = "dynamic", update_every: int = 200, death_ratio: float = 0.5,
                 seed: int = 0, prune_epoch: int | None = None, settle_fraction: float = 0.1) -> None:
        super().__init__(HeadOptions(ratio, mode, update_every, death_ratio, seed, prune_epoch, settle_fraction))
        self.mode, self.update_every, self.death_ratio = mode, int(update_every), float(death_ratio)
        self.seed, self.prune_epoch, self.settle_fraction = int(seed), prune_epoch, float(settle_fraction)
        self.last_update_step: int | None = None  # no head changes after this step (known after schedule)
        self.updates = 0
        self.pruned = mode == "dynamic"  # topk: the cut has not happened yet
        self.kept_heads: list[list[int]] | None = None  # frozen at compaction
        self.heads_per_layer: list[int] = []
        self._pending: list[list[int]] | None = None

    # ---- life cycle ------------------------------------------------------------------------------
    def prepare(self, model: nn.Module) -> nn.Module:
        attentions = named_attentions(check_contract(model, self.dimension))
        if not attentions:
            raise GtspError("head pruning needs attention heads; this model has none "
                            "(e.g. GPS with --heads 0): give the model attention heads or drop --prune head")
        emptied = [f"{name or 'model'} ({a.num_heads} heads)" for name, a in attentions
                   if heads_to_keep(self.ratio, a.num_heads) == 0]
        if emptied:
            fewest = min(a.num_heads for _, a in attentions)
            raise GtspError(f"--prune head={self.ratio} keeps round({1 - self.ratio:g} x H) = 0 heads in "
                            f"{', '.join(emptied)}: use a ratio below {1 - 0.5 / fewest:.3f} "
                            "(at least one head must stay) or more heads per layer")
        generator = torch.Generator().manual_seed(self.seed)
        for _, attention in attentions:
            if isinstance(attention.head_transform, HeadGate):
                raise GtspError("this model already has head gates: prepare head pruning only once")
            weight = attention.qkv.weight
            attention.head_transform = HeadGate(attention.num_heads).to(weight.device)
            if self.mode == "dynamic":
                keep = heads_to_keep(self.ratio, attention.num_heads)
                _set_active(attention, torch.randperm(attention.num_heads, generator=generator)[:keep].tolist())
            else:
                _set_active(attention, list(range(attention.num_heads)))
        self.heads_per_layer = [a.num_heads for _, a in attentions]
        self.model = model
        if self._pending is not None:
            self._apply(self._pending)
            self._pending = None
        return model

    def schedule(self, epochs: int, steps_per_epoch: int) -> None:
        super().schedule(epochs, steps_per_epoch)
        settled = math.floor((1.0 - self.settle_fraction) * epochs * steps_per_epoch)
        self.last_update_step = settled // self.update_every * self.update_every
        if self.prune_epoch is None:
            self.prune_epoch = max(1, epochs // 2)

    def settle_by(self, epoch: int) -> None:
        if self.mode == "topk":
            self.prune_epoch = min(self.prune_epoch, epoch)
            return
        last = epoch * self.steps_per_epoch // self.update_every * self.update_every
        self.last_update_step = last if self.last_update_step is None else min(self.last_update_step, last)

    def on_step(self, step: int) -> None:
        if self.mode != "dynamic" or step % self.update_every:
            return
        if self.last_update_step is not None and step > self.last_update_step:
            return
        self._death_and_regrowth()

    def on_epoch_end(self, epoch: int) -> None:
        if self.mode == "topk" and not self.pruned and self.prune_epoch is not None and epoch >= self.prune_epoch:
            self._keep_top()

    def selectable(self, epoch: int) -> bool:
        if self.mode == "topk":
            return self.pruned
        if self.last_update_step is None:
            return True
        return epoch * self.steps_per_epoch >= self.last_update_step

    def state_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "updates": self.updates, "pruned": self.pruned,
                "prune_epoch": self.prune_epoch, "last_update_step": self.last_update_step,
                "active": self.active_heads() if self.model is not None else self._pending,
                "kept_heads": self.kept_heads}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.updates, self.pruned = state["updates"], state["pruned"]
        self.prune_epoch, self.last_update_step = state["prune_epoch"], state["last_update_step"]
        self.kept_heads = state.get("kept_heads")
        if state["active"] is None:
            return
        if self.model is None:
            self._pending = [list(a) for a in state["active"]]
        else:
            self._apply(state["active"])

    def plan(self, model: nn.Module) -> CompactionPlan:
        attentions = named_attentions(model)
        if self.mode == "topk" and not self.pruned:
            self._keep_top(attentions)  # training ended before prune_epoch: cut now
        kept = []
        for name, attention in attentions:
            keep = gate_of(attention).gate.nonzero().flatten().tolist()
            if not keep:
                raise GtspError(f"head compaction: {name} has no active head left; this is a bug, please report it")
            kept.append(keep)
        self.kept_heads = kept
        return CompactionPlan({self.dimension: HeadFragment(kept)})

    @torch.no_grad()
    def strip(self, model: nn.Module) -> None:
        """Fold each gate into its attention's output (pruned heads' contributions become 0) and remove it."""
        for _, attention in named_attentions(model):
            attention.scale_heads(gate_of(attention).gate)
            attention.head_transform = None

    def summary(self) -> dict[str, Any]:
        active = self.kept_heads if self.kept_heads is not None else (
            self.active_heads() if self.model is not None else [])
        return {"ratio": self.ratio, "mode": self.mode, "updates": self.updates,
                "heads_per_layer": self.heads_per_layer, "kept_per_layer": [len(a) for a in active],
                "kept_heads": active}

    # ---- head sets -------------------------------------------------------------------------------
    def active_heads(self) -> list[list[int]]:
        """Active head indices of every attention layer (model order)."""
        return [gate_of(a).gate.nonzero().flatten().tolist() for _, a in named_attentions(self.model)]

    def head_scores(self) -> list[list[float]]:
        """Accumulated importance of every head since the last update (for the analysis tools)."""
        return [gate_of(a).scores.tolist() for _, a in named_attentions(self.model)]

    def _apply(self, active: list[list[int]]) -> None:
        attentions = named_attentions(self.model)
        if len(active) != len(attentions):
            raise GtspError(f"the head pruning state has {len(active)} attention layers, the model {len(attentions)}: "
                            "resume with the same model settings")
        for (_, attention), heads in zip(attentions, active):
            _set_active(attention, heads)

    @torch.no_grad()
    def _death_and_regrowth(self) -> None:
        for _, attention in named_attentions(self.model):
            gate, scores = gate_of(attention).gate, mean_across_ranks(gate_of(attention).scores)
            active, inactive = gate.nonzero().flatten(), (gate == 0).nonzero().flatten()
            count = min(math.ceil(self.death_ratio * active.numel()), inactive.numel())
            if count:
                dying = active[scores[active].topk(count, largest=False).indices]
                growing = inactive[scores[inactive].topk(count).indices]
                gate[dying] = 0.0
                gate[growing] = 1.0
            scores.zero_()
        self.updates += 1

    @torch.no_grad()
    def _keep_top(self, attentions: list[tuple[str, nn.Module]] | None = None) -> None:
        for _, attention in attentions if attentions is not None else named_attentions(self.model):
            keep = heads_to_keep(self.ratio, attention.num_heads)
            scores = mean_across_ranks(gate_of(attention).scores)
            _set_active(attention, scores.topk(keep).indices.tolist())
            scores.zero_()
        self.pruned = True


@torch.no_grad()
def _set_active(attention: nn.Module, heads: list[int]) -> None:
    gate = gate_of(attention).gate
    gate.zero_()
    gate[torch.as_tensor(heads, dtype=torch.long, device=gate.device)] = 1.0


def _grid(model: nn.Module) -> list[float]:
    attentions = named_attentions(model)
    if not attentions:
        return [0.0]
    heads = attentions[0][1].num_heads
    return distinct_ratios(lambda r: heads_to_keep(r, heads), lambda kept: kept >= 1)


def _priced(model: nn.Module, ratio: float) -> HeadFragment:
    """The first ``round((1 - ratio) * H)`` heads of every attention (which ones does not change the cost)."""
    return HeadFragment([list(range(heads_to_keep(ratio, a.num_heads))) for _, a in named_attentions(model)])


DIMENSION = Dimension(name="head", options=HeadOptions, sparsifier=HeadSparsifier, fragment=HeadFragment,
                      label="attention heads", colour="tab:orange", grid=_grid, priced_fragment=_priced,
                      legacy_key="kept_heads")
