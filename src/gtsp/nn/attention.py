"""Multi-head self-attention over per-graph token sequences.

Computes ``softmax(Q K^T / sqrt(d) + bias) V`` per head (Vaswani et al. 2017) with
:func:`torch.nn.functional.scaled_dot_product_attention`. It is the one
attention module of gtsp: GraphGPS, GraphTrans and Graphormer all use it, so
every sparsifier written against it (GTSP, Liu et al. 2024) applies to all three.

This file holds the attention maths only. What sparsifiers may attach, and where:

- ``head_transform``: an optional module applied to the per-head outputs ``[B, H, L, d]``
  before the output projection (head pruning puts its gate and score recorder here);
- ``token_selector``: an optional module ``(x, mask, prefix) -> (index, kept, gate)`` that
  picks the tokens taking part in attention; only those are gathered into a shorter
  sequence, so the attention really costs less. ``prefix`` leading special tokens
  ([CLS], virtual node) are passed in by the layer, never guessed;
- ``kernel``: the :class:`AttentionKernel` module that runs SDPA; FLOP counting and the
  analyses observe it with ordinary forward hooks;
- :meth:`prune_heads` slices the projections down to kept heads.

Padding: on the CPU the graphs of a batch are attended in groups of similar size
(:mod:`gtsp.nn.size_groups`), each padded only to its own longest graph. The result is
the padded computation's, but a random batch of NCI1 graphs no longer pays for the 6-7x
attention work its padding would cost, so training needs no size-sorted batches (which
cost accuracy: ``studies/batch-order/README.md``). On a GPU one padded call is faster.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gtsp.errors import GtspError
from gtsp.nn.capabilities import HEADS
from gtsp.nn.size_groups import GROUP_OVERHEAD_FLOPS, GROUP_SIZE, size_groups
from gtsp.nn.slicing import slice_linear


class AttentionKernel(nn.Module):
    """``scaled_dot_product_attention(q, k, v)`` as a module, so hooks can observe each call.

    Inputs are ``[B, H, L, d]``; ``attn_mask`` is boolean (True = attend) or additive.
    """

    def forward(self, q: Tensor, k: Tensor, v: Tensor, attn_mask: Tensor | None = None,
                dropout_p: float = 0.0) -> Tensor:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p)


class MultiHeadSelfAttention(nn.Module):
    """Multi-head self-attention with an additive per-head bias and a key padding mask.

    Args:
        dim: token width ``C``.
        num_heads: number of heads; must divide ``dim``.
        dropout: dropout on the attention probabilities.
        head_dim: width of one head; defaults to ``dim // num_heads`` (differs after head pruning).
    """

    capabilities = frozenset({HEADS})

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
        self.kernel = AttentionKernel()
        self.head_transform: nn.Module | None = None
        self.token_selector: nn.Module | None = None
        # graphs per size group on the CPU (0 = one padded call) and the padding worth one call
        self.group_size, self.group_overhead = GROUP_SIZE, GROUP_OVERHEAD_FLOPS
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.xavier_uniform_(self.qkv.weight)
        nn.init.zeros_(self.qkv.bias)
        nn.init.xavier_uniform_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: Tensor, mask: Tensor | None = None, bias: Tensor | None = None,
                prefix: int = 0) -> Tensor:
        """Attend within each sequence.

        Args:
            x: ``[B, L, C]`` tokens.
            mask: ``[B, L]`` True at real tokens; None when no slot is padding.
            bias: ``[B, H, L, L]`` additive logits per head (e.g. Graphormer's spatial encoding).
            prefix: leading special tokens per sequence (never dropped by a token selector).
        Returns:
            ``[B, L, C]``; tokens the selector dropped get zeros (their residual path keeps them).
        """
        if self.token_selector is None:
            return self._attend_grouped(x, mask, bias)
        return self._attend_selected(x, mask, bias, prefix)

    def _attend_selected(self, x: Tensor, mask: Tensor | None, bias: Tensor | None, prefix: int) -> Tensor:
        """Attention among the tokens the selector keeps, gathered into shorter sequences."""
        index, kept_mask, gate = self.token_selector(x, mask, prefix)
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
        heads = self.kernel(q, k, v, _attention_mask(mask, bias, q.dtype), self.dropout if self.training else 0.0)
        if self.head_transform is not None:
            heads = self.head_transform(heads)
        return self.out(heads.transpose(1, 2).reshape(batch, length, -1))

    @torch.no_grad()
    def probabilities(self, x: Tensor, mask: Tensor | None = None, bias: Tensor | None = None) -> Tensor:
        """``[B, H, L, L]`` attention probabilities of every head (no dropout), for analyses.

        Computed explicitly (SDPA does not return them); rows of padding queries are zero.
        """
        batch, length, _ = x.shape
        q, k, _ = self.qkv(x).view(batch, length, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        logits = q @ k.transpose(-1, -2) / self.head_dim ** 0.5
        attn_mask = _attention_mask(mask, bias, logits.dtype)
        if attn_mask is not None:
            logits = logits.masked_fill(~attn_mask, float("-inf")) if attn_mask.dtype == torch.bool \
                else logits + attn_mask
        probs = logits.softmax(-1)
        if mask is not None:
            probs = probs * mask[:, None, :, None]
        return torch.nan_to_num(probs)

    @torch.no_grad()
    def prune_heads(self, keep: Tensor, scale: Tensor | None = None) -> None:
        """Keep only the heads in ``keep`` (indices), slicing q/k/v rows and ``out`` columns.

        ``scale`` (one factor per kept head) is folded into ``out``, so a gate that multiplied the
        kept heads' outputs is preserved exactly.
        """
        keep = torch.as_tensor(keep, dtype=torch.long).sort().values
        if keep.numel() == 0:
            raise GtspError("pruning would remove every attention head of a layer: lower the head ratio")
        cols = (keep.unsqueeze(1) * self.head_dim + torch.arange(self.head_dim, device=keep.device)).flatten()
        rows = torch.cat([cols + part * self.num_heads * self.head_dim for part in range(3)])
        self.qkv = slice_linear(self.qkv, rows=rows)
        self.out = slice_linear(self.out, cols=cols)
        if scale is not None:
            self.scale_heads(scale)
        self.num_heads = keep.numel()

    def linears(self) -> list[tuple[str, nn.Linear]]:
        """The Linear layers a weight sparsifier may mask: the q/k/v projection and the output projection."""
        return [("qkv", self.qkv), ("out", self.out)]

    @torch.no_grad()
    def scale_heads(self, scale: Tensor) -> None:
        """Multiply each head's output by ``scale`` (one factor per head), folded into ``out``'s columns:
        how a head gate becomes plain weights (a factor 0 silences the head)."""
        self.out.weight.mul_(scale.repeat_interleave(self.head_dim).unsqueeze(0).to(self.out.weight))


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
