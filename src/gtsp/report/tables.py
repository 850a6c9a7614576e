"""The report's tables (Markdown and HTML) and the numbers behind them (``report.json``).

One row per setting. The comparison columns are paired (:mod:`gtsp.report.paired`):
mean ± std and the t-based 95 % interval of the per-unit differences or ratios, over the
``n`` units that have a dense partner. Absolute latencies never appear: runs timed in
different processes (different load) are not comparable, only each run's own speed-up is.
Runs without a dense partner get a table of their own; a missed budget gets a marker.
"""
from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

from gtsp.report.estimate import Estimate
from gtsp.report.groups import Group
from gtsp.report.paired import MEASURES

MISSED = "†"


@dataclass(frozen=True)
class Table:
    """Headers, rows and lines printed under the table."""

    headers: list[str]
    rows: list[list[str]]
    footnotes: list[str]

    def markdown(self) -> str:
        def line(cells: list[str]) -> str:
            return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

        table = [line(self.headers), "|" + "---|" * len(self.headers)] + [line(r) for r in self.rows]
        return "\n".join(table + ([""] + [f"- {f}" for f in self.footnotes] if self.footnotes else []))

    def html(self) -> str:
        head = "".join(f"<th>{html.escape(h)}</th>" for h in self.headers)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in self.rows)
        notes = "".join(f"<li>{html.escape(f)}</li>" for f in self.footnotes)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>" + \
            (f"<ul class='notes'>{notes}</ul>" if notes else "")


def dataset_table(groups: list[Group]) -> Table:
    """The paired comparison of one dataset's settings; structural FLOPs only where weight masks make them differ.

    Differences read ``mean ± std [95 % CI]``, ratios ``mean [95 % CI]``, over the row's paired units
    (an ``n=`` says where a column covers fewer)."""
    metric = groups[0].runs[0].metric
    structural = any(abs(r.flops_structural - r.flops) > 1e-6 * max(1.0, r.flops) for g in groups for r in g.runs)
    headers = ["backbone", "setting", "runs (paired)", f"test {metric}, all runs", f"Δ test {metric} vs dense",
               "Δ vs dense, same epoch window", "params vs dense", "FLOPs vs dense"]
    headers += ["structural FLOPs vs dense"] if structural else []
    headers += ["speed-up (one process)"]
    rows, footnotes = [], []
    for g in groups:
        missed = g.missed_budgets()
        footnotes += [f"{MISSED} {g.label}: {r.path.name}: {text}" for r, text in missed]
        label = g.label + (f" {MISSED}" if missed else "")
        row = [g.model, label, _count(g), _pm(g.stat("test"), ".4f")]
        if g.paired is None:
            rows.append(row + ["reference"] * 2 + ["1.00x"] * (2 + structural) + ["1.00x (reference)"])
            continue
        est, n = {m: g.paired.estimate(m) for m in MEASURES}, len(g.paired.units)
        window = g.paired.windows()
        row += [_ci(est["test_diff"], "+.4f", n=n), _ci(est["test_diff_window"], "+.4f", n=n) + _epochs(window, est)]
        row += [_ci(est[m], ".2f", "x", n) for m in ("params_rel", "flops_rel")]
        row += [_ci(est["flops_structural_rel"], ".2f", "x", n)] if structural else []
        timed = est["speedup"] is not None or not g.paired.units
        row.append(_ci(est["speedup"], ".2f", "x", n) if timed else "not timed with dense in one process")
        rows.append(row)
    return Table(headers, rows, footnotes)


def unpaired_table(groups: list[Group]) -> Table | None:
    """The runs that no mean includes, and why; None when every run is paired."""
    rows = [[g.model, g.label, u.run.path.name, f"{u.run.pair[0]}", f"{u.run.pair[2]}/{u.run.pair[1]}",
             f"{u.run.test:.4f}" + (f" {MISSED}" if u.run.budget_miss else ""), u.reason]
            for g in groups if g.paired is not None for u in g.paired.unpaired]
    if not rows:
        return None
    return Table(["backbone", "setting", "run", "seed", "fold/folds", "test", "why not compared"], rows, [])


def window_notes(groups: list[Group]) -> list[str]:
    """What the same-window comparison could not cover (no metrics.jsonl), stated as an asymmetry."""
    notes = []
    for g in groups:
        if g.paired is None or not g.paired.units:
            continue
        missing = sum(u.test_diff_window is None for u in g.paired.units)
        if missing:
            notes.append(f"{g.name}: for {missing} of {len(g.paired.units)} paired units the epoch window could "
                         "not be recovered (metrics.jsonl missing or empty): there the pruned run selected among "
                         "its post-schedule epochs while dense selected among all epochs")
    return notes


def group_numbers(group: Group) -> dict[str, Any]:
    """One setting in ``report.json``: its runs, description, paired comparison, unpaired runs, missed budgets."""
    paired = group.paired
    test = group.stat("test")
    return {
        "dataset": group.dataset, "model": group.model, "setting": group.label, "kind": group.kind,
        "metric": group.runs[0].metric, "higher_is_better": group.runs[0].higher_is_better,
        "runs": [str(r.path) for r in group.runs], "test": test.numbers() if test else None,
        "dense_reference": group.reference.label if group.reference is not None else None,
        "paired": paired.numbers() if paired is not None else None,
        "unpaired": [u.numbers() for u in paired.unpaired] if paired is not None else [],
        "missed_budget": [{"run": str(r.path), "note": text} for r, text in group.missed_budgets()],
    }


def _count(group: Group) -> str:
    if group.paired is None:
        return str(len(group.runs))
    return f"{len(group.runs)} ({len(group.paired.units)})"


def _pm(est: Estimate | None, fmt: str) -> str:
    if est is None:
        return "—"
    return f"{est.mean:{fmt}}" + (f" ± {est.std:{fmt}}" if est.std is not None else "")


def _ci(est: Estimate | None, fmt: str, unit: str = "", n: int | None = None) -> str:
    """``mean ± std [low, high]`` (ratios: ``mean [low, high]``), ``(n=..)`` where it is not the row's."""
    if est is None:
        return "— (no paired unit)"
    mean = est.mean if abs(est.mean) > 1e-6 else 0.0  # float32 metrics: no "-0.0000" for a zero mean
    count = "" if est.n == n else f" (n={est.n})"
    if est.ci95 is None:
        return f"{mean:{fmt}}{unit}{count}, no interval"
    low, high = est.ci95
    spread = "" if unit else f" ± {est.std:{fmt.lstrip('+')}}"
    return f"{mean:{fmt}}{unit}{spread} [{low:{fmt}}, {high:{fmt}}]{count}"


def _epochs(window: list[int], est: dict[str, Estimate | None]) -> str:
    if not window or est["test_diff_window"] is None:
        return ""
    if window == [1]:
        return ", all epochs"
    span = f"{window[0]}" if len(window) == 1 else f"{window[0]}-{window[-1]}"
    return f", epochs ≥ {span}"
