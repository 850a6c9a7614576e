"""One table per dataset: every setting of every backbone against its dense reference.

The same rows render as Markdown (``report.md``) and HTML (``report.html``); the numbers
behind them go to ``report.json`` through :func:`group_numbers`.
"""
from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

from gtsp.report.groups import Group, Stat


@dataclass(frozen=True)
class Table:
    headers: list[str]
    rows: list[list[str]]

    def markdown(self) -> str:
        def line(cells: list[str]) -> str:
            return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

        return "\n".join([line(self.headers), "|" + "---|" * len(self.headers)] + [line(r) for r in self.rows])

    def html(self) -> str:
        head = "".join(f"<th>{html.escape(h)}</th>" for h in self.headers)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in self.rows)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def dataset_table(groups: list[Group]) -> Table:
    """The table of one dataset's groups; structural FLOPs get a column only where they differ."""
    metric = groups[0].runs[0].metric
    structural = any(abs(r.flops_structural - r.flops) > 1e-6 * max(1.0, r.flops) for g in groups for r in g.runs)
    headers = ["backbone", "setting", "runs", f"test {metric}", "vs dense (paired)", "params", "FLOPs/graph"]
    headers += ["structural FLOPs/graph"] if structural else []
    headers += ["ms/graph", "speed-up"]
    rows = []
    for g in groups:
        row = [g.model, g.label, str(len(g.runs)), _pm(g.stat("test"), ".4f"), _delta(g),
               _with_rel(g.stat("params").mean, g.relative("params"), ",.0f"),
               _with_rel(g.stat("flops").mean, g.relative("flops"), "flops")]
        if structural:
            row.append(_flops(g.stat("flops_structural").mean))
        row += [_pm(g.latency_ms(), ".3f"), _speedup(g)]
        rows.append(row)
    return Table(headers, rows)


def group_numbers(group: Group) -> dict[str, Any]:
    """Everything the table shows for ``group``, as plain numbers (for ``report.json``)."""
    speedup, source = group.speedup()
    return {
        "dataset": group.dataset, "model": group.model, "setting": group.label, "kind": group.kind,
        "runs": [str(r.path) for r in group.runs], "pairs": [list(r.pair) for r in group.runs],
        "metric": group.runs[0].metric, "test": _num(group.stat("test")), "val": _num(group.stat("val")),
        "delta_vs_dense": _num(group.delta()), "paired_runs": group.pairs(),
        "params": _num(group.stat("params")), "params_rel": _num(group.relative("params")),
        "flops": _num(group.stat("flops")), "flops_rel": _num(group.relative("flops")),
        "flops_structural": _num(group.stat("flops_structural")),
        "graphs_per_s": _num(group.stat("graphs_per_s")), "latency_ms": _num(group.latency_ms()),
        "speedup": _num(speedup), "speedup_measured": source,
        "dense_reference": group.reference.label if group.reference is not None else None,
    }


def _num(stat: Stat | None) -> dict[str, Any] | None:
    return None if stat is None else {"mean": stat.mean, "std": stat.std, "n": stat.n}


def _pm(stat: Stat | None, fmt: str) -> str:
    if stat is None:
        return "—"
    return f"{stat.mean:{fmt}}" + (f" ± {stat.std:{fmt}}" if stat.std is not None else "")


def _delta(group: Group) -> str:
    if group.kind == "dense":
        return "reference"
    stat = group.delta()
    if stat is None:
        return "— (no dense run of these seeds)"
    spread = f" ± {stat.std:.4f}" if stat.std is not None else ""
    return f"{stat.mean:+.4f}{spread} (n={stat.n})"


def _with_rel(value: float, rel: Stat | None, fmt: str) -> str:
    text = _flops(value) if fmt == "flops" else f"{value:{fmt}}"
    return text + (f" ({rel.mean:.2f}x)" if rel is not None else "")


def _flops(value: float) -> str:
    return f"{value / 1e6:.3f} M" if value < 1e9 else f"{value / 1e9:.3f} G"


def _speedup(group: Group) -> str:
    stat, source = group.speedup()
    if source == "reference":
        return "1.00x (reference)"
    if stat is None:
        return "—"
    spread = f" ± {stat.std:.2f}" if stat.std is not None else ""
    return f"{stat.mean:.2f}x{spread}" + (" (across runs)" if source == "across runs" else "")
