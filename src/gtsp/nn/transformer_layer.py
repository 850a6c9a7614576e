"""Pre-LayerNorm transformer encoder layer on per-graph token sequences.

``x = x + Dropout(Attention(LN(x), mask, bias)); x = x + FFN(LN(x))``, the
placement used by Graphormer (Ying et al. 2021) and by GraphTrans's encoder
(Wu et al. 2021). It runs on dense ``[B, L, C]`` sequences so a backbone converts
nodes to tokens once and keeps them there across layers. Without attention
(``num_heads=0``, the attention-free baseline) it is the FFN sub-layer alone.
"""
from __future__ import annotations

from torch import Tensor, nn

from gtsp.nn.attention import MultiHeadSelfAttention
from gtsp.nn.capabilities import SKIPPABLE
from gtsp.nn.ffn import FeedForward


class TransformerLayer(nn.Module):
    """One pre-LN transformer layer.

    Args:
        dim: token width.
        num_heads: attention heads (0: no attention sub-layer).
        ffn_hidden: hidden width of the feed-forward block.
        dropout: dropout on the residual branches.
        attn_dropout: dropout on attention probabilities.
    """

    capabilities = frozenset({SKIPPABLE})

    def __init__(self, dim: int, num_heads: int, ffn_hidden: int, dropout: float = 0.0,
                 attn_dropout: float = 0.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim) if num_heads else None
        self.attention = self.make_attention(dim, num_heads, attn_dropout) if num_heads else None
        self.drop = nn.Dropout(dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.ffn = FeedForward(dim, ffn_hidden, dropout)

    def make_attention(self, dim: int, num_heads: int, attn_dropout: float) -> MultiHeadSelfAttention:
        """The attention sub-layer (subclasses choose another attention, e.g. with a shared bias)."""
        return MultiHeadSelfAttention(dim, num_heads, attn_dropout)

    def reset_parameters(self) -> None:
        for module in (self.norm1, self.attention, self.norm2, self.ffn):
            if module is not None:
                module.reset_parameters()

    def forward(self, x: Tensor, mask: Tensor | None = None, bias: Tensor | None = None, prefix: int = 0) -> Tensor:
        if self.attention is not None:
            x = x + self.drop(self.attention(self.norm1(x), mask, bias, prefix))
        return x + self.ffn(self.norm2(x))
