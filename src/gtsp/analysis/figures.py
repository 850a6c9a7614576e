"""Shared output helpers of the analyses: matplotlib figures without a display, heat maps with
marked rows, and the PNG + JSON pair every analysis writes."""
from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

MARK_COLOUR = "tab:red"
DPI = 110


def new_figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def heat_map(ax: Axes, matrix: Sequence[Sequence[float]], labels: Sequence[str], marked: Sequence[bool],
             title: str, vmin: float = 0.0, vmax: float = 1.0, cmap: str = "viridis", annotate: bool = False):
    """Square heat map of ``matrix``; rows/columns with ``marked`` True get red tick labels."""
    image = ax.imshow(matrix, vmin=vmin, vmax=vmax, cmap=cmap)
    ticks = range(len(labels))
    ax.set_xticks(ticks, labels, rotation=90, fontsize=7)
    ax.set_yticks(ticks, labels, fontsize=7)
    for tick_labels in (ax.get_xticklabels(), ax.get_yticklabels()):
        for label, mark in zip(tick_labels, marked):
            if mark:
                label.set_color(MARK_COLOUR)
                label.set_fontweight("bold")
    if annotate:
        for i, row in enumerate(matrix):
            for j, value in enumerate(row):
                if not math.isnan(value):
                    ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=6,
                            color="white" if value < (vmin + vmax) / 2 else "black")
    ax.set_title(title, fontsize=9)
    return image


def finite(values: Any) -> Any:
    """``values`` with NaN / inf replaced by None, so the JSON is standard."""
    if isinstance(values, dict):
        return {k: finite(v) for k, v in values.items()}
    if isinstance(values, (list, tuple)):
        return [finite(v) for v in values]
    if isinstance(values, float) and not math.isfinite(values):
        return None
    return values


def write_outputs(out: Path, stem: str, figure: Figure | None, numbers: dict[str, Any]) -> list[Path]:
    """``out/stem.png`` (when a figure is given) and ``out/stem.json``; returns the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    if figure is not None:
        figure.savefig(out / f"{stem}.png")
        written.append(out / f"{stem}.png")
    (out / f"{stem}.json").write_text(json.dumps(finite(numbers), indent=1) + "\n")
    written.append(out / f"{stem}.json")
    return written
