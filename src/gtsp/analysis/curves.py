"""Training vs test curves across sparsities (GTSP, Liu et al., Neural Networks 2024, Fig. 6:
weight sparsity narrows the gap between training and test curves).

Reads each run's ``metrics.jsonl`` (one line per epoch with ``train_metric``, the metric on the
training split, and ``test``) and ``results.json`` (its sparsity per dimension). Draws, per run,
the training metric (solid) and test metric (dashed) by epoch, and the gap ``train - test``.
The gap is the over-fitting the figure is about; its mean over the last epochs is in the JSON.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from gtsp.analysis.figures import new_figure, write_outputs
from gtsp.errors import GtspError

LAST_EPOCHS = 5


@dataclass
class Curve:
    """One run's per-epoch training and test metric."""

    run: str
    sparsity: dict[str, float]
    metric: str
    epochs: list[int]
    train: list[float]
    test: list[float]

    @property
    def label(self) -> str:
        pruned = [f"{dim} {ratio:g}" for dim, ratio in self.sparsity.items() if ratio]
        return ", ".join(pruned) or "dense"

    def final_gap(self) -> float:
        gaps = [a - b for a, b in zip(self.train, self.test)][-LAST_EPOCHS:]
        return sum(gaps) / len(gaps)


def find_runs(root: Path) -> list[Path]:
    """Run folders under ``root`` (``root`` itself included) with both ``results.json`` and ``metrics.jsonl``."""
    found = {p.parent for p in root.rglob("results.json") if (p.parent / "metrics.jsonl").is_file()}
    return sorted(found)


def read_curve(run: Path) -> Curve:
    """The curve of run folder ``run``; a clear error when its log has no training metric."""
    results = json.loads((run / "results.json").read_text())
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    rows = [r for r in rows if "epoch" in r and "test" in r]
    if not rows or any(r.get("train_metric") is None for r in rows):
        raise GtspError(f"{run}/metrics.jsonl has no per-epoch train_metric: train the run again with this gtsp")
    sparsity = {k: float(v) for k, v in (results.get("sparsity") or {}).items()}
    return Curve(run.name, sparsity, (results.get("metric") or {}).get("name", "metric"),
                 [int(r["epoch"]) for r in rows], [float(r["train_metric"]) for r in rows],
                 [float(r["test"]) for r in rows])


def analyse_curves(runs: list[Path], out: Path) -> list[Path]:
    """Write ``curves.png`` and ``curves.json`` for ``runs`` (sorted by weight sparsity, then name)."""
    if not runs:
        raise GtspError("no finished runs (results.json + metrics.jsonl) to draw curves from: give a run folder "
                        "or a folder holding several")
    curves = sorted((read_curve(r) for r in runs), key=lambda c: (c.sparsity.get("weight", 0.0), c.label, c.run))
    figure = new_figure(10.0, 3.8)
    ax_metric, ax_gap = figure.subplots(1, 2)
    colours = [f"C{i % 10}" for i in range(len(curves))]
    for curve, colour in zip(curves, colours):
        ax_metric.plot(curve.epochs, curve.train, color=colour, linewidth=1.4, label=f"{curve.label} train")
        ax_metric.plot(curve.epochs, curve.test, color=colour, linewidth=1.2, linestyle="--",
                       label=f"{curve.label} test")
        ax_gap.plot(curve.epochs, [a - b for a, b in zip(curve.train, curve.test)], color=colour, label=curve.label)
    metric = curves[0].metric
    ax_metric.set(xlabel="epoch", ylabel=metric, title=f"Training (solid) and test (dashed) {metric}")
    ax_gap.axhline(0.0, color="0.5", linewidth=0.8)
    ax_gap.set(xlabel="epoch", ylabel=f"train - test {metric}", title="Generalisation gap")
    ax_metric.legend(fontsize=6, ncol=2)
    ax_gap.legend(fontsize=7)
    numbers = {"metric": metric, "last_epochs_for_gap": LAST_EPOCHS,
               "runs": [{"run": c.run, "label": c.label, "sparsity": c.sparsity, "epochs": c.epochs,
                         "train": c.train, "test": c.test, "final_gap": c.final_gap()} for c in curves]}
    return write_outputs(out, "curves", figure, numbers)
