"""Slicing a Linear layer down to kept rows/columns: the one primitive every compaction uses."""
from __future__ import annotations

from torch import Tensor, nn


def slice_linear(layer: nn.Linear, rows: Tensor | None = None, cols: Tensor | None = None) -> nn.Linear:
    """A new Linear holding the selected output rows and/or input columns of ``layer``."""
    weight, bias = layer.weight.detach(), None if layer.bias is None else layer.bias.detach()
    if rows is not None:
        weight = weight[rows]
        bias = None if bias is None else bias[rows]
    if cols is not None:
        weight = weight[:, cols]
    new = nn.Linear(weight.size(1), weight.size(0), bias=bias is not None,
                    device=weight.device, dtype=weight.dtype)
    new.weight.copy_(weight)
    if bias is not None:
        new.bias.copy_(bias)
    return new
