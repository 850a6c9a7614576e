"""The report's PNG figures (matplotlib, no display needed).

- Pareto views per dataset: test metric against counted FLOPs per graph and against measured
  latency (ms per graph), one point per setting (mean, bar = std over its runs), coloured by
  the pruned dimension (``joint`` for several), shaped by backbone, dense and the
  attention-free baseline named; the line is the Pareto front (no other setting is both
  cheaper and better);
- metric against sparsity ratio, one panel per dimension, one line per backbone, starting
  at the dense reference (ratio 0);
- training curves per dataset and backbone from each run's ``metrics.jsonl`` (mean over a
  setting's runs at each epoch).
"""
from __future__ import annotations

import json
import re
import statistics
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from gtsp.report.collect import dimension_names  # noqa: E402
from gtsp.report.groups import Group, kind_order  # noqa: E402

COLOURS = {"dense": "black", "baseline": "tab:gray", "joint": "tab:brown", "budget": "tab:pink"}  # besides dimensions
MARKERS = "os^Dv<>p"
NAMED = {"dense": "dense", "baseline": "no attention"}


def colour(kind: str) -> str:
    """The colour of a run kind: a dimension's own (from its registry entry), else the kind's."""
    from gtsp.sparsify import registry

    return registry.dimension(kind).colour if kind in dimension_names() else COLOURS[kind]


def kind_label(kind: str) -> str:
    """A run kind in a legend: a dimension's report label, else the kind itself."""
    from gtsp.sparsify import registry

    return registry.dimension(kind).label if kind in dimension_names() else kind


def safe(name: str) -> str:
    """``name`` as a file-name part."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name)


def pareto_front(points: list[tuple[float, float]], higher_is_better: bool) -> list[tuple[float, float]]:
    """The points no other point beats on both cost (lower x) and metric, cheapest first."""
    sign = 1.0 if higher_is_better else -1.0
    front: list[tuple[float, float]] = []
    for x, y in sorted(points, key=lambda p: (p[0], -sign * p[1])):
        if not front or sign * y > sign * front[-1][1]:
            front.append((x, y))
    return front


def pareto_plot(groups: list[Group], cost: str, path: Path) -> Path:
    """Test metric against ``cost`` (``flops`` or ``latency``) for one dataset's groups."""
    run = groups[0].runs[0]
    xs = [g.stat("flops").mean if cost == "flops" else g.latency_ms().mean for g in groups]
    fig = Figure(figsize=(7.5, 5))
    ax = fig.subplots()
    markers = {m: MARKERS[i % len(MARKERS)] for i, m in enumerate(sorted({g.model for g in groups}))}
    for g, x in zip(groups, xs):
        test = g.stat("test")
        ax.errorbar([x], [test.mean], yerr=[test.std or 0.0], fmt=markers[g.model], color=colour(g.kind),
                    markersize=8, capsize=3)
        if g.kind in NAMED:
            ax.annotate(NAMED[g.kind], (x, test.mean), textcoords="offset points", xytext=(6, 6), fontsize=8)
    front = pareto_front([(x, g.stat("test").mean) for g, x in zip(groups, xs)], run.higher_is_better)
    front.append((max(xs), front[-1][1]))  # the best metric holds on to the costliest setting
    ax.plot(*zip(*front), color="0.6", linestyle="--", drawstyle="steps-post", zorder=0, label="Pareto front")
    _legend(ax, sorted({g.kind for g in groups}, key=kind_order().index), markers)
    if max(xs) > 10 * min(xs) > 0:
        ax.set_xscale("log")
    ax.set_xlabel("FLOPs per graph (counted)" if cost == "flops" else "latency, ms per graph (measured)")
    ax.set_ylabel(f"test {run.metric}")
    ax.set_title(f"{run.dataset}: test {run.metric} vs {'FLOPs' if cost == 'flops' else 'latency'}")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def _legend(ax, kinds: list[str], markers: dict[str, str]) -> None:
    handles = [ax.scatter([], [], color=colour(k), marker="o", label=kind_label(k)) for k in kinds]
    handles += [ax.scatter([], [], color="white", edgecolors="black", marker=m, label=model)
                for model, m in markers.items()]
    handles += [h for h in ax.get_lines() if h.get_label() == "Pareto front"]
    ax.legend(handles=handles, fontsize=8, loc="best")


