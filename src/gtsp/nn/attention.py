"""Multi-head self-attention over per-graph token sequences.

Computes ``softmax(Q K^T / sqrt(d) + bias) V`` per head (Vaswani et al. 2017) with
:func:`torch.nn.functional.scaled_dot_product_attention`. It is the one
attention module of gtsp: GraphGPS, GraphTrans and Graphormer all use it, so
every sparsifier written against it (GTSP, Liu et al. 2024) applies to all three.

What sparsifiers see and change:
- ``num_heads`` / ``head_dim`` and the fused ``qkv`` and ``out`` projections
  (rows of ``qkv`` are ordered ``[3, heads, head_dim]``);
- ``head_gate``: a ``[heads]`` buffer multiplied into each head's output;
- ``head_scores``: when ``record_head_scores`` is on, each backward pass adds
  ``|<head output, dL/d gated head output>|`` per graph (Michel et al. 2019),
  the gradient of the loss with respect to the gate, even where the gate is 0;
- ``token_selector``: an optional module ``(x, mask) -> (index, mask, gate)``
  that picks the tokens taking part in attention; only those are gathered into
  a shorter sequence, so the attention really costs less;
- :meth:`prune_heads` slices the projections down to the kept heads.

Padding: on the CPU the graphs of a batch are attended in groups of similar size
(chunks of ``group_size`` graphs sorted by length, neighbouring chunks merged while their
padding costs less than one more call: :func:`size_groups`), each group padded only to its
own longest graph. The result is the padded computation's, but a random batch of
NCI1 graphs no longer pays for the 6-7x attention work its padding would cost,
so training needs no size-sorted batches (which cost accuracy: see
``benchmarks/results/bucketing.md``). On a GPU one padded call is faster.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gtsp.errors import GtspError
from gtsp.nn.slicing import slice_linear

GROUP_SIZE = 16  # graphs per size group on the CPU (benchmarks/results/bucketing.md)
# What one more attention call costs in small ops (~0.2 ms here), as FLOPs of padding worth paying
# instead (benchmarks/results/token_speed.md).
GROUP_OVERHEAD_FLOPS = 2e6


class MultiHeadSelfAttention(nn.Module):
    """Multi-head self-attention with an additive per-head bias and a key padding mask.

    Args:
        dim: token width ``C``.
        num_heads: number of heads; must divide ``dim``.
        dropout: dropout on the attention probabilities.
        head_dim: width of one head; defaults to ``dim // num_heads`` (differs after head pruning).
    """

    # Class-level defaults (instances may override them): size groups on the CPU, 0 = one padded call,
    # and the padding worth paying to save one call. Models pickled before they existed still load.
    group_size: int = GROUP_SIZE
    group_overhead: float = GROUP_OVERHEAD_FLOPS

    def __init__(self, dim: int, num_heads: int, dropout: float = 0.0, head_dim: int | None = None) -> None:
        super().__init__()
        if head_dim is None:
            if num_heads <= 0 or dim % num_heads:
                raise GtspError(f"{num_heads} attention heads do not divide the hidden size {dim}: "
                                "choose --heads that divides --hidden")
            head_dim = dim // num_heads
        self.dim, self.num_heads, self.head_dim, self.dropout = dim, num_heads, head_dim, dropout
        self.qkv = nn.Linear(dim, 3 * num_heads * head_dim)
        self.out = nn.Linear(num_heads * head_dim, dim)
        self.register_buffer("head_gate", torch.ones(num_heads))
        self.register_buffer("head_scores", torch.zeros(num_heads))
        self.record_head_scores = False
        self.token_selector: nn.Module | None = None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.xavier_uniform_(self.qkv.weight)
        nn.init.zeros_(self.qkv.bias)
        nn.init.xavier_uniform_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: Tensor, mask: Tensor | None = None, bias: Tensor | None = None) -> Tensor:
        """Attend within each sequence.

        Args:
            x: ``[B, L, C]`` tokens.
            mask: ``[B, L]`` True at real tokens; None when no slot is padding.
            bias: ``[B, H, L, L]`` additive logits per head (e.g. Graphormer's spatial encoding).
        Returns:
            ``[B, L, C]``; tokens the selector dropped get zeros (their residual path keeps them).
        """
        if self.token_selector is None:
            return self._attend_grouped(x, mask, bias)
        return self._attend_selected(x, mask, bias)

    def _attend_selected(self, x: Tensor, mask: Tensor | None, bias: Tensor | None) -> Tensor:
        """Attention among the tokens the selector keeps, gathered into shorter sequences."""
        index, kept_mask, gate = self.token_selector(x, mask)
        batch, length, width = x.shape
        # Row lookups in the flattened [B * L, C] view: index_select / index_copy are several times
        # faster on the CPU than gather / scatter with an index expanded over the channels.
        rows = (index + length * torch.arange(batch, device=x.device).unsqueeze(1)).flatten()
        kept_bias = None if bias is None else gather_pairs(bias, index)
        # The gate is exactly 1 forward; multiplying the kept tokens by it (as GTSP masks the
        # input tokens) lets every downstream use of those tokens train the selector's scorer.
        # Slots past a graph's own k point at dropped tokens: zero them so the copy leaves those at 0.
        picked = x.reshape(batch * length, width).index_select(0, rows).view(batch, -1, width)
        kept = self._attend_grouped(picked * gate.unsqueeze(-1), kept_mask, kept_bias)
        kept = (kept * kept_mask.unsqueeze(-1)).reshape(-1, kept.size(-1))
        return x.new_zeros(batch * length, kept.size(-1)).index_copy(0, rows, kept).view(batch, length, -1)

    def _attend_grouped(self, x: Tensor, mask: Tensor | None, bias: Tensor | None) -> Tensor:
        """:meth:`_attend` per group of similar-length graphs; padding slots of the result are 0."""
        groups = None
        if mask is not None and not x.is_cuda:
            groups = size_groups(mask, self.group_size, x.size(-1), self.group_overhead)
        if groups is None:
            return self._attend(x, mask, bias)
        out = x.new_zeros(x.size(0), x.size(1), self.out.out_features)
        for graphs, length in groups:
            part_mask = mask[graphs, :length]
            part_bias = None if bias is None else bias[graphs, :, :length, :length]
            out[graphs, :length] = self._attend(x[graphs, :length], None if bool(part_mask.all()) else part_mask,
                                                part_bias)
        return out

    def _attend(self, x: Tensor, mask: Tensor | None, bias: Tensor | None) -> Tensor:
        batch, length, _ = x.shape
        q, k, v = self.qkv(x).view(batch, length, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        attn_mask = _attention_mask(mask, bias, q.dtype)
        heads = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, dropout_p=self.dropout if self.training else 0.0)
        gated = heads * self.head_gate.view(1, -1, 1, 1)
        if self.record_head_scores and gated.requires_grad:
            gated.register_hook(self._score_hook(heads.detach()))
        return self.out(gated.transpose(1, 2).reshape(batch, length, -1))

    def _score_hook(self, heads: Tensor):
        def accumulate(grad: Tensor) -> None:
            per_graph = (heads * grad).sum(dim=(2, 3))  # dL/d gate, one value per graph and head
            self.head_scores.add_(per_graph.abs().sum(0))
        return accumulate

    @torch.no_grad()
    def prune_heads(self, keep: Tensor) -> None:
        """Keep only the heads in ``keep`` (indices), slicing q/k/v rows and ``out`` columns."""
        keep = torch.as_tensor(keep, dtype=torch.long).sort().values
        if keep.numel() == 0:
            raise GtspError("pruning would remove every attention head of a layer: lower the head ratio")
        cols = (keep.unsqueeze(1) * self.head_dim + torch.arange(self.head_dim, device=keep.device)).flatten()
        rows = torch.cat([cols + part * self.num_heads * self.head_dim for part in range(3)])
        self.qkv = slice_linear(self.qkv, rows=rows)
        self.out = slice_linear(self.out, cols=cols)
        # Fold the (0/1 or soft) gate into ``out`` so the pruned module computes what the gated one did.
        gate = self.head_gate[keep].repeat_interleave(self.head_dim)
        self.out.weight.mul_(gate.unsqueeze(0))
        self.num_heads = keep.numel()
        self.head_gate = torch.ones(self.num_heads, device=gate.device)
        self.head_scores = torch.zeros(self.num_heads, device=gate.device)


def size_groups(mask: Tensor, group_size: int, width: int,
                overhead: float = GROUP_OVERHEAD_FLOPS) -> list[tuple[Tensor, int]] | None:
    """``(graph indices, longest length)`` per group of graphs sorted by length.

    ``mask`` is ``[B, L]`` with each sequence's real tokens first; ``width`` is the token width ``C``.
    Graphs are sorted by length and cut into chunks of ``group_size``; a chunk joins the group before
    it while padding that group's graphs up to the chunk's length adds less work than one more call
    costs (``overhead``, in FLOPs; a graph of length ``L`` costs ``4 L C (L + 2 C)``: projections and
    attention), so similar sizes (e.g. a size-sorted evaluation batch) share one call.
    None when one group would do.
    """
    if group_size <= 0 or mask.size(0) <= group_size:
        return None
    lengths = mask.sum(1)
    order = torch.argsort(lengths)
    ordered = lengths[order].tolist()

    def work(length: int) -> float:
        return 4.0 * length * width * (length + 2 * width)

    cuts, start = [], 0
    for begin in range(group_size, len(ordered), group_size):
        longest = ordered[min(begin + group_size, len(ordered)) - 1]
        if (begin - start) * (work(longest) - work(ordered[begin - 1])) > overhead:
            cuts.append((start, begin))
            start = begin
    if start == 0:
        return None
    cuts.append((start, len(ordered)))
    return [(order[a:b], ordered[b - 1]) for a, b in cuts]


def _attention_mask(mask: Tensor | None, bias: Tensor | None, dtype: torch.dtype) -> Tensor | None:
    """Combine a key padding mask and an additive bias into one SDPA mask (None when neither applies)."""
    if bias is None:
        return None if mask is None else mask[:, None, None, :]
    bias = bias.to(dtype)
    if mask is not None:
        bias = bias.masked_fill(~mask[:, None, None, :], float("-inf"))
    return bias


def gather_pairs(bias: Tensor, index: Tensor) -> Tensor:
    """``bias[b, h, index[b, i], index[b, j]]``: the ``[B, H, K, K]`` block of kept token pairs."""
    batch, heads, length = bias.shape[:3]
    kept = index.size(1)
    # One gather over the flattened pair axis (a row gather then a column gather cost 5x more).
    pairs = (index.unsqueeze(2) * length + index.unsqueeze(1)).view(batch, 1, kept * kept)
    flat = bias.reshape(batch, heads, length * length).gather(2, pairs.expand(-1, heads, -1))
    return flat.view(batch, heads, kept, kept)
