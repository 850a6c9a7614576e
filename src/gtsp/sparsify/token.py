"""Token pruning: fewer tokens in every global attention (GTSP, Liu et al., Neural Networks 2024).

``prepare`` puts a :class:`gtsp.sparsify.token_selector.TokenSelector` (a learned scorer with
a Gumbel-Softmax top-k, Jang et al. 2017) in the ``token_selector`` slot of every attention
module the backbone declares. The attention then gathers only the kept tokens into a shorter
sequence, so the pruning saves compute during training already, unlike the paper's code,
which multiplies dropped tokens by zero.

Special tokens ([CLS] in GraphTrans, [VNode] in Graphormer) are never pruned: every layer
passes its batch layout's prefix length to its attention, which hands it to the selector.

Compaction has nothing to fold: the selectors already shrink attention. The compacted
model keeps them (the plan records their settings); in eval mode they are a
``Linear(C, 1)`` and a top-k, nothing more.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from gtsp.errors import GtspError
from gtsp.sparsify.base import Sparsifier, check_contract
from gtsp.sparsify.dimension import STRUCTURAL_GRID, Dimension, Fragment, RatioOptions, check_choice, check_range
from gtsp.sparsify.plan import CompactionPlan
from gtsp.sparsify.sync import sum_across_ranks
from gtsp.sparsify.token_selector import RULES, TokenSelector


@dataclass(frozen=True)
class TokenOptions(RatioOptions):
    """Options of token pruning (see :class:`TokenSparsifier`)."""

    dimension_name: ClassVar[str] = "token"
    tau: float = 1.0
    rule: str = "per_graph"
    penalty: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.tau > 0:
            raise GtspError(f"token pruning temperature tau={self.tau} must be positive, e.g. 1.0")
        check_choice("token", "rule", self.rule, RULES)
        check_range("token", "penalty", self.penalty, 0.0)


@dataclass
class TokenFragment(Fragment):
    """The token selector settings installed on every attention module."""

    ratio: float
    tau: float = 1.0
    rule: str = "per_graph"

    def apply(self, model: nn.Module) -> None:
        for _, attention in model.attention_modules():
            if attention.token_selector is None:
                weight = attention.qkv.weight
                selector = TokenSelector(attention.dim, self.ratio, self.tau, self.rule)
                attention.token_selector = selector.to(weight.device, weight.dtype)


def selectors(model: nn.Module) -> list[TokenSelector]:
    return [m for m in model.modules() if isinstance(m, TokenSelector)]


class TokenSparsifier(Sparsifier):
    """Keeps ``1 - ratio`` of each graph's node tokens in every attention layer.

    Args:
        ratio: fraction of node tokens REMOVED per graph and layer, ``0 <= ratio < 1``.
        tau: Gumbel-Softmax temperature of the training-time sample.
        rule: how many tokens each graph keeps: ``"per_graph"`` (gtsp: ``ceil((1 - ratio) * n_i)``
            of each graph's own ``n_i`` nodes) or ``"padded_batch"`` (the authors' released code:
            one ``k`` from the padded batch length, so a small graph may keep all its nodes) or
            ``"adaptive"`` (each graph keeps the tokens its scorer rates positive; ``ratio`` is then
            the mean removed share, held by a penalty on the mean keep probability).
        penalty: weight of that penalty, ``penalty * |mean keep probability - (1 - ratio)|``
            per attention layer (``"adaptive"`` only).

    ``compact(model)`` returns a copy with its selectors (nothing to fold), and its plan.
    """

    dimension = "token"

    def __init__(self, ratio: float, tau: float = 1.0, rule: str = "per_graph", penalty: float = 1.0) -> None:
        super().__init__(TokenOptions(ratio, tau, rule, penalty))
        self.tau, self.rule, self.penalty = float(tau), rule, float(penalty)
        self.kept_token_fraction: float | None = None

    def prepare(self, model: nn.Module) -> nn.Module:
        attentions = [m for _, m in check_contract(model, self.dimension).attention_modules()]
        if not attentions:
            raise GtspError("token pruning needs global attention; this model has none "
                            "(e.g. GPS with --heads 0): give the model attention heads or drop --prune token")
        for attention in attentions:
            if attention.token_selector is not None:
                raise GtspError("this model already has token selectors: prepare token pruning only once")
            weight = attention.qkv.weight
            attention.token_selector = TokenSelector(attention.dim, **self.settings()).to(
                device=weight.device, dtype=weight.dtype)
        self.model = model
        return model

    def extra_loss(self) -> torch.Tensor | None:
        """The adaptive rule's pull of each layer's mean keep probability towards ``1 - ratio``."""
        if self.rule != "adaptive" or self.model is None or not self.model.training:
            return None
        terms = []
        for selector in selectors(self.model):
            if selector.soft_keep is not None:
                terms.append((selector.soft_keep - (1.0 - self.ratio)).abs())
                selector.soft_keep = None  # part of this step's graph: never kept past it
        return self.penalty * torch.stack(terms).sum() if terms else None

    def on_epoch_end(self, epoch: int) -> None:
        # The trainer evaluates before this hook, so the counts cover this epoch's eval passes.
        measured = self._read_counts(self.model)
        if measured is not None:
            self.kept_token_fraction = measured

    def state_dict(self) -> dict[str, Any]:
        # The scorers are submodules of the model, so the model's own checkpoint carries them.
        return {"ratio": self.ratio, "tau": self.tau, "rule": self.rule, "kept_token_fraction": self.kept_token_fraction}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.kept_token_fraction = state.get("kept_token_fraction")

    def settings(self) -> dict[str, Any]:
        """The selector's constructor settings (recorded in the compaction plan)."""
        return {"ratio": self.ratio, "tau": self.tau, "rule": self.rule}

    def plan(self, model: nn.Module) -> CompactionPlan:
        if not selectors(model):
            raise GtspError("token compaction got a model without token selectors: call prepare() on it first")
        return CompactionPlan({self.dimension: TokenFragment(**self.settings())})

    def summary(self) -> dict[str, Any]:
        measured = self._read_counts(self.model, reset=False) if self.model is not None else None
        return {"ratio": self.ratio, "kept": 1.0 - self.ratio, "tau": self.tau, "rule": self.rule,
                **({"penalty": self.penalty} if self.rule == "adaptive" else {}),
                "attention_layers": len(selectors(self.model)) if self.model is not None else 0,
                "kept_token_fraction": measured if measured is not None else self.kept_token_fraction,
                "kept_fraction_histogram": self._histogram(self.model)}

    @staticmethod
    def _histogram(model: nn.Module | None) -> dict[str, list] | None:
        """Graphs per kept-fraction bin over the eval passes counted so far, all layers together."""
        found = selectors(model) if model is not None else []
        if not found:
            return None
        counts = sum_across_ranks(torch.stack([s.kept_histogram for s in found]).sum(0).double())
        bins = counts.numel()
        return {"edges": [i / bins for i in range(bins + 1)], "graph_layers": [int(c) for c in counts.tolist()]}

    @staticmethod
    def _read_counts(model: nn.Module | None, reset: bool = True) -> float | None:
        """Fraction of node tokens kept over the eval passes counted so far on all ranks (None if none ran)."""
        if model is None:
            return None
        kept = seen = 0.0
        for selector in selectors(model):
            counts = sum_across_ranks(torch.stack([selector.kept_tokens, selector.seen_tokens]).double())
            kept += float(counts[0])
            seen += float(counts[1])
            if reset:
                selector.reset_counts()
        return kept / seen if seen else None


def _grid(model: nn.Module) -> list[float]:
    return list(STRUCTURAL_GRID) if model.attention_modules() else [0.0]


DIMENSION = Dimension(name="token", options=TokenOptions, sparsifier=TokenSparsifier, fragment=TokenFragment,
                      label="tokens", colour="tab:blue", grid=_grid,
                      priced_fragment=lambda model, ratio: TokenFragment(ratio), legacy_key="token")
