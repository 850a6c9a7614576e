"""The attention-free baseline (``model_args: {attention: false}``) costs the dense model's FLOPs minus
every attention block's, on every backbone, counted two independent ways on the same graphs:

- ``gtsp.accounting.flops`` (analytic, per-layer formulas at each graph's size): dense - free equals
  the closed form of ``layers`` attention blocks over the ``L`` tokens that attend (the nodes, plus
  the [CLS] / virtual token of GraphTrans and Graphormer): q/k/v and output projections
  ``2 L C 3C + 2 L C C``, and ``QK^T`` plus ``AV`` ``4 L^2 C``; Graphormer's attention also reads
  a bias computed once per forward from the edges (edge features to one number per head, then a
  projection per path position: ``2 E d_E H + 2 E H (max_path H)`` over the ``E`` directed edges),
  which exists only for attention and goes with it;
- ``torch.utils.flop_counter.FlopCounterMode``: dense - free equals what its per-module breakdown
  attributes to the modules the backbone declares as attention (``attention_modules()``), plus
  Graphormer's bias modules.
"""
from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count
from torch_geometric.data import Batch

from gtsp.accounting.flops import analytic_flops_per_graph, flop_counter_per_graph
from gtsp.data.info import DatasetInfo
from gtsp.data.shortest_paths import ShortestPaths
from gtsp.models import build_model
from tests.conftest import random_graph

INFO = DatasetInfo("tiny", 7, 4, False, "multiclass", 2, "accuracy", True)
HIDDEN, LAYERS, HEADS = 32, 2, 4
SIZES = (3, 9, 20)
PREFIX = {"gps": 0, "graphtrans": 1, "graphormer": 1}  # tokens attending besides the nodes
SHARED_BIAS = {"graphormer": ("edge_encoder", "bias")}  # modules computing the attention bias once per forward
EDGE_FEATURES, MAX_PATH = INFO.num_edge_features, 5  # Graphormer's default max_path
# FlopCounterMode has no formula for the CPU flash-attention kernel; count it with PyTorch's SDPA formula
CPU_FLASH = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu:
             lambda q, k, v, *args, out_shape=None, **kwargs: sdpa_flop_count(q, k, v)}


def graphs() -> list:
    return [ShortestPaths()(random_graph(n, seed=n)) for n in SIZES]


def pair(backbone: str):
    """Dense and attention-free models of the same width and depth (eval mode)."""
    args = {"hidden": HIDDEN, "layers": LAYERS, "heads": HEADS}
    torch.manual_seed(0)
    dense = build_model(backbone, INFO, **args).eval()
    torch.manual_seed(0)
    free = build_model(backbone, INFO, **args, attention=False).eval()
    return dense, free


def attention_flops_closed_form(backbone: str) -> float:
    """Mean over ``SIZES`` of ``LAYERS`` attention blocks' FLOPs on one graph of that size."""
    per_graph = []
    for n in SIZES:
        tokens = n + PREFIX[backbone]
        projections = 2 * tokens * HIDDEN * 3 * HIDDEN + 2 * tokens * HIDDEN * HIDDEN
        per_graph.append(LAYERS * (projections + 4 * tokens ** 2 * HIDDEN))
    if backbone in SHARED_BIAS:
        for i, graph in enumerate(graphs()):
            edges = graph.edge_index.size(1)
            per_graph[i] += 2 * edges * EDGE_FEATURES * HEADS + 2 * edges * HEADS * MAX_PATH * HEADS
    return sum(per_graph) / len(per_graph)


@torch.no_grad()
def counted_in_attention_modules(model, backbone: str, sample: list) -> float:
    """Mean FLOPs per graph that ``FlopCounterMode`` attributes to the declared attention modules
    (and to Graphormer's bias modules)."""
    counter = FlopCounterMode(display=False, custom_mapping=CPU_FLASH)
    with counter:
        for graph in sample:
            model(Batch.from_data_list([graph]))
    by_module = counter.get_flop_counts()
    names = [name for name, _ in model.attention_modules()]
    assert len(names) == LAYERS
    names += SHARED_BIAS.get(backbone, ())
    total = 0.0
    for name in names:
        total += sum(by_module[f"{type(model).__name__}.{name}"].values())  # keys start with the model's class
    return total / len(sample)


@pytest.mark.parametrize("backbone", ["gps", "graphtrans", "graphormer"])
def test_attention_free_flops_are_dense_minus_attention(backbone):
    sample = graphs()
    dense, free = pair(backbone)
    assert free.attention_modules() == [] and len(dense.attention_modules()) == LAYERS
    analytic_dense = analytic_flops_per_graph(dense, sample)["dense"]
    analytic_free = analytic_flops_per_graph(free, sample)["dense"]
    assert analytic_dense - analytic_free == pytest.approx(attention_flops_closed_form(backbone), rel=1e-9)

    counted_dense, counted_free = flop_counter_per_graph(dense, sample), flop_counter_per_graph(free, sample)
    in_attention = counted_in_attention_modules(dense, backbone, sample)
    assert in_attention > 0
    assert counted_dense - counted_free == pytest.approx(in_attention, rel=1e-9)
    # the two counts agree with each other, for the attention blocks and for the rest of the model
    assert in_attention == pytest.approx(attention_flops_closed_form(backbone), rel=1e-9)
    assert counted_free == pytest.approx(analytic_free, rel=1e-9)
