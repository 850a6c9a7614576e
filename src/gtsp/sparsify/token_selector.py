"""Learned choice of the tokens that take part in global attention (GTSP token pruning,
Liu et al., Neural Networks 2024, "Exploring Sparsity in Graph Transformers").

A scorer ``Linear(C, 1)`` rates every node token. Each graph keeps its own share of its
own real node tokens, ``k_i = max(1, ceil((1 - ratio) * n_i))``, so a small graph in a
batch of large ones is not emptied and padding never takes a slot (rule ``"per_graph"``).
The authors' released code instead takes one ``k = ceil((1 - ratio) * L)`` from the padded
batch length ``L`` (rule ``"padded_batch"``): a graph smaller than ``k`` then keeps all of
its nodes, so at "0.5" far more than half of the real tokens may stay (see
``docs/token_pruning.md`` for the measured difference). Leading special
tokens (the [CLS] / virtual-node prefix of :class:`gtsp.nn.sequences.Sequences`, whose
length the attention layer passes in) are always kept and do not count in ``n_i``.

- training: a Gumbel top-k sample (Gumbel-Softmax, Jang et al., ICLR 2017): Gumbel noise
  is added to the per-graph log-softmax of the scores, the ``k_i`` largest are kept, and
  the kept tokens' gate is the straight-through ``y_hard - y_soft.detach() + y_soft``,
  written so that its forward value is exactly 1 while its gradient reaches the scorer;
- eval: the deterministic top-k of the raw scores (no noise, no softmax), gate 1.

Rule ``"adaptive"`` (beyond the paper, which leaves a per-graph ratio open): a graph keeps every
node token whose score is positive (at least its best one), so each graph keeps as many tokens
as its scores justify. Training samples the decision with logistic noise (a Gumbel-sigmoid) and
a straight-through sigmoid gate; :attr:`TokenSelector.soft_keep` is the mean keep probability
of the last training batch, which :class:`gtsp.sparsify.token.TokenSparsifier` pulls towards
``1 - ratio`` with a penalty, so ``ratio`` is the mean removed share, not each graph's.

The selector returns slot indices, not a mask over all tokens, so
:class:`gtsp.nn.attention.MultiHeadSelfAttention` gathers only ``K = max k_i`` tokens
per graph and its attention really costs ``K^2`` instead of ``L^2``.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

SIZE_RULES = ("per_graph", "padded_batch")  # k from sizes alone
RULES = (*SIZE_RULES, "adaptive")  # adaptive: k from the learned scores
HISTOGRAM_BINS = 10  # kept fraction per graph, counted in eval passes
# Absorbs the rounding of ``(1 - ratio) * n`` so that e.g. 0.3 * 10 keeps 3 tokens, not 4.
_CEIL_SLACK = 1e-9


def tokens_to_keep(keep_fraction: float, count: int) -> int:
    """``min(n, max(1, ceil(keep_fraction * n)))`` for one graph of ``n`` node tokens (0 stays 0)."""
    if count <= 0:
        return 0
    return min(count, max(1, math.ceil(keep_fraction * count - _CEIL_SLACK)))


class TokenSelector(nn.Module):
    """Picks the node tokens of each graph that attend, plus the always-kept prefix.

    Args:
        dim: token width ``C``.
        ratio: fraction of each graph's node tokens REMOVED, in ``[0, 1)``.
        tau: Gumbel-Softmax temperature (training only).
        rule: ``"per_graph"`` (k from each graph's own size) or ``"padded_batch"`` (one k from the
            padded length, as the authors' code).

    Attributes:
        kept_tokens, seen_tokens: node tokens kept / offered in eval passes since the last
            :meth:`reset_counts` (device tensors, so counting never waits on the device).
    """

    def __init__(self, dim: int, ratio: float, tau: float = 1.0, rule: str = "per_graph") -> None:
        super().__init__()
        if rule not in RULES:
            raise ValueError(f"unknown token rule {rule!r}: choose one of {RULES}")
        self.scorer = nn.Linear(dim, 1)
        self.ratio, self.tau, self.rule = float(ratio), float(tau), rule
        self.register_buffer("kept_tokens", torch.zeros(()), persistent=False)
        self.register_buffer("seen_tokens", torch.zeros(()), persistent=False)
        self.register_buffer("kept_histogram", torch.zeros(HISTOGRAM_BINS), persistent=False)
        self.soft_keep: Tensor | None = None

    def extra_repr(self) -> str:
        return f"ratio={self.ratio}, tau={self.tau}, rule={self.rule}"

    def reset_counts(self) -> None:
        self.kept_tokens.zero_()
        self.seen_tokens.zero_()
        self.kept_histogram.zero_()

    def forward(self, x: Tensor, mask: Tensor | None, prefix: int = 0) -> tuple[Tensor, Tensor, Tensor]:
        """Choose the attending tokens.

        Args:
            x: ``[B, L, C]`` tokens, prefix first.
            mask: ``[B, L]`` True at real tokens, or None when there is no padding.
            prefix: leading special tokens per sequence, always kept.
        Returns:
            ``index [B, P + K]``: distinct slots of ``x`` (prefix first), ``kept [B, P + K]``:
            False where a graph with ``k_i < K`` has nothing more to keep (such a slot points
            at a token that is neither kept nor prefix, so scattering back never collides),
            ``gate [B, P + K]``: 1 at kept slots (straight-through in training), 0 elsewhere.
        """
        batch, length, _ = x.shape
        prefix = min(prefix, length)
        valid = mask[:, prefix:] if mask is not None else x.new_ones(batch, length - prefix, dtype=torch.bool)
        counts = valid.sum(1)
        scores = self.scorer(x[:, prefix:]).squeeze(-1)
        if self.rule == "adaptive":
            top, per_graph, gate = self._adaptive(scores, valid)
            k_max = top.size(1)
        else:
            # The longest graph fills the layout, so K needs no device round trip.
            k_max = tokens_to_keep(1.0 - self.ratio, length - prefix)
            per_graph = self._per_graph_k(counts) if self.rule == "per_graph" else counts.clamp(max=k_max)
            if self.training:
                top, gate = self._sample(scores, valid, k_max)
            else:
                top, gate = self._deterministic(scores, valid, k_max), None
        kept = torch.arange(k_max, device=x.device) < per_graph.unsqueeze(1)
        gate = kept.to(x.dtype) if gate is None else gate * kept
        if not self.training:
            self._count(per_graph, counts)
        return self._with_prefix(top + prefix, kept, gate, mask, prefix)

    @torch.no_grad()
    def _count(self, per_graph: Tensor, counts: Tensor) -> None:
        self.kept_tokens += per_graph.sum()
        self.seen_tokens += counts.sum()
        fractions = per_graph[counts > 0].double() / counts[counts > 0]
        self.kept_histogram += torch.histc(fractions.float(), bins=HISTOGRAM_BINS, min=0.0, max=1.0)

    def _adaptive(self, scores: Tensor, valid: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
        """Every token with a positive (noisy, in training) score, at least each graph's best one."""
        fill = torch.finfo(scores.dtype).min
        logits, self.soft_keep = scores, None
        if self.training:
            uniform = torch.rand_like(scores).clamp(1e-6, 1 - 1e-6)
            logits = (scores + uniform.log() - (-uniform).log1p()) / self.tau
            probability = torch.sigmoid(scores)
            self.soft_keep = (probability * valid).sum() / valid.sum().clamp(min=1)
        ranking = logits.masked_fill(~valid, fill)
        keep = (ranking > 0) & valid
        best = ranking.argmax(1, keepdim=True)
        keep.scatter_(1, best, valid.gather(1, best))
        per_graph = keep.sum(1)
        k_max = int(per_graph.max()) if per_graph.numel() else 0  # one device round trip: K varies
        top = ranking.masked_fill(~keep, fill).topk(k_max, dim=1).indices
        if not self.training:
            return top, per_graph, None
        soft = torch.sigmoid(logits)
        return top, per_graph, (1.0 + (soft - soft.detach())).gather(1, top)

    def _per_graph_k(self, counts: Tensor) -> Tensor:
        """``k_i`` for every graph, the tensor form of :func:`tokens_to_keep` (float64 for exact ceil)."""
        wanted = torch.ceil(counts.double() * (1.0 - self.ratio) - _CEIL_SLACK).long().clamp(min=1)
        return torch.minimum(wanted, counts)

    @staticmethod
    def _deterministic(scores: Tensor, valid: Tensor, k: int) -> Tensor:
        ranking = scores.masked_fill(~valid, torch.finfo(scores.dtype).min)
        return ranking.topk(k, dim=1).indices

    def _sample(self, scores: Tensor, valid: Tensor, k: int) -> tuple[Tensor, Tensor]:
        """Gumbel top-k over each graph's valid tokens and the straight-through gate of the kept ones."""
        # A finite fill (not -inf) keeps a graph without node tokens from turning the softmax into NaN.
        fill = torch.finfo(scores.dtype).min
        log_probs = torch.log_softmax(scores.masked_fill(~valid, fill), dim=1)
        exponential = torch.empty_like(log_probs).exponential_().clamp_min(torch.finfo(scores.dtype).tiny)
        perturbed = ((log_probs - exponential.log()) / self.tau).masked_fill(~valid, fill)
        y_soft = torch.softmax(perturbed, dim=1)
        top = perturbed.topk(k, dim=1).indices
        # y_hard is 1 at every kept slot, so y_hard - y_soft.detach() + y_soft is 1 + (y_soft - y_soft.detach()):
        # written this way the forward value is exactly 1.0 while d(gate)/d(score) is that of y_soft.
        straight_through = 1.0 + (y_soft - y_soft.detach())
        return top, straight_through.gather(1, top)

    @staticmethod
    def _with_prefix(index: Tensor, kept: Tensor, gate: Tensor, mask: Tensor | None,
                     prefix: int) -> tuple[Tensor, Tensor, Tensor]:
        if not prefix:
            return index, kept, gate
        batch = index.size(0)
        slots = torch.arange(prefix, device=index.device).expand(batch, prefix)
        prefix_kept = mask[:, :prefix] if mask is not None else kept.new_ones(batch, prefix)
        return (torch.cat([slots, index], 1), torch.cat([prefix_kept, kept], 1),
                torch.cat([prefix_kept.to(gate.dtype), gate], 1))
