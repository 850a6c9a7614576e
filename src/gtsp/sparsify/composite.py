"""Several sparsifiers acting as one: the joint pruning of GTSP's dimensions.

Members are prepared, called, stripped and planned in the registry's order
(:mod:`gtsp.sparsify.registry`). Compaction gathers every member's fragment into ONE
:class:`~gtsp.sparsify.plan.CompactionPlan` before anything is folded, then strips the members
(weight masks are folded first, so slicing copies plain tensors), and applies the plan once.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from gtsp.sparsify import registry
from gtsp.sparsify.base import Sparsifier
from gtsp.sparsify.plan import CompactionPlan


class CompositeSparsifier(Sparsifier):
    """Runs ``members`` (one per dimension) side by side."""

    dimension = "joint"

    def __init__(self, members: list[Sparsifier]) -> None:
        self.members = sorted(members, key=lambda s: registry.order(s.dimension))
        self.ratio = 0.0
        self.model = None

    def prepare(self, model: nn.Module) -> nn.Module:
        for member in self.members:
            model = member.prepare(model)
        self.model = model
        return model

    def schedule(self, epochs: int, steps_per_epoch: int) -> None:
        """Each member's schedule, with structural decisions (heads) settled by the time the last
        gradual density (weights, neurons) is final, so the selectable epochs, those whose model
        is the final architecture, are as many as the gradual schedules allow."""
        for member in self.members:
            member.schedule(epochs, steps_per_epoch)
        ends = [end for end in (m.final_epoch() for m in self.members) if end is not None]
        if ends:
            for member in self.members:
                member.settle_by(max(ends))

    def extra_loss(self) -> Tensor | None:
        terms = [t for t in (m.extra_loss() for m in self.members) if t is not None]
        return torch.stack(terms).sum() if terms else None

    def on_step(self, step: int) -> None:
        for member in self.members:
            member.on_step(step)

    def on_epoch_end(self, epoch: int) -> None:
        for member in self.members:
            member.on_epoch_end(epoch)

    def selectable(self, epoch: int) -> bool:
        return all(m.selectable(epoch) for m in self.members)

    def unmask(self, model: nn.Module) -> None:
        for member in self.members:
            member.unmask(model)

    def state_dict(self) -> dict[str, Any]:
        return {m.dimension: m.state_dict() for m in self.members}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for member in self.members:
            member.load_state_dict(state[member.dimension])

    def plan(self, model: nn.Module) -> CompactionPlan:
        plan = CompactionPlan()
        for member in self.members:
            plan = plan.merged(member.plan(model))
        return plan

    def strip(self, model: nn.Module) -> None:
        for member in self.members:
            member.strip(model)

    def summary(self) -> dict[str, Any]:
        return {m.dimension: m.summary() for m in self.members}
