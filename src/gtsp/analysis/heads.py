"""Head redundancy: how alike the attention maps of every pair of heads are (GTSP, Liu et al.,
Neural Networks 2024, Fig. 4a: heads play distinct roles and many are redundant).

Distance: the Jensen-Shannon distance (base 2) between two heads' attention rows, averaged over
the real query tokens of the sample graphs from which both heads attend. Each row of an
attention map is a probability distribution over the keys one query reads, so the distance
compares what the heads actually do with each query. It is symmetric, bounded in [0, 1]
(1: the two heads read disjoint keys), zero exactly when both put the same weights on the same
keys, and a true metric (the square root of the JS divergence, Endres & Schindelin 2003), so a
heat map of it reads as distances. Unlike ``1 - cosine`` of flattened maps, every query counts
the same whatever the graph's size, and a few large entries do not dominate.

Heads are compared across all layers, on the maps of the model's own forward pass. Which heads
the delivered model kept comes from the compaction plan.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor

from gtsp.analysis.capture import Capture
from gtsp.analysis.figures import MARK_COLOUR, heat_map, new_figure, write_outputs
from gtsp.analysis.subject import kept
from gtsp.errors import GtspError
from gtsp.sparsify import CompactionPlan

DISTANCE = "Jensen-Shannon distance (base 2) between attention rows, mean over real query tokens"
# a query row is attended when its probabilities sum to 1; padding and dropped tokens sum to 0
_ATTENDED = 0.5


@dataclass(frozen=True)
class HeadLabel:
    """A head by its place in the model before pruning, and whether the delivered model kept it."""

    layer: int
    head: int
    kept: bool
    layer_kept: bool = True   # False: the head went with its whole layer, not by its head score

    @property
    def text(self) -> str:
        return f"L{self.layer}h{self.head}"


def head_labels(capture: Capture, original_layers: list[int], plan: CompactionPlan,
                uncompacted: bool) -> list[HeadLabel]:
    """One label per head of ``capture``, in model order.

    ``original_layers[i]`` is the pre-pruning index of the model's layer ``i``. In an uncompacted
    model every head is present and the plan says which survive; in a compacted one every head
    survived and the plan gives its original index.
    """
    labels = []
    for record in capture.attentions:
        layer = original_layers[record.layer]
        heads, layers = kept(plan, "head"), kept(plan, "layer")
        planned = heads[layer] if heads is not None else None
        layer_kept = layers is None or layer in layers
        for head in range(record.probs.size(1)):
            if uncompacted:
                labels.append(HeadLabel(layer, head, layer_kept and (planned is None or head in planned),
                                        layer_kept))
            else:
                labels.append(HeadLabel(layer, planned[head] if planned is not None else head, True))
    return labels


def js_distance(p: Tensor, q: Tensor) -> Tensor:
    """Jensen-Shannon distance (base 2) between distributions along the last dimension."""
    m = (p + q) / 2
    divergence = (torch.special.xlogy(p, p) - torch.special.xlogy(p, m)
                  + torch.special.xlogy(q, q) - torch.special.xlogy(q, m)).sum(-1) / (2 * math.log(2))
    return divergence.clamp(min=0).sqrt()


def head_distances(capture: Capture) -> Tensor:
    """``[heads, heads]`` mean JS distance between the attention rows of every pair of heads."""
    if not capture.attentions:
        raise GtspError("this model has no attention heads to compare (e.g. built with --heads 0)")
    maps = torch.cat([record.probs for record in capture.attentions], dim=1)  # [B, heads, L, L]
    attended = maps.sum(-1) > _ATTENDED  # [B, heads, L]
    count = maps.size(1)
    distance = torch.zeros(count, count, dtype=torch.float64)
    for i in range(count):
        rows = js_distance(maps[:, i:i + 1], maps)  # [B, heads, L]
        both = attended[:, i:i + 1] & attended
        total = (rows * both).sum((0, 2)).double()
        distance[i] = total / both.sum((0, 2)).clamp(min=1)
        distance[i][both.sum((0, 2)) == 0] = float("nan")
    return (distance + distance.T) / 2


def analyse_heads(capture: Capture, labels: list[HeadLabel], model: str, out: Path) -> list[Path]:
    """Write ``heads.png`` (the distance heat map, kept heads marked) and ``heads.json``."""
    distance = head_distances(capture)
    figure = new_figure(1.2 + 0.32 * len(labels), 0.8 + 0.3 * len(labels))
    ax = figure.add_subplot()
    image = heat_map(ax, distance.tolist(), [label.text for label in labels], [label.kept for label in labels],
                     f"Head redundancy ({model})\nJensen-Shannon distance of attention rows; red = kept",
                     cmap="magma", annotate=len(labels) <= 16)
    _layer_boundaries(ax, labels)
    figure.colorbar(image, ax=ax, shrink=0.8, label="JS distance (0 = same attention)")
    heads = [asdict(label) | {"label": label.text} for label in labels]
    numbers = {"distance": DISTANCE, "model": model, "heads": heads, "matrix": distance.tolist(),
               **head_summary(distance, labels)}
    return write_outputs(out, "heads", figure, numbers)


def head_summary(distance: Tensor, labels: list[HeadLabel]) -> dict:
    """Each head's nearest other head, the closest pair, and mean nearest distance of kept and pruned heads."""
    off = distance.clone().fill_diagonal_(float("inf")).nan_to_num(nan=float("inf"))
    nearest_value, nearest_index = off.min(1)
    nearest = [{"head": labels[i].text, "nearest": labels[int(j)].text, "distance": float(v)}
               for i, (v, j) in enumerate(zip(nearest_value, nearest_index))]
    flat = int(off.argmin())
    pair = (labels[flat // len(labels)].text, labels[flat % len(labels)].text)

    def mean_nearest(kept: bool, kept_layers_only: bool = False) -> float | None:
        values = [float(v) for v, label in zip(nearest_value, labels)
                  if label.kept == kept and math.isfinite(v) and (label.layer_kept or not kept_layers_only)]
        return sum(values) / len(values) if values else None

    # Heads of removed layers count as pruned overall; only in kept layers did head scores decide.
    return {"nearest": nearest, "closest_pair": {"heads": list(pair), "distance": float(off.min())},
            "mean_nearest_distance": {"kept": mean_nearest(True), "pruned": mean_nearest(False)},
            "mean_nearest_distance_in_kept_layers": {"kept": mean_nearest(True, True),
                                                     "pruned": mean_nearest(False, True)}}


def _layer_boundaries(ax, labels: list[HeadLabel]) -> None:
    for i in range(1, len(labels)):
        if labels[i].layer != labels[i - 1].layer:
            ax.axhline(i - 0.5, color="white", linewidth=1.2)
            ax.axvline(i - 0.5, color="white", linewidth=1.2)
    for i, label in enumerate(labels):
        if label.kept:
            ax.plot(i, i, marker="s", markersize=5, markerfacecolor="none", markeredgecolor=MARK_COLOUR)
