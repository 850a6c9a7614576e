"""The gradual pruning schedule shared by the weight and neuron sparsifiers.

Cubic schedule of Zhu & Gupta (2017, "To prune, or not to prune: exploring the
efficacy of pruning for model compression"): with ``p`` the fraction of the
pruning window elapsed, the density (fraction KEPT) is

    d(p) = d_f + (1 - d_f) * (1 - p) ** 3,      d(0) = 1,  d(1) = d_f = 1 - ratio,

so most weights go early, while the network can still recover, and few near the
end. Masks change every ``update_every`` optimiser steps inside the window and
always at its last step, so the final density is reached exactly at ``end_epoch``.

GraNet (Liu et al., NeurIPS 2021, "Sparse Training via Boosting Pruning
Plasticity with Neuroregeneration") also explores during the window: a fraction of
the surviving weights is swapped for regrown ones, a fraction that decays with a
half cosine (:func:`cosine_decay`) so it is zero at the end.

Steps are the trainer's optimiser-step counter: step ``s`` is the ``s``-th
optimiser step, so epoch ``e`` ends at step ``e * steps_per_epoch``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from gtsp.errors import GtspError
from gtsp.sparsify.base import Sparsifier
from gtsp.sparsify.dimension import RatioOptions, check_range

DEFAULT_START = 0.1  # fractions of training, as in the GTSP code (epochs 10 and 80 of 100)
DEFAULT_END = 0.8


@dataclass(frozen=True)
class CubicSchedule:
    """Where a gradual pruning run stands at each optimiser step.

    Attributes:
        final_density: ``1 - ratio``, reached exactly at ``end_step``.
        start_step: last step at full density (the end of ``start_epoch``).
        end_step: the step where ``final_density`` is reached (the end of ``end_epoch``).
        update_every: steps between mask updates inside the window.
        end_epoch: the epoch that ends at ``end_step`` (models are selectable from it on).
    """

    final_density: float
    start_step: int
    end_step: int
    update_every: int
    end_epoch: int

    @classmethod
    def from_epochs(cls, ratio: float, epochs: int, steps_per_epoch: int, start_epoch: int | None = None,
                    end_epoch: int | None = None, update_every: int = 200) -> CubicSchedule:
        """Lay the window out in steps; default window = 10% .. 80% of training."""
        start, end = resolve_window(epochs, start_epoch, end_epoch)  # update_every: checked by GradualOptions
        return cls(1.0 - ratio, start * steps_per_epoch, end * steps_per_epoch, update_every, end)

    def progress(self, step: int) -> float:
        """Fraction of the window elapsed at ``step``, in [0, 1]."""
        if step >= self.end_step:
            return 1.0
        if step <= self.start_step:  # also covers a one-shot window, where start == end
            return 0.0
        return (step - self.start_step) / (self.end_step - self.start_step)

    def density(self, step: int) -> float:
        """Target density after the update at ``step``; exactly ``final_density`` from ``end_step`` on."""
        if step >= self.end_step:  # checked first: a one-shot window (start == end) ends at full sparsity
            return self.final_density
        remaining = 1.0 - self.progress(step)
        return self.final_density + (1.0 - self.final_density) * remaining ** 3

    def is_update(self, step: int) -> bool:
        """Whether masks change at ``step``: every ``update_every`` steps in the window, and at its end."""
        if step == self.end_step:  # also a one-shot window, where start == end
            return True
        return self.start_step < step < self.end_step and (step - self.start_step) % self.update_every == 0

    def in_window(self, step: int) -> bool:
        """Whether updates are still to come after ``step`` (so gradients are worth recording)."""
        return self.start_step <= step < self.end_step


def resolve_window(epochs: int, start_epoch: int | None, end_epoch: int | None) -> tuple[int, int]:
    """``(start_epoch, end_epoch)`` with the defaults filled in, or a clear error."""
    end = max(1, round(DEFAULT_END * epochs)) if end_epoch is None else int(end_epoch)
    start = min(round(DEFAULT_START * epochs), end) if start_epoch is None else int(start_epoch)
    if not 0 <= start <= end <= epochs:
        raise GtspError(f"pruning window epochs {start}..{end} does not fit in {epochs} epochs: "
                        "give 0 <= start_epoch <= end_epoch <= epochs")
    if end < 1:
        raise GtspError("end_epoch must be at least 1: pruning happens after optimiser steps")
    return start, end


def cosine_decay(progress: float) -> float:
    """Half cosine from 1 at ``progress = 0`` to 0 at ``progress = 1`` (GraNet's exploration rate)."""
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, max(0.0, progress))))


def keep_count(density: float, total: int) -> int:
    """How many of ``total`` units a density keeps (rounded half up, so counts are reproducible)."""
    return int(math.floor(density * total + 0.5))


@dataclass(frozen=True)
class GradualOptions(RatioOptions):
    """The pruning window of a gradual dimension: ``start_epoch`` (last at full density, default 10% of
    training), ``end_epoch`` (final density reached, default 80%), ``update_every`` optimiser steps."""

    start_epoch: int | None = None
    end_epoch: int | None = None
    update_every: int = 200

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range(self.dimension_name, "update_every", self.update_every, 1)


class GradualSparsifier(Sparsifier):
    """A sparsifier whose density follows a :class:`CubicSchedule` over a window of epochs.

    Holds the window (``start_epoch``, ``end_epoch``, ``update_every``), lays out the plan in
    :meth:`schedule`, and allows model selection only once the final density is reached.
    """

    def __init__(self, options: Any) -> None:
        super().__init__(options)
        self.start_epoch, self.end_epoch = options.start_epoch, options.end_epoch
        self.update_every = options.update_every
        self.cubic: CubicSchedule | None = None  # laid out by schedule()

    def schedule(self, epochs: int, steps_per_epoch: int) -> None:
        super().schedule(epochs, steps_per_epoch)
        self.cubic = CubicSchedule.from_epochs(self.ratio, epochs, steps_per_epoch, self.start_epoch,
                                              self.end_epoch, self.update_every)

    def selectable(self, epoch: int) -> bool:
        return self.cubic is None or epoch >= self.cubic.end_epoch

    def final_epoch(self) -> int | None:
        return None if self.cubic is None else self.cubic.end_epoch
