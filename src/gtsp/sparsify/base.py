"""The life cycle every GTSP sparsifier follows (the shape of ``torch.ao.pruning``).

1. ``prepare(model)`` (and ``schedule(epochs, steps_per_epoch)``): attach masks, gates, scorers or wrappers to the model's
   shared blocks (:class:`gtsp.nn.attention.MultiHeadSelfAttention`,
   :class:`gtsp.nn.ffn.FeedForward`, ``model.layers``), never to a backbone's own code.
   Masks live beside the weights (buffers / parametrizations), never in them.
2. During training the :class:`gtsp.train.trainer.Trainer` calls the optional hooks
   ``extra_loss()``, ``on_step(step)``, ``on_epoch_end(epoch)``, ``selectable(epoch)``;
   ``state_dict()`` / ``load_state_dict()`` put masks and schedules into checkpoints.
3. ``compact(model)``: fold the masks into a physically smaller model (fewer heads
   in the projections, fewer layers, fewer tokens in attention, narrower FFNs) that
   computes what the masked model computed, and return it.
4. ``summary()``: what was kept, for ``results.json``.

A ratio is always the fraction REMOVED, ``0 <= r < 1`` (the convention of
``torch.ao.pruning``); reports show both sparsity and what is kept.
"""
from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from gtsp.errors import GtspError


def check_ratio(dimension: str, ratio: float) -> float:
    """``ratio`` as a float in [0, 1), or a clear error."""
    ratio = float(ratio)
    if not 0.0 <= ratio < 1.0:
        raise GtspError(f"--prune {dimension}={ratio} is outside [0, 1): give the fraction to REMOVE, "
                        "e.g. 0.5 keeps half")
    return ratio


class Sparsifier:
    """Base class: every hook is a no-op; subclasses override what they need.

    Attributes:
        dimension: the pruned dimension's name (``token``, ``head``, ``layer``, ``weight``, ``neuron``).
        ratio: fraction removed.
    """

    dimension: str = ""

    def __init__(self, ratio: float) -> None:
        self.ratio = check_ratio(self.dimension, ratio)
        self.model: nn.Module | None = None

    def prepare(self, model: nn.Module) -> nn.Module:
        self.model = model
        return model

    def schedule(self, epochs: int, steps_per_epoch: int) -> None:
        """Told by the runner before training, so step-based schedules can be laid out in epochs."""
        self.epochs, self.steps_per_epoch = epochs, steps_per_epoch

    def extra_loss(self) -> Tensor | None:
        return None

    def on_step(self, step: int) -> None:
        pass

    def on_epoch_end(self, epoch: int) -> None:
        pass

    def selectable(self, epoch: int) -> bool:
        return True

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass

    def compact(self, model: nn.Module) -> nn.Module:
        return model

    def summary(self) -> dict[str, Any]:
        return {"ratio": self.ratio}
