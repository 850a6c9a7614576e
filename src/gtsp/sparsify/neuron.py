"""Structured weight pruning: whole hidden neurons of the feed-forward blocks.

GTSP (Liu et al. 2024) finds that up to half of the FFN neurons of a graph
transformer are redundant. Masking single weights (:mod:`gtsp.sparsify.weight`)
saves FLOPs only on paper; removing whole hidden neurons leaves narrower dense
layers that really run faster on any hardware. The neurons are chosen gradually,
on the cubic schedule of Zhu & Gupta (2017) shared with the weight sparsifier
(:mod:`gtsp.sparsify.schedules`), each :class:`FeedForward` at the same ratio.

Which blocks: every feed-forward block the backbone declares
(:meth:`gtsp.models.base.GraphTransformer.feedforwards`): the FFN of each transformer layer
and the GIN/GINE MLPs. The prediction head is never pruned.

Score of hidden neuron ``j``: ``||[W1[j], b1[j]]|| * ||W2[:, j]||`` (L2 norms of its
incoming weights with bias and of its outgoing weights). Why this and not a
Taylor (gradient x activation) score: a ReLU neuron's function is unchanged when
its incoming weights are scaled by ``a > 0`` and its outgoing ones by ``1/a``; the
product of norms is invariant to that rescaling, while either norm alone is not.
It needs no gradient hooks or accumulated statistics, so it costs nothing between
updates and a resumed run recomputes it exactly from the weights alone. Neurons
already gated off stay off (their score ranks below every active one).

The gate is a :class:`NeuronGate` in the block's ``hidden_transform`` slot (a 0/1 buffer,
saved with the model); compaction folds it into ``fc2`` and plans the kept neurons, which
``FeedForward.prune_neurons`` slices out of ``fc1`` rows and ``fc2`` columns.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from gtsp.errors import GtspError
from gtsp.sparsify.base import check_contract
from gtsp.sparsify.dimension import Dimension, Fragment, distinct_ratios
from gtsp.sparsify.plan import CompactionPlan, check_count
from gtsp.sparsify.schedules import GradualOptions, GradualSparsifier, keep_count
from gtsp.sparsify.sync import mean_across_ranks


@dataclass(frozen=True)
class NeuronOptions(GradualOptions):
    """Options of neuron pruning (see :class:`NeuronSparsifier`)."""

    dimension_name: ClassVar[str] = "neuron"


@dataclass
class NeuronFragment(Fragment):
    """The kept hidden neurons of every feed-forward block (declared order, before layers go)."""

    kept: list[list[int]]

    @classmethod
    def from_legacy(cls, value: Any) -> NeuronFragment:
        return cls(value)

    def apply(self, model: nn.Module) -> None:
        ffns = model.feedforwards()
        check_count("feed-forward blocks", len(self.kept), len(ffns))
        for (_, ffn), keep in zip(ffns, self.kept):
            if len(keep) < ffn.hidden:
                ffn.prune_neurons(torch.as_tensor(keep, dtype=torch.long))


class NeuronGate(nn.Module):
    """A 0/1 gate per hidden neuron, multiplied into a feed-forward block's hidden activations."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.register_buffer("gate", torch.ones(hidden))

    def forward(self, hidden: Tensor) -> Tensor:
        return hidden * self.gate


def gate_of(ffn: nn.Module) -> Tensor:
    """The neuron gate of ``ffn`` (a feed-forward block prepared for neuron pruning)."""
    if not isinstance(ffn.hidden_transform, NeuronGate):
        raise GtspError("this feed-forward block has no neuron gate: call NeuronSparsifier.prepare(model) first")
    return ffn.hidden_transform.gate


@torch.no_grad()
def neuron_scores(ffn: nn.Module) -> Tensor:
    """``||incoming weights and bias|| * ||outgoing weights||`` per hidden neuron (effective, masked weights)."""
    incoming = ffn.fc1.weight
    if ffn.fc1.bias is not None:
        incoming = torch.cat([incoming, ffn.fc1.bias.unsqueeze(1)], dim=1)
    return incoming.norm(dim=1) * ffn.fc2.weight.norm(dim=0)