def ratio_plot(groups: list[Group], path: Path) -> Path | None:
    """Test metric against ratio, one panel per pruned dimension; None when nothing prunes one dimension."""
    dims = [d for d in dimension_names() if any(g.kind == d for g in groups)]
    if not dims:
        return None
    fig = Figure(figsize=(4.5 * len(dims), 4))
    axes = fig.subplots(1, len(dims), squeeze=False)[0]
    run = groups[0].runs[0]
    for ax, dim in zip(axes, dims):
        lines: dict[tuple[str, str], list[Group]] = defaultdict(list)
        for g in groups:
            if g.kind == dim:
                ref = g.reference
                lines[(g.model, ref.setting if ref else "")].append(g)
        for (model, _), members in sorted(lines.items()):
            ref = members[0].reference
            points = [(0.0, ref.stat("test"))] if ref is not None else []
            points += sorted(((g.runs[0].prune[dim], g.stat("test")) for g in members), key=lambda p: p[0])
            ax.errorbar([p[0] for p in points], [p[1].mean for p in points], yerr=[p[1].std or 0.0 for p in points],
                        marker="o", capsize=3, label=model, color=colour(dim) if len(lines) == 1 else None)
        ax.set_title(f"{kind_label(dim)} pruning")
        ax.set_xlabel("ratio removed")
        ax.set_ylabel(f"test {run.metric}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"{run.dataset}: test {run.metric} vs sparsity (0 = dense)")
    return _save(fig, path)


def curves_plot(groups: list[Group], path: Path) -> Path | None:
    """Loss and validation metric per epoch for one dataset and backbone; None without metrics.jsonl."""
    curves = {g.label: _mean_curve(g) for g in groups}
    curves = {label: c for label, c in curves.items() if c}
    if not curves:
        return None
    fig = Figure(figsize=(11, 4))
    loss_ax, metric_ax = fig.subplots(1, 2)
    run = groups[0].runs[0]
    for i, (label, curve) in enumerate(curves.items()):
        colour = f"C{i % 10}"
        epochs = sorted(curve)
        for ax, key, style, suffix in ((loss_ax, "loss", "-", "train"), (loss_ax, "val_loss", "--", "val"),
                                       (metric_ax, "val", "-", "val"), (metric_ax, "train_metric", "--", "train")):
            points = [(e, curve[e][key]) for e in epochs if key in curve[e]]
            if points:
                ax.plot(*zip(*points), style, color=colour, label=f"{label} ({suffix})")
    loss_ax.set_ylabel("loss")
    metric_ax.set_ylabel(run.metric)
    for ax in (loss_ax, metric_ax):
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"{run.dataset}, {run.model}: training curves (mean over runs; dashed: "
                 "the other split where logged)")
    return _save(fig, path)


def _mean_curve(group: Group) -> dict[int, dict[str, float]]:
    """Per epoch, the mean of each logged number over the group's runs (the last line of an epoch wins)."""
    values: dict[int, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for run in group.runs:
        log = run.path / "metrics.jsonl"
        if not log.is_file():
            continue
        epochs: dict[int, dict] = {}
        for line in log.read_text().splitlines():
            try:
                record = json.loads(line)
                epochs[int(record["epoch"])] = record
            except (ValueError, KeyError, TypeError):
                continue  # a line cut by a kill
        for epoch, record in epochs.items():
            for key in ("loss", "val_loss", "val", "train_metric"):
                if isinstance(record.get(key), (int, float)):
                    values[epoch][key].append(float(record[key]))
    return {e: {k: statistics.fmean(v) for k, v in keys.items()} for e, keys in values.items()}


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path
