"""Kept tokens: which nodes the token selectors of a token-pruned model let into attention (GTSP,
Liu et al., Neural Networks 2024: the kept tokens point to the substructures that decide the label).

- ``kept_tokens.png``: a few sample graphs, one panel per attention layer, the kept nodes in red:
  molecules drawn by RDKit with the kept atoms highlighted (:mod:`gtsp.analysis.molecules`),
  other graphs drawn with networkx;
- ``kept_fractions.png``: the distribution over the whole test split of the fraction of its node
  tokens each graph keeps, per layer (the selector's rule and ratio decide it; see
  ``docs/token_pruning.md``);
- ``kept_tokens.json``: the kept nodes of the drawn graphs and the distribution's numbers.
"""
from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from gtsp.analysis.capture import Capture, capture
from gtsp.analysis.drawing import draw_graph
from gtsp.analysis.figures import new_figure, write_outputs
from gtsp.analysis.molecules import molecule, molecule_grid
from gtsp.analysis.subject import Subject, original_layers
from gtsp.data.batching import eval_batches
from gtsp.sparsify.token_selector import TokenSelector

BINS = np.linspace(0.0, 1.0, 21)


def has_selectors(model: nn.Module) -> bool:
    return any(attention.token_selector is not None for _, attention in model.attention_modules())


def kept_nodes(record_capture: Capture, graph: int, num_nodes: int) -> list[list[int]]:
    """Per attention layer, the nodes of sample graph ``graph`` its selector kept."""
    return [torch.nonzero(record.node_kept(graph, num_nodes)).flatten().tolist()
            for record in record_capture.attentions]


@torch.no_grad()
def kept_fractions(model: nn.Module, graphs: list, batch_size: int = 128) -> list[list[float]]:
    """Per attention layer, each graph's fraction of node tokens its selector keeps (eval mode)."""
    selectors = [a.token_selector for _, a in model.attention_modules() if isinstance(a.token_selector, TokenSelector)]
    fractions: list[list[float]] = [[] for _ in selectors]
    handles = [s.register_forward_hook(partial(_record_fraction, fractions[i])) for i, s in enumerate(selectors)]
    model.eval()
    try:
        for batch in eval_batches(graphs, batch_size)[0]:
            model(batch)
    finally:
        for handle in handles:
            handle.remove()
    return fractions


def _record_fraction(store: list[float], module: nn.Module, args: tuple, output: tuple[Tensor, ...]) -> None:
    x, mask, prefix = args[0], args[1], int(args[2]) if len(args) > 2 else 0
    kept = output[1][:, prefix:].sum(1)
    real = mask[:, prefix:].sum(1) if mask is not None else torch.full_like(kept, x.size(1) - prefix)
    store.extend((kept.double() / real.clamp(min=1)).tolist())


def analyse_kept_tokens(subject: Subject, out: Path, examples: int = 4) -> list[Path]:
    """Write the kept-token drawings, the kept-fraction distribution and their numbers."""
    model = subject.after
    graphs = subject.graphs[:examples]
    record = capture(model, subject.batch())
    kept = [kept_nodes(record, i, g.num_nodes) for i, g in enumerate(graphs)]
    original = original_layers(subject)
    layers = [f"L{original[r.layer]}" for r in record.attentions]
    written = _draw_examples(subject, graphs, kept, layers, out)
    fractions = kept_fractions(model, subject.data.test)
    written += _draw_fractions(fractions, layers, subject, out)
    token = subject.plan.get("token")
    numbers = {"token": None if token is None else token.to_dict(), "layers": layers,
               "examples": [{"test_position": p, "nodes": g.num_nodes, "kept_nodes": k}
                            for p, g, k in zip(subject.sample, graphs, kept)],
               "fractions": _fraction_summary(fractions, layers)}
    return written + write_outputs(out, "kept_tokens", None, numbers)


def _draw_examples(subject: Subject, graphs: list, kept: list[list[list[int]]], layers: list[str],
                   out: Path) -> list[Path]:
    info = subject.data.info
    mols = [molecule(info.name, g, subject.dataset_index(p), subject.cache_root, info.molecular)
            for p, g in zip(subject.sample, graphs)]
    out.mkdir(parents=True, exist_ok=True)
    if all(mol is not None for mol in mols):
        legends = [f"test graph {p}, {layer}: {len(k)}/{g.num_nodes} kept"
                   for p, g, per_layer in zip(subject.sample, graphs, kept) for layer, k in zip(layers, per_layer)]
        png = molecule_grid([m for m in mols for _ in layers], [k for per_layer in kept for k in per_layer],
                            legends, per_row=len(layers))
        (out / "kept_tokens.png").write_bytes(png)
        return [out / "kept_tokens.png"]
    figure = new_figure(2.6 * len(layers), 2.6 * len(graphs))
    axes = figure.subplots(len(graphs), len(layers), squeeze=False)
    for row, position, graph, per_layer in zip(axes, subject.sample, graphs, kept):
        for ax, layer, nodes in zip(row, layers, per_layer):
            marked = [i in set(nodes) for i in range(graph.num_nodes)]
            draw_graph(ax, graph, f"test graph {position}, {layer}: {len(nodes)}/{graph.num_nodes} kept",
                       marked=marked)
    figure.suptitle("Tokens kept by the token selectors (red)", fontsize=10)
    figure.savefig(out / "kept_tokens.png")
    return [out / "kept_tokens.png"]


def _draw_fractions(fractions: list[list[float]], layers: list[str], subject: Subject, out: Path) -> list[Path]:
    figure = new_figure(5.5, 3.4)
    ax = figure.add_subplot()
    for layer, values in zip(layers, fractions):
        ax.hist(values, bins=BINS, histtype="step", linewidth=1.5, label=f"{layer} (mean {np.mean(values):.2f})")
    token = subject.plan.get("token")
    if token is not None:
        kept = 1 - float(token.ratio)
        ax.axvline(kept, color="0.3", linestyle=":", label=f"1 - ratio = {kept:.2f}")
    ax.set_xlabel("fraction of a graph's node tokens kept")
    ax.set_ylabel("test graphs")
    ax.set_title(f"Kept token fraction over the test split ({len(fractions[0]) if fractions else 0} graphs, "
                 f"rule {token.rule if token is not None else '?'})", fontsize=9)
    ax.legend(fontsize=7)
    figure.savefig(out / "kept_fractions.png")
    return [out / "kept_fractions.png"]


def _fraction_summary(fractions: list[list[float]], layers: list[str]) -> dict:
    summary = {}
    for layer, values in zip(layers, fractions):
        array = np.asarray(values)
        summary[layer] = {"graphs": int(array.size), "mean": float(array.mean()), "min": float(array.min()),
                          "max": float(array.max()), "all_kept_share": float((array >= 1.0).mean()),
                          "histogram": np.histogram(array, bins=BINS)[0].tolist(), "bin_edges": BINS.tolist()}
    return summary
