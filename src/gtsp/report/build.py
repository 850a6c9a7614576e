"""Build a report folder from the runs under a root: ``report.md``, ``report.json``,
``report.html`` and the PNG figures they show."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from gtsp.report.collect import Run, collect
from gtsp.report.groups import Group, group_runs
from gtsp.report.html import Section, render_page
from gtsp.report.plots import curves_plot, pareto_plot, ratio_plot, safe
from gtsp.report.tables import dataset_table, group_numbers

NOTES = [
    "test metric: mean ± sample std over the runs of a setting (seeds/folds), at the epoch selected on validation",
    "vs dense (paired): test metric minus the dense run's of the same seed/fold; mean ± std of those "
    "differences, n = pairs",
    "params: nonzero parameters of the deployed model (the compacted one when pruned); (x) = fraction of dense",
    "FLOPs/graph: counted per graph at real sizes, density-weighted under weight masks; structural = what the "
    "compacted model computes",
    "speed-up: pruned runs time dense and compacted in the same process; the attention-free baseline is compared "
    "with the dense run's throughput across runs",
]


@dataclass(frozen=True)
class Report:
    """Where the report went and what it covered."""

    out: Path
    runs: int
    groups: int
    figures: list[Path]
    warnings: list[str]


def build_report(root: str | Path, out: str | Path) -> Report:
    """Read every ``results.json`` under ``root`` and write the report into ``out``."""
    runs, warnings = collect(root)
    per_dataset = group_runs(runs)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sections, markdown, figures = [], [f"# gtsp report: {root}", ""] + [f"- {n}" for n in NOTES], []
    for dataset, groups in per_dataset.items():
        table = dataset_table(groups)
        pngs = _figures(dataset, groups, out)
        figures += [png for _, png in pngs]
        sections.append(Section(f"{dataset} ({groups[0].runs[0].metric})", table.html(), pngs))
        markdown += ["", f"## {dataset}", "", table.markdown(), ""]
        markdown += [f"![{caption}]({png.name})" for caption, png in pngs]
    (out / "report.md").write_text("\n".join(markdown) + "\n")
    (out / "report.html").write_text(render_page(f"gtsp report: {root}", NOTES, sections))
    numbers = {"root": str(root), "datasets": {d: [group_numbers(g) for g in gs] for d, gs in per_dataset.items()},
               "runs": [_run_numbers(r) for r in runs], "skipped": warnings}
    (out / "report.json").write_text(json.dumps(numbers, indent=1) + "\n")
    return Report(out, len(runs), sum(len(g) for g in per_dataset.values()), figures, warnings)


def _figures(dataset: str, groups: list[Group], out: Path) -> list[tuple[str, Path]]:
    name = safe(dataset)
    figures = [(f"{dataset}: test metric vs counted FLOPs per graph (Pareto front dashed)",
                pareto_plot(groups, "flops", out / f"pareto-flops-{name}.png")),
               (f"{dataset}: test metric vs measured latency per graph (Pareto front dashed)",
                pareto_plot(groups, "latency", out / f"pareto-latency-{name}.png"))]
    ratio = ratio_plot(groups, out / f"ratio-{name}.png")
    if ratio is not None:
        figures.append((f"{dataset}: test metric vs sparsity ratio per dimension", ratio))
    for model in sorted({g.model for g in groups}):
        curves = curves_plot([g for g in groups if g.model == model], out / f"curves-{name}-{safe(model)}.png")
        if curves is not None:
            figures.append((f"{dataset}, {model}: training curves", curves))
    return figures


def _run_numbers(run: Run) -> dict:
    return {"path": str(run.path), "dataset": run.dataset, "model": run.model, "kind": run.kind,
            "seed": run.pair[0], "folds": run.pair[1], "fold": run.pair[2], "prune": run.prune,
            "test": run.test, "val": run.val, "params": run.params, "flops": run.flops,
            "flops_structural": run.flops_structural, "graphs_per_s": run.graphs_per_s, "speedup": run.speedup}
