"""Training curves per dataset and backbone from each run's ``metrics.jsonl``.

Loss (left) and validation metric (right) per epoch, the mean over a setting's runs; dense in
black, every other setting in the colour it has in every figure; the legend sits outside.
"""
from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from gtsp.report.groups import Group  # noqa: E402
from gtsp.report.plots import DENSE, FONT, OUTSIDE  # noqa: E402
from gtsp.report.selection import read_log  # noqa: E402

PANELS = (("loss", "val_loss", "loss"), ("val", "train_metric", None))


def curves_plot(groups: list[Group], colour: dict[str, str], path: Path) -> Path | None:
    """Both panels for one dataset and backbone; None when no run logged ``metrics.jsonl``."""
    curves = {g.name: _mean_curve(g) for g in groups}
    curves = {name: c for name, c in curves.items() if c}
    if not curves:
        return None
    run = groups[0].runs[0]
    with matplotlib.rc_context(FONT):
        fig = Figure(figsize=(11, 4.5))
        axes = fig.subplots(1, 2)
        for ax, (solid, dashed, ylabel) in zip(axes, PANELS):
            for name, curve in curves.items():
                for key, style in ((solid, "-"), (dashed, "--")):
                    points = [(e, curve[e][key]) for e in sorted(curve) if key in curve[e]]
                    if points:
                        dense = colour[name] == DENSE  # the reference, drawn over the others
                        ax.plot(*zip(*points), style, color=colour[name], linewidth=2.2 if dense else 1.3,
                                zorder=3 if dense else 2)
            ax.set_ylabel(ylabel or run.metric)
            ax.set_xlabel("epoch")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(alpha=0.3)
        axes[0].set_title("loss (solid: train, dashed: validation)")
        axes[1].set_title(f"{run.metric} (solid: validation, dashed: train)")
        axes[1].legend(handles=[Line2D([], [], color=colour[name], label=name) for name in curves], **OUTSIDE)
        fig.suptitle(f"{run.dataset}, {run.model}: training curves, mean over each setting's runs")
        fig.savefig(path, dpi=100, bbox_inches="tight")
        return path


def _mean_curve(group: Group) -> dict[int, dict[str, float]]:
    """Per epoch, the mean of each logged number over the group's runs."""
    values: dict[int, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for run in group.runs:
        for epoch, record in read_log(run.path).items():
            for key in ("loss", "val_loss", "val", "train_metric"):
                if isinstance(record.get(key), (int, float)):
                    values[epoch][key].append(float(record[key]))
    return {e: {k: statistics.fmean(v) for k, v in keys.items()} for e, keys in values.items()}