class NeuronSparsifier(GradualSparsifier):
    """Gradual structured pruning of FFN hidden neurons, compacted into narrower layers.

    Args:
        ratio: final fraction of each block's hidden neurons removed, in [0, 1).
        start_epoch: last epoch with every neuron (default 10% of training).
        end_epoch: epoch at whose end every block keeps ``round((1 - ratio) * hidden)`` (default 80%).
        update_every: optimiser steps between gate updates.
    """

    dimension = "neuron"

    def __init__(self, ratio: float, start_epoch: int | None = None, end_epoch: int | None = None,
                 update_every: int = 200) -> None:
        super().__init__(NeuronOptions(ratio, start_epoch, end_epoch, update_every))
        self.ffns: list[tuple[str, nn.Module]] = []
        self.hidden: dict[str, int] = {}  # widths before pruning (compaction shrinks the gates)
        self.history: list[dict[str, Any]] = []
        self.last_step = 0

    def prepare(self, model: nn.Module) -> nn.Module:
        """Find the feed-forward blocks; refuse a ratio that would empty one of them."""
        self.model, self.ffns = model, check_contract(model, self.dimension).feedforwards()
        if not self.ffns:
            raise GtspError(f"{type(model).__name__} has no feed-forward blocks in its layers: "
                            "neuron pruning has nothing to prune")
        for _, ffn in self.ffns:
            if isinstance(ffn.hidden_transform, NeuronGate):
                raise GtspError("this model already has neuron gates: prepare neuron pruning only once")
            ffn.hidden_transform = NeuronGate(ffn.hidden).to(ffn.fc1.weight.device)
        self.hidden = {name: ffn.hidden for name, ffn in self.ffns}
        for name, hidden in self.hidden.items():
            if keep_count(1.0 - self.ratio, hidden) < 1:
                raise GtspError(f"--prune neuron={self.ratio} would remove every one of the {hidden} hidden "
                                f"neurons of {name}: lower the ratio")
        return model

    def on_step(self, step: int) -> None:
        if self.cubic is None or not self.ffns:
            raise GtspError("neuron pruning: call prepare(model) and schedule(epochs, steps_per_epoch) "
                            "before training")
        if self.cubic.is_update(step) and self.ratio > 0:
            self._update(step)
        self.last_step = step

    @torch.no_grad()
    def _update(self, step: int) -> None:
        density = self.cubic.density(step)
        kept = {name: self._gate(ffn, keep_count(density, ffn.hidden)) for name, ffn in self.ffns}
        self.history.append({"step": step, "density": density, "kept": kept})

    @staticmethod
    def _gate(ffn: nn.Module, keep: int) -> int:
        """Leave the ``keep`` best-scored active neurons on and gate the rest off."""
        gate = gate_of(ffn)
        keep = max(1, keep)  # prepare refused ratios that empty a block; this guards rounding on the way
        scores = torch.where(gate > 0, mean_across_ranks(neuron_scores(ffn)), -1.0)
        chosen = torch.zeros_like(gate)
        chosen[torch.topk(scores, keep).indices] = 1.0
        gate.copy_(chosen)
        return keep

    def plan(self, model: nn.Module) -> CompactionPlan:
        kept = [torch.nonzero(gate_of(ffn)).flatten().tolist() for _, ffn in model.feedforwards()]
        empty = [name for (name, _), keep in zip(model.feedforwards(), kept) if not keep]
        if empty:
            raise GtspError(f"neuron compaction would empty {', '.join(empty)}: lower the ratio")
        return CompactionPlan({self.dimension: NeuronFragment(kept)})

    @torch.no_grad()
    def strip(self, model: nn.Module) -> None:
        """Fold each gate into its block's output weights and remove it."""
        for _, ffn in model.feedforwards():
            ffn.scale_neurons(gate_of(ffn))
            ffn.hidden_transform = None

    def state_dict(self) -> dict[str, Any]:
        """Schedule position and history (the gates are buffers in the model's state dict)."""
        return {"last_step": self.last_step, "history": [dict(h) for h in self.history]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.last_step, self.history = int(state["last_step"]), [dict(h) for h in state["history"]]

    def summary(self) -> dict[str, Any]:
        per_block = {name: {"hidden": self.hidden[name], "kept": int(torch.count_nonzero(gate_of(ffn)))}
                     for name, ffn in self.ffns}
        hidden = sum(b["hidden"] for b in per_block.values())
        kept = sum(b["kept"] for b in per_block.values())
        return {"ratio": self.ratio, "target_density": 1.0 - self.ratio, "neurons": hidden, "kept_neurons": kept,
                "achieved_density": kept / hidden if hidden else 1.0, "updates": len(self.history),
                "per_block": per_block}


def _grid(model: nn.Module) -> list[float]:
    hidden = min((f.hidden for _, f in model.feedforwards()), default=0)
    if not hidden:
        return [0.0]
    return distinct_ratios(lambda r: keep_count(1.0 - r, hidden), lambda kept: kept >= 1)


def _priced(model: nn.Module, ratio: float) -> NeuronFragment:
    """The first ``(1 - ratio)`` of every block's neurons (which ones does not change the cost)."""
    return NeuronFragment([list(range(keep_count(1.0 - ratio, f.hidden))) for _, f in model.feedforwards()])


DIMENSION = Dimension(name="neuron", options=NeuronOptions, sparsifier=NeuronSparsifier, fragment=NeuronFragment,
                      label="FFN neurons", colour="tab:purple", grid=_grid, priced_fragment=_priced,
                      legacy_key="kept_neurons")
