"""Flat PyG node batches <-> per-graph token sequences.

PyG keeps the nodes of a batch flat (``x: [N, C]`` with a ``batch`` vector);
attention needs one sequence per graph (``[B, L, C]``). :class:`Sequences`
computes the layout once per batch and every layer reuses it, so no backbone
and no sparsifier writes this conversion again. Optional *prefix* slots hold
per-graph special tokens ([CLS] or a virtual graph token) in front of the nodes.

With size-bucketed batches (see :mod:`gtsp.data.batching`) ``L`` is close to
every graph's own size, so little work is spent on padding.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class Sequences:
    """Layout of ``B`` graphs as padded sequences of length ``L`` (prefix included).

    Attributes:
        index: ``[N]`` position of each flat node in the flattened ``[B * L]`` layout.
        mask: ``[B, L]`` True at real tokens (prefix and nodes), False at padding.
        lengths: ``[B]`` number of real tokens per graph (prefix included).
        prefix: number of special tokens in front of each graph's nodes.
    """

    index: Tensor
    mask: Tensor
    lengths: Tensor
    prefix: int = 0

    @classmethod
    def from_batch(cls, batch: Tensor, num_graphs: int, prefix: int = 0) -> "Sequences":
        """Layout for a PyG ``batch`` vector (nodes sorted by graph, as PyG guarantees)."""
        counts = torch.bincount(batch, minlength=num_graphs)
        start = torch.cumsum(counts, 0) - counts
        position = torch.arange(batch.numel(), device=batch.device) - start[batch]
        lengths = counts + prefix
        max_len = int(lengths.max()) if num_graphs > 0 else prefix
        index = batch * max_len + position + prefix
        mask = torch.arange(max_len, device=batch.device).unsqueeze(0) < lengths.unsqueeze(1)
        return cls(index=index, mask=mask, lengths=lengths, prefix=prefix)

    @property
    def batch_size(self) -> int:
        return self.mask.size(0)

    @property
    def max_len(self) -> int:
        return self.mask.size(1)

    @property
    def is_full(self) -> bool:
        """True when no slot is padding, so attention can skip its mask."""
        return bool(self.mask.all())

    def to_dense(self, x: Tensor, prefix_tokens: Tensor | None = None) -> Tensor:
        """``[N, C]`` nodes -> ``[B, L, C]``; padding is zero, prefix slots get ``prefix_tokens [B or 1, P, C]``."""
        dense = x.new_zeros(self.batch_size * self.max_len, x.size(-1))
        dense = dense.index_copy(0, self.index, x).view(self.batch_size, self.max_len, -1)
        if self.prefix:
            if prefix_tokens is None:
                raise ValueError("this layout has prefix slots: pass prefix_tokens")
            dense = torch.cat([prefix_tokens.expand(self.batch_size, -1, -1),
                               dense[:, self.prefix:]], dim=1)
        return dense

    def to_flat(self, dense: Tensor) -> Tensor:
        """``[B, L, C]`` -> ``[N, C]`` node rows (prefix and padding dropped)."""
        return dense.reshape(self.batch_size * self.max_len, -1).index_select(0, self.index)
