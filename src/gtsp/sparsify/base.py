"""The life cycle every GTSP sparsifier follows (the shape of ``torch.ao.pruning``).

1. ``prepare(model)`` (and ``schedule(epochs, steps_per_epoch)``): attach masks, gates, scorers
   or wrappers to the blocks the backbone declares (:class:`gtsp.models.base.GraphTransformer`:
   ``attention_modules()``, ``feedforwards()``, ``prunable_linears()``, ``layers``), through the
   slots the blocks offer (``head_transform``, ``hidden_transform``, ``token_selector``,
   parametrizations), never into a backbone's own code. Masks live beside the weights.
2. During training the :class:`gtsp.train.trainer.Trainer` calls the optional hooks
   ``extra_loss()``, ``on_step(step)``, ``on_epoch_end(epoch)``, ``selectable(epoch)``;
   ``state_dict()`` / ``load_state_dict()`` put masks and schedules into checkpoints.
3. ``compact(model) -> (compacted, plan)``: a NEW plain model, physically smaller (fewer heads,
   layers, neurons; fewer tokens in attention), that computes what the masked model computed,
   and the :class:`gtsp.sparsify.plan.CompactionPlan` that rebuilds its architecture from the
   backbone's hyper-parameters. ``model`` is left as it was. Each sparsifier contributes
   ``plan(model)`` (its decisions, one fragment of its dimension) and ``strip(model)`` (folds its
   gates into the weights and removes what it attached); the fragments do the slicing.
4. ``summary()``: what was kept, for ``results.json``.

A ratio is always the fraction REMOVED, ``0 <= r < 1`` (the convention of
``torch.ao.pruning``); reports show both sparsity and what is kept. A sparsifier's arguments
are its dimension's options (:class:`gtsp.sparsify.dimension.Dimension`), checked there.
"""
from __future__ import annotations

import copy
from typing import Any

from torch import Tensor, nn

from gtsp.errors import GtspError
from gtsp.sparsify.plan import CompactionPlan, apply_plan

CONTRACT = ("attention_modules", "feedforwards", "prunable_linears", "compact_shared", "layers")


def check_contract(model: nn.Module, dimension: str) -> nn.Module:
    """``model`` if it declares the backbone contract sparsifiers rely on, else a clear error."""
    missing = [name for name in CONTRACT if not hasattr(model, name)]
    if missing:
        raise GtspError(f"{dimension} pruning needs a gtsp backbone (GraphTransformer); {type(model).__name__} "
                        f"lacks {', '.join(missing)}")
    return model


class Sparsifier:
    """Base class: every hook is a no-op; subclasses override what they need.

    Attributes:
        dimension: the pruned dimension's name (``token``, ``head``, ``layer``, ``weight``, ``neuron``).
        ratio: fraction removed.
    """

    dimension: str = ""

    def __init__(self, options: Any) -> None:
        """``options``: this dimension's checked options dataclass (``ratio`` and its own arguments)."""
        self.options = options
        self.ratio = float(options.ratio)
        self.model: nn.Module | None = None

    def prepare(self, model: nn.Module) -> nn.Module:
        self.model = check_contract(model, self.dimension)
        return model

    def schedule(self, epochs: int, steps_per_epoch: int) -> None:
        """Told by the runner before training, so step-based schedules can be laid out in epochs."""
        self.epochs, self.steps_per_epoch = epochs, steps_per_epoch

    def final_epoch(self) -> int | None:
        """The epoch after which this sparsifier's masks no longer change (None: it has no schedule)."""
        return None

    def settle_by(self, epoch: int) -> None:
        """Make every structural decision by the end of ``epoch`` at the latest (joint runs call this,
        so the architecture is final when the last density is); nothing to do by default."""

    def extra_loss(self) -> Tensor | None:
        return None

    def on_step(self, step: int) -> None:
        pass

    def on_epoch_end(self, epoch: int) -> None:
        pass

    def selectable(self, epoch: int) -> bool:
        return True

    def unmask(self, model: nn.Module) -> None:
        """Let ``model`` run every unit again, pruned ones included (analyses compare them with the kept);
        nothing to do by default."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass

    # ---- compaction --------------------------------------------------------------------------
    def plan(self, model: nn.Module) -> CompactionPlan:
        """This sparsifier's structural decisions on ``model``: a plan with its dimension's fragment."""
        return CompactionPlan()

    def strip(self, model: nn.Module) -> None:
        """Fold what this sparsifier attached to ``model`` into plain weights and remove it (in place)."""

    def compact(self, model: nn.Module) -> tuple[nn.Module, CompactionPlan]:
        """A new, plain, smaller model computing what ``model`` (masked) computes, and its plan."""
        compacted = copy.deepcopy(model)
        plan = self.plan(compacted)
        self.strip(compacted)
        return apply_plan(compacted, plan), plan

    def summary(self) -> dict[str, Any]:
        return {"ratio": self.ratio}
