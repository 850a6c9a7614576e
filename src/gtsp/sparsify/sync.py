"""The one place sparsifiers agree across data-parallel ranks.

Under ``torchrun`` every rank trains on its own share of each batch, so the statistics a
sparsifier accumulates (head importance, layer redundancy, dense weight gradients, token counts)
differ between ranks. Every sparsifier passes such a statistic through :func:`sum_across_ranks` or
:func:`mean_across_ranks` right before it decides from it; afterwards every rank holds the same
numbers, takes the same decision and compacts to the same model. In a single process (no
``torch.distributed`` process group, or a group of one) both are no-ops.

Both reduce IN PLACE (like ``torch.distributed.all_reduce``) and return the same tensor, so a
buffer that is reset after the decision can be reduced where it lives.
"""
from __future__ import annotations

import torch.distributed as dist
from torch import Tensor


def ranks() -> int:
    """Number of ranks in the default process group (1 without one)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


def sum_across_ranks(tensor: Tensor) -> Tensor:
    """``tensor`` replaced by its sum over all ranks (in place); returned for chaining."""
    if ranks() > 1:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def mean_across_ranks(tensor: Tensor) -> Tensor:
    """``tensor`` replaced by its mean over all ranks (in place); returned for chaining.

    Sum, then divide: gloo has no averaging reduction.
    """
    world = ranks()
    if world > 1:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        tensor.div_(world)
    return tensor
