"""The report's PNG figures (matplotlib, no display needed), all paired with dense.

Every figure compares settings with the dense run of the same fold and seed: points are mean
paired differences with t-based 95 % intervals as error bars, ``n`` (paired units) written
beside each (in the legend where points crowd), and dense drawn as the reference (the zero line, and the point (1, 0) where cost
is on the x axis). Each setting keeps one colour across all figures (:func:`colours`), and
legends sit outside the axes so they cover no data.

- effects: Δ test metric per setting, against dense over all epochs and against dense
  restricted to the run's own selectable epochs;
- cost: Δ test metric against relative FLOPs (with the Pareto front of the paired means) and
  against the speed-up each run timed in one process (never absolute latencies across runs);
- ratio: Δ test metric against the ratio removed, one panel per dimension.

Training curves are drawn by :mod:`gtsp.report.curves`.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.transforms import blended_transform_factory  # noqa: E402

from gtsp.report.collect import dimension_names  # noqa: E402
from gtsp.report.groups import Group  # noqa: E402

FONT = {"font.size": 12, "axes.titlesize": 13, "legend.fontsize": 11}
DENSE = "black"
PALETTE = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:olive",
           "tab:cyan", "tab:gray", "#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02"]
OUTSIDE = {"loc": "upper left", "bbox_to_anchor": (1.02, 1.0), "borderaxespad": 0.0}


def colours(groups: list[Group]) -> dict[str, str]:
    """One colour per setting (backbone and label), dense in black; reused by every figure."""
    names = dict.fromkeys(g.name for g in groups if g.paired is not None)
    table = {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(names)}
    return {**table, **{g.name: DENSE for g in groups if g.paired is None}}


def kind_label(kind: str) -> str:
    """A run kind in a title: a dimension's report label (from its registry entry), else the kind itself."""
    from gtsp.sparsify import registry

    return registry.dimension(kind).label if kind in dimension_names() else kind


def pareto_front(points: list[tuple[float, float]], higher_is_better: bool) -> list[tuple[float, float]]:
    """The points no other point beats on both cost (lower x) and metric, cheapest first."""
    sign = 1.0 if higher_is_better else -1.0
    front: list[tuple[float, float]] = []
    for x, y in sorted(points, key=lambda p: (p[0], -sign * p[1])):
        if not front or sign * y > sign * front[-1][1]:
            front.append((x, y))
    return front


def compared(groups: list[Group], measure: str = "test_diff") -> list[Group]:
    """The settings with at least one paired unit that has ``measure``."""
    return [g for g in groups if g.paired is not None and g.paired.estimate(measure) is not None]


def effects_plot(groups: list[Group], colour: dict[str, str], path: Path) -> Path | None:
    """Δ test per setting (rows), against dense over all epochs and in the same epoch window."""
    rows = compared(groups)
    if not rows:
        return None
    run = rows[0].runs[0]
    with matplotlib.rc_context(FONT):
        height = 1.6 + 0.6 * len(rows)
        fig = Figure(figsize=(10, height))
        ax = fig.subplots()
        label_at = blended_transform_factory(ax.transAxes, ax.transData)
        for i, g in enumerate(reversed(rows)):
            for offset, measure, face in ((0.15, "test_diff", colour[g.name]), (-0.15, "test_diff_window", "white")):
                est = g.paired.estimate(measure)
                if est is not None:
                    ax.errorbar([est.mean], [i + offset], xerr=[est.half_width()], fmt="o" if face != "white" else "s",
                                color=colour[g.name], markerfacecolor=face, markersize=8, capsize=4)
            ax.text(1.01, i, f"n={g.paired.estimate('test_diff').n}", transform=label_at, va="center")
        ax.axvline(0.0, color=DENSE, linewidth=1.2)
        ax.set_yticks(range(len(rows)), [g.name for g in reversed(rows)])
        ax.set_ylim(-0.6, len(rows) - 0.4)
        ax.set_xlabel(f"test {run.metric} minus dense's (same fold and seed); bars: 95 % CI")
        ax.set_title(f"{run.dataset}: paired difference to dense ({_better(run)})")
        ax.grid(axis="x", alpha=0.3)
        ax.legend(handles=[Line2D([], [], color="0.3", marker="o", linestyle="", label="vs dense, all epochs"),
                           Line2D([], [], color="0.3", marker="s", markerfacecolor="white", linestyle="",
                                  label="vs dense, same epoch window"),
                           Line2D([], [], color=DENSE, label="dense (0)")],
                  loc="upper center", bbox_to_anchor=(0.5, -0.75 / (height - 1.0)), ncol=3)
        return _save(fig, path)


