"""What a block offers to sparsifiers, declared by the block itself (``capabilities``, a frozenset).

- ``HEADS``: attention heads in the ``[B, H, L, d]`` layout, a ``head_transform`` slot, ``num_heads``,
  ``prune_heads(keep)`` and ``scale_heads(scale)``, and a ``token_selector`` slot;
- ``NEURONS``: hidden neurons with a ``hidden_transform`` slot, ``hidden``, ``prune_neurons(keep)``
  and ``scale_neurons(scale)``;
- ``SKIPPABLE``: ``block(x, ctx)`` returns a tensor shaped like ``x``, so skipping it (``x -> x``)
  is well defined.

A block with ``HEADS`` or ``NEURONS`` also lists its maskable Linear layers (``linears()``): its
weight layout is known in the block and nowhere else.
"""
from __future__ import annotations

from torch import nn

HEADS = "heads"
NEURONS = "neurons"
SKIPPABLE = "skippable"


def has(module: nn.Module, capability: str) -> bool:
    """Whether ``module`` declares ``capability``."""
    return capability in getattr(module, "capabilities", frozenset())
