"""Layer redundancy: how alike the layers of a model are (GTSP, Liu et al., Neural Networks 2024,
Fig. 4b: adjacent layers are redundant, deeper ones more so).

For every pair of layers, four similarities on the sample graphs:

- representations, linear CKA (Kornblith et al., ICML 2019) of the two layers' output token
  matrices (real tokens only): 1 when one is a rotation and scaling of the other;
- representations, cosine: the mean over real tokens of the cosine between a token's two outputs;
- attention maps, linear CKA of the head-averaged attention rows (one row per real query token);
- attention maps, cosine of each graph's flattened head-averaged map, averaged over graphs.

Each is measured in context (the model's own forward pass) and on the same input (every layer
applied to the encoded batch that enters the first layer, see :mod:`gtsp.analysis.capture`):
in context, adjacent layers look alike when a layer changes little; on the same input, two
layers are alike when they compute the same function (two identical layers give exactly 1).
Both for the model before compaction, with the layers layer pruning removed marked, and for
the delivered model.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from gtsp.analysis.capture import Capture
from gtsp.analysis.figures import heat_map, new_figure, write_outputs
from gtsp.sparsify.layer import linear_cka

METRICS = {"representation_cka": "output tokens, linear CKA", "representation_cosine": "output tokens, cosine",
           "attention_cka": "attention rows, linear CKA", "attention_cosine": "attention maps, cosine"}


@dataclass
class LayerView:
    """The similarities of one model in one mode, with layer labels.

    Attributes:
        model: ``"before compaction"`` or ``"delivered"``.
        mode: ``"in context"`` or ``"same input"``.
        layers: pre-pruning index of each layer.
        removed: per layer, True when layer pruning removed it.
        matrices: metric name -> ``[layers, layers]`` similarity (NaN where a layer has no attention).
    """

    model: str
    mode: str
    layers: list[int]
    removed: list[bool]
    matrices: dict[str, list[list[float]]]

    def summary(self) -> dict:
        """Mean similarity of adjacent layers per metric."""
        adjacent = {}
        for name, matrix in self.matrices.items():
            values = [matrix[i][i + 1] for i in range(len(matrix) - 1) if matrix[i][i + 1] == matrix[i][i + 1]]
            adjacent[name] = sum(values) / len(values) if values else None
        return {"adjacent_mean": adjacent}


def representation_similarity(outputs: list[Tensor]) -> dict[str, Tensor]:
    """Linear CKA and mean token cosine between every pair of layer outputs ``[rows, C]``."""
    count = len(outputs)
    cka, cosine = torch.eye(count, dtype=torch.float64), torch.eye(count, dtype=torch.float64)
    for i in range(count):
        for j in range(i + 1, count):
            weight = outputs[i].new_ones(outputs[i].size(0))
            cka[i, j] = cka[j, i] = float(linear_cka(outputs[i], outputs[j], weight))
            cosine[i, j] = cosine[j, i] = float(torch.cosine_similarity(outputs[i], outputs[j], dim=-1).mean())
    return {"representation_cka": cka, "representation_cosine": cosine}


def attention_similarity(capture: Capture, num_layers: int) -> dict[str, Tensor]:
    """Linear CKA of attention rows and mean per-graph cosine of maps, per pair of layers (NaN: no attention)."""
    maps: dict[int, Tensor] = {record.layer: record.probs.mean(1) for record in capture.attentions}  # [B, L, L]
    cka = torch.full((num_layers, num_layers), float("nan"), dtype=torch.float64)
    cosine = cka.clone()
    rows = _query_rows(capture)
    for i in maps:
        for j in maps:
            a, b = maps[i], maps[j]
            cka[i, j] = float(linear_cka(a[rows], b[rows], a.new_ones(int(rows.sum()))))
            cosine[i, j] = float(torch.cosine_similarity(a.flatten(1), b.flatten(1), dim=-1).mean())
    return {"attention_cka": cka, "attention_cosine": cosine}


def _query_rows(capture: Capture) -> Tensor:
    """``[B, L]`` True at the real query tokens of the batch (the same layout in every layer)."""
    return capture.attentions[0].mask if capture.attentions else torch.zeros(0, dtype=torch.bool)


def layer_view(capture: Capture, model: str, mode: str, layers: list[int], removed: list[bool]) -> LayerView:
    """All four similarities of one captured pass."""
    matrices = {**representation_similarity(capture.layer_outputs),
                **attention_similarity(capture, len(capture.layer_outputs))}
    return LayerView(model, mode, layers, removed, {k: matrices[k].tolist() for k in METRICS})


def analyse_layers(views: list[LayerView], out: Path) -> list[Path]:
    """Write ``layers.png`` (one row per model and mode, one column per metric) and ``layers.json``."""
    figure = new_figure(3.0 * len(METRICS), 2.9 * len(views))
    axes = figure.subplots(len(views), len(METRICS), squeeze=False)
    for row, view in zip(axes, views):
        labels = [f"L{i}" + (" (removed)" if gone else "") for i, gone in zip(view.layers, view.removed)]
        for ax, (name, title) in zip(row, METRICS.items()):
            image = heat_map(ax, view.matrices[name], labels, view.removed, f"{view.model}, {view.mode}\n{title}",
                             annotate=True)
        figure.colorbar(image, ax=row.tolist(), shrink=0.8, label="similarity")
    numbers = {"metrics": METRICS, "views": [{"model": v.model, "mode": v.mode, "layers": v.layers,
                                              "removed": v.removed, **v.matrices, **v.summary()} for v in views]}
    return write_outputs(out, "layers", figure, numbers)
