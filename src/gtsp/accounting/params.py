"""Parameter counts: dense (every stored parameter) and nonzero (after weight masks)."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize


def count_params(model: nn.Module) -> dict[str, int]:
    """``{"dense": all parameters, "nonzero": parameters whose effective value is not 0}``.

    Masked weights (``torch.nn.utils.parametrize``) count by their effective,
    masked value, so a weight-pruned model reports its real nonzero count.
    """
    dense = nonzero = 0
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, parametrize.ParametrizationList):
                continue  # its ``original`` is counted through the owning module
            for name, tensor in _own_tensors(module):
                dense += tensor.numel()
                nonzero += int(torch.count_nonzero(tensor))
    return {"dense": dense, "nonzero": nonzero}


def _own_tensors(module: nn.Module):
    """The module's own parameters, parametrized ones as their effective value."""
    parametrized = getattr(module, "parametrizations", {})
    for name, param in module.named_parameters(recurse=False):
        yield name, param
    for name in parametrized:
        yield name, getattr(module, name)
