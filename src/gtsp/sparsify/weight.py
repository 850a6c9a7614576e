"""GTSP's weight dimension: unstructured gradual magnitude pruning with regrowth.

GTSP (Liu et al. 2024, "Exploring Sparsity in Graph Transformers") prunes single
weights of the linear layers from density 1 to ``1 - ratio`` while training:

- gradual magnitude pruning on the cubic schedule of Zhu & Gupta (2017), see
  :mod:`gtsp.sparsify.schedules`;
- regrowth as in GraNet (Liu et al., NeurIPS 2021) and RigL (Evci et al., ICML 2020):
  at each update, after pruning to the schedule's density, a further fraction of
  the smallest surviving weights is dropped and as many pruned weights come back,
  those with the largest DENSE gradient (the gradient of the loss with respect to
  the effective weight, which masking would otherwise zero); they restart at 0.

Which weights are masked: the ones the backbone declares
(:meth:`gtsp.models.base.GraphTransformer.prunable_linears`): ``qkv`` and ``out`` of every
attention, ``fc1`` and ``fc2`` of every feed-forward block (transformer FFNs and GIN/GINE
MLPs), and the Linear children of message-passing convolutions (GCN's ``lin``). Never
masked: input encoders, embeddings, Graphormer's bias tables, GraphTrans's GNN-to-transformer
projection, the prediction head, biases and norms, and modules other sparsifiers attach.

Masks live beside the weights as ``torch.nn.utils.parametrize`` parametrizations
(:class:`WeightMask`, the idea of ``torch.ao.pruning``'s FakeSparsity), so they are
part of the model's state dict; compaction folds them in and leaves plain Linear layers
holding zeros. Unstructured zeros save FLOPs only on
paper (density x dense, as the paper counts) -- for real speed see
:mod:`gtsp.sparsify.neuron`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from gtsp.errors import GtspError
from gtsp.sparsify.base import check_contract
from gtsp.sparsify.dimension import Dimension, Fragment, check_choice, check_range
from gtsp.sparsify.plan import CompactionPlan
from gtsp.sparsify.schedules import CubicSchedule, GradualOptions, GradualSparsifier, cosine_decay, keep_count
from gtsp.sparsify.sync import mean_across_ranks

SCOPES = ("global", "layer")
WEIGHT_GRID = (0.0, 0.3, 0.5, 0.7, 0.9)  # ratios a nominal-FLOPs budget tries


@dataclass(frozen=True)
class WeightOptions(GradualOptions):
    """Options of weight pruning (see :class:`WeightSparsifier`)."""

    dimension_name: ClassVar[str] = "weight"
    regrow: float = 0.3
    scope: str = "global"
    seed: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range("weight", "regrow", self.regrow, 0.0, 1.0)
        check_choice("weight", "scope", self.scope, SCOPES)


@dataclass
class WeightFragment(Fragment):
    """The fraction of maskable weights left nonzero. Informative: unstructured zeros live in the
    state dict, not in the architecture, so applying it changes nothing."""

    density: float

    @classmethod
    def from_legacy(cls, value: Any) -> WeightFragment:
        return cls(float(value))

    def apply(self, model: nn.Module) -> None:
        """Nothing to build: the zeros are in the weights."""


class WeightMask(nn.Module):
    """Parametrization ``weight -> weight * mask`` that also records the dense gradient.

    ``mask`` (0/1, the weight's dtype) is a buffer, saved with the model. While
    ``record`` is on, every backward pass adds ``|dL/d(weight * mask)|`` to
    ``grad_score`` (not saved with the model; the sparsifier checkpoints it):
    that gradient is nonzero at pruned entries too, which regrowth needs.
    """

    def __init__(self, weight: Tensor) -> None:
        super().__init__()
        self.register_buffer("mask", torch.ones_like(weight))
        self.register_buffer("grad_score", torch.zeros_like(weight), persistent=False)
        self.record = False

    def forward(self, weight: Tensor) -> Tensor:
        masked = weight * self.mask
        if self.record and masked.requires_grad:
            masked.register_hook(self._accumulate)
        return masked

    def _accumulate(self, grad: Tensor) -> None:
        self.grad_score.add_(grad.detach().abs().to(self.grad_score.dtype))


def weight_mask(module: nn.Module) -> WeightMask | None:
    """The :class:`WeightMask` parametrizing ``module.weight``, if any."""
    if not parametrize.is_parametrized(module, "weight"):
        return None
    return next((p for p in module.parametrizations.weight if isinstance(p, WeightMask)), None)


@dataclass
class MaskedLayer:
    """One masked Linear: its name in the model, the module, and its mask."""

    name: str
    module: nn.Module
    mask: WeightMask

    @property
    def original(self) -> Tensor:
        return self.module.parametrizations.weight.original


class WeightSparsifier(GradualSparsifier):
    """Gradual magnitude pruning of block weights with gradient-based regrowth.

    Args:
        ratio: final fraction of masked weights removed, in [0, 1).
        start_epoch: last epoch at full density (default 10% of training).
        end_epoch: epoch at whose end ``1 - ratio`` is reached exactly (default 80%).
        update_every: optimiser steps between mask updates (200 in GTSP).
        regrow: fraction of surviving weights swapped per update at the start of the
            window, decaying with a half cosine to 0 at its end (0 disables regrowth).
        scope: ``"global"`` ranks all masked weights together (GTSP's choice);
            ``"layer"`` gives every layer the same density.
        seed: seeds the random tie-breaking between equal scores.
    """

    dimension = "weight"

    def __init__(self, ratio: float, start_epoch: int | None = None, end_epoch: int | None = None,
                 update_every: int = 200, regrow: float = 0.3, scope: str = "global", seed: int = 0) -> None:
        super().__init__(WeightOptions(ratio, start_epoch, end_epoch, update_every, regrow, scope, seed))
        self.regrow, self.scope = float(regrow), scope
        self.generator = torch.Generator().manual_seed(seed)
        self.layers: list[MaskedLayer] = []
        self.history: list[dict[str, Any]] = []
        self.last_step = 0

    # ---- life cycle --------------------------------------------------------------------------
    def prepare(self, model: nn.Module) -> nn.Module:
        """Parametrize every weight the rule selects with a :class:`WeightMask` (idempotent)."""
        self.model, self.layers = model, []
        for name, module in check_contract(model, self.dimension).prunable_linears():
            mask = weight_mask(module)
            if mask is None:
                mask = WeightMask(module.weight)
                parametrize.register_parametrization(module, "weight", mask)
            self.layers.append(MaskedLayer(name, module, mask))
        if not self.layers:
            raise GtspError(f"{type(model).__name__} declares no attention, feed-forward or message-passing "
                            "Linear layers: weight pruning has nothing to mask")
        return model

    def schedule(self, epochs: int, steps_per_epoch: int) -> None:
        super().schedule(epochs, steps_per_epoch)
        self._set_recording(self.last_step)

    def on_step(self, step: int) -> None:
        plan = self._plan()
        if step == plan.start_step:
            self._reset_scores()  # gradients before the window say nothing about its first update
        if plan.is_update(step) and self.ratio > 0:
            self._update(step)
        self.last_step = step
        self._set_recording(step)

    def plan(self, model: nn.Module) -> CompactionPlan:
        return CompactionPlan({self.dimension: WeightFragment(self.summary()["achieved_density"])})

    def strip(self, model: nn.Module) -> None:
        """Fold every :class:`WeightMask` of ``model`` into its weight (in place): plain Linear layers with zeros."""
        for module in list(model.modules()):
            if weight_mask(module) is not None:
                _own_parametrized_class(module)
                parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)

    # ---- mask updates ------------------------------------------------------------------------
    @torch.no_grad()
    def _update(self, step: int) -> None:
        plan = self._plan()
        density = plan.density(step)
        explore = self.regrow * cosine_decay(plan.progress(step))
        groups = [self.layers] if self.scope == "global" else [[layer] for layer in self.layers]
        record = {"step": step, "density": density, "kept": 0, "pruned": 0, "regrown": 0}
        for group in groups:
            for key, count in zip(("kept", "pruned", "regrown"), self._update_group(group, density, explore)):
                record[key] += count
        self.history.append(record)
        self._reset_scores()  # the next regrowth ranks the gradients seen since this update

    def _update_group(self, group: list[MaskedLayer], density: float, explore: float) -> tuple[int, int, int]:
        """Prune ``group`` (ranked together) to ``density``, then swap a fraction ``explore`` of survivors."""
        active = _flat([layer.mask.mask for layer in group]).bool()
        magnitude = mean_across_ranks(_flat([layer.module.weight.abs() for layer in group]))
        keep = keep_count(density, active.numel())
        # Pruned entries rank below every active one, so a shrinking density never revives them.
        new = self._select(torch.where(active, magnitude, -1.0), keep)
        pruned = int(active.sum()) - keep
        swap = min(int(explore * keep), active.numel() - keep)
        grown = torch.zeros_like(new)
        if swap > 0:
            candidates = ~new  # pruned before, or just now by the schedule; not the ones dropped below
            drop = self._select(torch.where(new, -magnitude, -torch.inf), swap)
            grads = mean_across_ranks(_flat([layer.mask.grad_score for layer in group]))
            grown = self._select(torch.where(candidates, grads, -1.0), swap)
            new = (new & ~drop) | grown
        self._write(group, new, grown)
        return keep, pruned + swap, swap

    def _select(self, scores: Tensor, k: int) -> Tensor:
        """Boolean mask of the ``k`` largest scores; ties broken at random (seeded) so counts are exact."""
        shuffle = torch.randperm(scores.numel(), generator=self.generator).to(scores.device)
        order = torch.sort(scores[shuffle], descending=True, stable=True).indices[:k]
        chosen = torch.zeros(scores.numel(), dtype=torch.bool, device=scores.device)
        chosen[shuffle[order]] = True
        return chosen

    @staticmethod
    def _write(group: list[MaskedLayer], new: Tensor, grown: Tensor) -> None:
        offset = 0
        for layer in group:
            size, shape = layer.mask.mask.numel(), layer.mask.mask.shape
            layer.mask.mask.copy_(new[offset:offset + size].view(shape))
            layer.original.masked_fill_(grown[offset:offset + size].view(shape), 0.0)  # regrown weights restart at 0
            offset += size

    # ---- bookkeeping -------------------------------------------------------------------------
    def _plan(self) -> CubicSchedule:
        if self.cubic is None or not self.layers:
            raise GtspError("weight pruning: call prepare(model) and schedule(epochs, steps_per_epoch) "
                            "before training")
        return self.cubic

    def _set_recording(self, step: int) -> None:
        """Record dense gradients only while a regrowth is still to come."""
        on = self.regrow > 0 and self.ratio > 0 and self.cubic is not None and self.cubic.in_window(step)
        for layer in self.layers:
            layer.mask.record = on

    @torch.no_grad()
    def _reset_scores(self) -> None:
        for layer in self.layers:
            layer.mask.grad_score.zero_()

    def state_dict(self) -> dict[str, Any]:
        """Schedule position, RNG, statistics and pending gradient scores (the masks are in the model)."""
        return {"last_step": self.last_step, "history": [dict(h) for h in self.history],
                "generator": self.generator.get_state(),
                "grad_scores": {layer.name: layer.mask.grad_score.detach().cpu().clone() for layer in self.layers}}

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore after :meth:`prepare` (the model's state dict, masks included, is loaded separately)."""
        scores = state["grad_scores"]
        names = [layer.name for layer in self.layers]
        if sorted(scores) != sorted(names):
            raise GtspError("the checkpoint's weight masks do not match this model's layers: "
                            "resume with the same model and --prune settings")
        for layer in self.layers:
            layer.mask.grad_score.copy_(scores[layer.name])
        self.last_step, self.history = int(state["last_step"]), [dict(h) for h in state["history"]]
        self.generator.set_state(state["generator"].cpu())  # a checkpoint may be mapped onto a GPU
        self._set_recording(self.last_step)

    @torch.no_grad()
    def summary(self) -> dict[str, Any]:
        per_layer = {layer.name: _layer_counts(layer) for layer in self.layers}
        total = sum(c["weights"] for c in per_layer.values())
        kept = sum(c["kept"] for c in per_layer.values())
        return {"ratio": self.ratio, "scope": self.scope, "target_density": 1.0 - self.ratio,
                "achieved_density": kept / total if total else 1.0, "masked_weights": total,
                "kept_weights": kept, "updates": len(self.history),
                "pruned_total": sum(h["pruned"] for h in self.history),
                "regrown_total": sum(h["regrown"] for h in self.history), "per_layer": per_layer}


def _own_parametrized_class(module: nn.Module) -> None:
    """Give ``module`` a private copy of its parametrized class before un-parametrizing it.

    ``copy.deepcopy`` of a parametrized model shares the class ``parametrize``
    injected (it holds the ``weight`` property), and ``remove_parametrizations``
    deletes the property from that class, which would break every copy still
    masked (seen with torch 2.x). A private class keeps the copies independent.
    """
    cls = module.__class__
    body = {k: v for k, v in vars(cls).items() if k not in ("__dict__", "__weakref__")}
    module.__class__ = type(cls.__name__, cls.__bases__, body)


def _layer_counts(layer: MaskedLayer) -> dict[str, Any]:
    total, kept = layer.mask.mask.numel(), int(torch.count_nonzero(layer.mask.mask))
    return {"weights": total, "kept": kept, "density": kept / total}


def _flat(tensors: list[Tensor]) -> Tensor:
    return torch.cat([t.reshape(-1) for t in tensors])


@torch.no_grad()
def _zero_masked(model: nn.Module) -> None:
    """Every weight this dimension may mask set to 0 (the nominal count of density 0)."""
    for _, linear in model.prunable_linears():
        linear.weight.zero_()


DIMENSION = Dimension(name="weight", options=WeightOptions, sparsifier=WeightSparsifier, fragment=WeightFragment,
                      label="weights (unstructured)", colour="tab:red", executes=False, ratios=WEIGHT_GRID,
                      zero_priced=_zero_masked, budget_options={"scope": "layer"}, legacy_key="weight_density")
