"""Attention received per node (GTSP, Liu et al., Neural Networks 2024, Fig. 5: only a few tokens
receive high attention).

A node's received attention in a layer is the attention its token gets, averaged over the layer's
heads and over the graph's attending query tokens: ``mean_h mean_q P[h, q, node]``. Uniform
attention gives every node ``1 / n``; the figure shows it as a multiple of that (``n x``
received), so 1 means "as much as under uniform attention" in graphs of any size.

Numbers over the whole sample: per layer, the share of all attention that goes to the top 10 % of
a graph's nodes (0.1 under uniform attention) and to the special tokens ([CLS] / [VNode]).
"""
from __future__ import annotations

import math
from pathlib import Path

from torch import Tensor

from gtsp.analysis.capture import AttentionRecord, Capture
from gtsp.analysis.drawing import draw_graph, layout
from gtsp.analysis.figures import new_figure, write_outputs

TOP_SHARE = 0.1


def received(record: AttentionRecord, graph: int, num_nodes: int) -> Tensor:
    """``[prefix + num_nodes]`` attention each token of ``graph`` receives (prefix first)."""
    probs = record.probs[graph].mean(0)  # [L, L]
    queries = probs.sum(-1) > 0.5
    tokens = record.prefix + num_nodes
    return probs[queries][:, :tokens].mean(0) if bool(queries.any()) else probs.new_zeros(tokens)


def concentration(capture: Capture, sizes: list[int]) -> dict[str, list[float]]:
    """Per layer, the mean over graphs of the node attention share of the top 10 % of nodes and of
    the special tokens."""
    top, special = [], []
    for record in capture.attentions:
        top_shares, special_shares = [], []
        for graph, size in enumerate(sizes):
            values = received(record, graph, size)
            nodes = values[record.prefix:]
            total = float(values.sum())
            if total <= 0:
                continue
            count = max(1, math.ceil(TOP_SHARE * size))
            top_shares.append(float(nodes.topk(min(count, size)).values.sum()) / max(float(nodes.sum()), 1e-12))
            special_shares.append(float(values[:record.prefix].sum()) / total)
        top.append(sum(top_shares) / max(len(top_shares), 1))
        special.append(sum(special_shares) / max(len(special_shares), 1))
    return {"top10_node_share": top, "special_token_share": special}


def analyse_attention_received(capture: Capture, graphs: list, positions: list[int], layers: list[str],
                               out: Path, examples: int = 3) -> list[Path]:
    """Write ``attention_received.png`` (per example graph: the drawing coloured by received attention
    in the last layer, and every layer's nodes sorted by it) and ``attention_received.json``."""
    shown = list(range(min(examples, len(graphs))))
    figure = new_figure(8.0, 2.9 * len(shown))
    axes = figure.subplots(len(shown), 2, squeeze=False, width_ratios=[1.0, 1.3])
    per_graph = []
    for (ax_graph, ax_sorted), graph_index in zip(axes, shown):
        graph = graphs[graph_index]
        size = graph.num_nodes
        per_layer = [received(record, graph_index, size) for record in capture.attentions]
        last = (per_layer[-1][capture.attentions[-1].prefix:] * size).tolist()
        nodes = draw_graph(ax_graph, graph, f"test graph {positions[graph_index]}: {layers[-1]}, n x received",
                           values=last, positions=layout(graph), cmap="inferno", vmax=max(max(last), 1.0))
        figure.colorbar(nodes, ax=ax_graph, shrink=0.7)
        for layer, values, record in zip(layers, per_layer, capture.attentions):
            relative = (values[record.prefix:] * size).sort(descending=True).values
            ax_sorted.plot(range(1, size + 1), relative.tolist(), marker=".", linewidth=1, label=layer)
        ax_sorted.axhline(1.0, color="0.5", linestyle=":", linewidth=1, label="uniform")
        ax_sorted.set_xlabel("nodes, most attended first")
        ax_sorted.set_ylabel("n x attention received")
        ax_sorted.legend(fontsize=6, ncol=2)
        per_graph.append({"test_position": positions[graph_index], "nodes": size,
                          "received": {layer: values.tolist() for layer, values in zip(layers, per_layer)}})
    figure.suptitle("Attention received per node (head mean, query mean)", fontsize=10)
    numbers = {"layers": layers, "definition": "mean over heads and attending queries of P[h, q, node]; "
                                               "the first `prefix` entries are special tokens",
               "prefix": capture.attentions[0].prefix, "examples": per_graph,
               "sample": {"graphs": len(graphs), **concentration(capture, [g.num_nodes for g in graphs])}}
    return write_outputs(out, "attention_received", figure, numbers)
