"""FLOPs per graph, counted at each graph's real size and cross-checked by PyTorch.

The analytic count applies each layer's formula to the shapes it actually sees
when one graph at a time runs through the model (so no padding is ever counted,
and dense, masked and compacted models are all read off the model itself):

- ``Linear`` (torch or PyG): ``2 * rows * in * out`` (a multiply-accumulate = 2 FLOPs);
  the *pruned* count multiplies by the layer's weight density, as the GTSP paper does;
- attention: ``2 * 2 * heads * L^2 * head_dim`` for ``Q K^T`` and ``A V`` over the
  ``L`` tokens that really take part (after token selection);
- message passing: one add per edge and channel, listed apart (``message_passing``)
  because ``FlopCounterMode`` counts only matrix products and attention.

:func:`flop_counter_per_graph` measures the same graphs with
``torch.utils.flop_counter.FlopCounterMode`` as the independent check.
"""
from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count
from torch_geometric.data import Batch, Data
from torch_geometric.nn import MessagePassing
from torch_geometric.nn.dense.linear import Linear as PygLinear

from gtsp.nn.attention import AttentionKernel


class _Tally:
    def __init__(self) -> None:
        self.dense = self.pruned = self.message_passing = 0.0


def _linear_hook(tally: _Tally):
    def hook(module: nn.Module, inputs, output) -> None:
        weight = module.weight
        rows = inputs[0].numel() // weight.size(1)
        flops = 2.0 * rows * weight.numel()
        tally.dense += flops
        tally.pruned += flops * float(torch.count_nonzero(weight)) / weight.numel()
    return hook


def _message_passing_hook(tally: _Tally):
    def hook(module: nn.Module, inputs, output) -> None:
        edge_index = inputs[1]
        tally.message_passing += float(edge_index.size(1) * inputs[0].size(-1))
    return hook


def _attention_hook(tally: _Tally):
    def hook(module: nn.Module, inputs, output) -> None:
        query, key = inputs[0], inputs[1]  # [B, H, L, d]: QK^T and AV over the tokens that take part
        flops = 4.0 * query.size(0) * query.size(1) * query.size(2) * key.size(2) * query.size(3)
        tally.dense += flops
        tally.pruned += flops
    return hook


HOOKS = ((AttentionKernel, _attention_hook), ((nn.Linear, PygLinear), _linear_hook),
         (MessagePassing, _message_passing_hook))


@contextmanager
def _counting(model: nn.Module, tally: _Tally):
    """Install the counting forward hooks for the duration of the block."""
    handles = []
    for module in model.modules():
        for kind, make_hook in HOOKS:
            if isinstance(module, kind):
                handles.append(module.register_forward_hook(make_hook(tally)))
                break
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def _sample(graphs: list[Data], max_graphs: int | None) -> list[Data]:
    if max_graphs is None or len(graphs) <= max_graphs:
        return graphs
    return [graphs[i] for i in np.linspace(0, len(graphs) - 1, max_graphs).round().astype(int)]


@torch.no_grad()
def analytic_flops_per_graph(model: nn.Module, graphs: list[Data], max_graphs: int | None = None,
                             device: torch.device | str = "cpu") -> dict[str, float]:
    """Mean analytic FLOPs per graph over ``graphs`` (each run alone, eval mode)."""
    graphs = _sample(graphs, max_graphs)
    tally = _Tally()
    model.eval()
    with _counting(model, tally):
        for graph in graphs:
            model(Batch.from_data_list([graph]).to(device))
    n = len(graphs)
    return {"dense": tally.dense / n, "pruned": tally.pruned / n, "message_passing": tally.message_passing / n,
            "graphs_counted": n}


def _cpu_flash_attention_flops(query, key, value, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query, key, value)


# PyTorch's registry lacks the CPU flash-attention kernel; count it with PyTorch's own SDPA formula.
_CPU_ATTENTION = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_flash_attention_flops}


@torch.no_grad()
def flop_counter_per_graph(model: nn.Module, graphs: list[Data], max_graphs: int | None = None,
                           device: torch.device | str = "cpu") -> float:
    """Mean FLOPs per graph as ``FlopCounterMode`` counts them (matmuls and attention)."""
    graphs = _sample(graphs, max_graphs)
    model.eval()
    counter = FlopCounterMode(display=False, custom_mapping=_CPU_ATTENTION)
    with counter:
        for graph in graphs:
            model(Batch.from_data_list([graph]).to(device))
    return counter.get_total_flops() / len(graphs)
