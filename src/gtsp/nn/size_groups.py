"""Size groups: which graphs of a padded batch attention runs together, and padded to what length.

A batch of random graphs padded to its longest graph wastes most of attention's work on
padding (6-7x on NCI1). Sorting the graphs by length and cutting them into chunks of
``group_size``, each padded only to its own longest graph, removes that waste at the price of
one attention call per group; neighbouring chunks share a call while the padding that merging
adds costs less than a call's fixed overhead (``studies/speed/README.md``, earlier measurements).
"""
from __future__ import annotations

import torch
from torch import Tensor

GROUP_SIZE = 16  # graphs per size group on the CPU (studies/batch-order/README.md)
# What one more attention call costs in small ops (~0.2 ms here), as FLOPs of padding worth paying
# instead (studies/speed/README.md, earlier measurements).
GROUP_OVERHEAD_FLOPS = 2e6


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