def cost_plot(groups: list[Group], colour: dict[str, str], measure: str, path: Path) -> Path | None:
    """Δ test against ``flops_rel`` (lower is cheaper) or ``speedup`` (higher is faster); dense at (1, 0)."""
    points = [g for g in compared(groups, measure) if g.paired.estimate("test_diff") is not None]
    if not points:
        return None
    run = points[0].runs[0]
    with matplotlib.rc_context(FONT):
        fig = Figure(figsize=(9, 5.5))
        ax = fig.subplots()
        for g in points:
            x, y = g.paired.estimate(measure), g.paired.estimate("test_diff")
            ax.errorbar([x.mean], [y.mean], xerr=[x.half_width()], yerr=[y.half_width()], fmt="o", markersize=8,
                        capsize=4, color=colour[g.name], label=f"{g.name} (n={y.n})")
        ax.plot([1.0], [0.0], marker="*", markersize=16, color=DENSE, linestyle="", label="dense (reference)")
        ax.axhline(0.0, color=DENSE, linewidth=1.0)
        ax.axvline(1.0, color=DENSE, linewidth=0.6, linestyle=":")
        sign = 1.0 if measure == "flops_rel" else -1.0  # the front wants "lower x is better"
        front = pareto_front([(sign * g.paired.estimate(measure).mean, g.paired.estimate("test_diff").mean)
                              for g in points] + [(sign, 0.0)], run.higher_is_better)
        if len(front) > 1:
            ax.plot([sign * x for x, _ in front], [y for _, y in front], color="0.5", linestyle="--", zorder=0,
                    label="Pareto front (means)")
        ax.set_xlabel("FLOPs per graph, fraction of dense (counted)" if measure == "flops_rel"
                      else "speed-up over dense, timed in the run's own process (x)")
        ax.set_ylabel(f"Δ test {run.metric} vs dense")
        ax.set_title(f"{run.dataset}: paired Δ test vs {'FLOPs' if measure == 'flops_rel' else 'speed-up'} "
                     "(bars: 95 % CI)")
        ax.grid(alpha=0.3)
        ax.legend(**OUTSIDE)
        return _save(fig, path)


def ratio_plot(groups: list[Group], colour: dict[str, str], path: Path) -> Path | None:
    """Δ test against the ratio removed, one panel per single-dimension kind; dense is ratio 0, Δ 0."""
    dims = [d for d in dimension_names() if any(g.kind == d for g in compared(groups))]
    if not dims:
        return None
    run = groups[0].runs[0]
    columns = min(3, len(dims))
    rows = -(-len(dims) // columns)
    with matplotlib.rc_context(FONT):
        fig = Figure(figsize=(max(6.0, 4.3 * columns), 0.4 + 4.0 * rows), layout="constrained")
        grid = fig.subplots(rows, columns, squeeze=False, sharey=True)
        axes = [ax for line in grid for ax in line]
        for ax in axes[len(dims):]:
            ax.set_visible(False)
        for ax, dim in zip(axes, dims):
            for model in sorted({g.model for g in compared(groups) if g.kind == dim}):
                members = sorted((g for g in compared(groups) if g.kind == dim and g.model == model),
                                 key=lambda g: g.runs[0].prune[dim])
                xs = [0.0] + [g.runs[0].prune[dim] for g in members]
                ests = [g.paired.estimate("test_diff") for g in members]
                ax.plot(xs, [0.0] + [e.mean for e in ests], color="0.6", zorder=0)
                for g, x, e in zip(members, xs[1:], ests):
                    ax.errorbar([x], [e.mean], yerr=[e.half_width()], fmt="o", markersize=8, capsize=4,
                                color=colour[g.name])
                    ax.annotate(f"n={e.n}", (x, e.mean), textcoords="offset points", xytext=(7, 7))
            ax.plot([0.0], [0.0], marker="*", markersize=14, color=DENSE, linestyle="")
            ax.axhline(0.0, color=DENSE, linewidth=1.0)
            ax.margins(x=0.12)
            ax.set_title(f"{kind_label(dim)} pruning")
            ax.set_xlabel("ratio removed (0 = dense)")
            ax.grid(alpha=0.3)
        for line in grid:
            line[0].set_ylabel(f"Δ test {run.metric} vs dense")
        fig.suptitle(f"{run.dataset}: paired Δ test vs ratio removed (bars: 95 % CI, ★ dense)")
        return _save(fig, path)


def _better(run) -> str:
    return "right of 0 is better" if run.higher_is_better else "left of 0 is better"


def _save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, dpi=100, bbox_inches="tight")
    return path
