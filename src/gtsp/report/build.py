"""Build a report folder from the runs under a root: ``report.md``, ``report.json``,
``report.html`` and the PNG figures they show."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from gtsp.errors import GtspError
from gtsp.report.collect import Run, collect
from gtsp.report.curves import curves_plot
from gtsp.report.groups import Group, group_runs
from gtsp.report.html import Section, render_page
from gtsp.report.output import prepare, safe
from gtsp.report.plots import colours, cost_plot, effects_plot, ratio_plot
from gtsp.report.tables import dataset_table, group_numbers, unpaired_table, window_notes

NOTES = [
    "paired unit: a run and the dense run of the same dataset, backbone, fold and seed (dense = same "
    "configuration unpruned, with attention); every comparison with dense is a mean over paired units",
    "Δ test: test metric minus the dense partner's; mean ± sample std [t-based 95 % CI] (n = paired units); "
    "runs without a dense partner are listed apart and averaged into nothing",
    "same epoch window: pruned runs select their model among the epochs after their schedule ends, dense among "
    "all; this column re-selects the dense partner's epoch (best validation, the trainer's tie rule) among the "
    "pruned run's selectable epochs, from its metrics.jsonl",
    "params, FLOPs: the deployed (compacted) model's nonzero parameters and counted FLOPs per graph over the "
    "dense partner's; structural FLOPs = what the compacted model computes under weight masks",
    "speed-up: dense and compacted timed interleaved in the pruned run's own process; absolute latencies of "
    "different runs are never compared, and the attention-free baseline, never timed beside dense, has none",
    "test, all runs: mean ± std over every run of the setting (paired or not), a description only; "
    "† = a budget run that missed its budget",
]


@dataclass(frozen=True)
class Report:
    """Where the report went and what it covered."""

    out: Path
    runs: int
    groups: int
    figures: list[Path]
    warnings: list[str]


def build_report(root: str | Path, out: str | Path, overwrite: bool = False) -> Report:
    """Read every ``results.json`` under ``root`` and write the report into ``out``.

    An ``out`` that already holds files is refused unless ``overwrite``; then only the files a
    report writes are replaced.
    """
    runs, warnings = collect(root)
    per_dataset, group_warnings = group_runs(runs)
    out = Path(out)
    prepare(out, overwrite)
    palette = colours([g for groups in per_dataset.values() for g in groups])
    sections, markdown, figures = [], [f"# gtsp report: {root}", ""] + [f"- {n}" for n in NOTES], []
    try:
        for dataset, groups in per_dataset.items():
            pngs = _figures(dataset, groups, palette, out)
            figures += [png for _, png in pngs]
            tables = [dataset_table(groups)] + [t for t in [unpaired_table(groups)] if t is not None]
            notes = window_notes(groups)
            sections.append(Section(f"{dataset} ({groups[0].runs[0].metric})", tables, notes, pngs))
            markdown += ["", f"## {dataset}", "", tables[0].markdown(), ""] + [f"- {n}" for n in notes]
            if len(tables) > 1:
                markdown += ["", "Runs without a dense partner (listed, not averaged in):", "", tables[1].markdown()]
            markdown += [""] + [f"![{caption}]({png.name})" for caption, png in pngs]
        (out / "report.md").write_text("\n".join(markdown) + "\n")
        (out / "report.html").write_text(render_page(f"gtsp report: {root}", NOTES, sections))
        numbers = {"root": str(root), "fields": FIELDS,
                   "datasets": {d: [group_numbers(g) for g in gs] for d, gs in per_dataset.items()},
                   "runs": [_run_numbers(r) for r in runs], "skipped": warnings + group_warnings}
        (out / "report.json").write_text(json.dumps(numbers, indent=1) + "\n")
    except OSError as err:
        raise GtspError(f"cannot write the report into {out}: {err.strerror}; free space or choose another "
                        "--out") from None
    return Report(out, len(runs), sum(len(g) for g in per_dataset.values()), figures, warnings + group_warnings)


FIELDS = {
    "datasets": "dataset -> list of settings, in table order",
    "setting.test": "mean, std, n over every run of the setting (not a comparison)",
    "setting.paired": "null for the dense reference; else n (paired units), units (one per run with a dense "
                      "partner: seed, folds, fold, run, dense_run, test, dense_test and the measures below) and "
                      "one {mean, std, n, ci95: [low, high]} per measure over the units that have it",
    "measures": "test_diff = test - dense_test; params_rel, flops_rel, flops_structural_rel = run / dense partner; "
                "speedup = the run's speedup.measured (null for the attention-free baseline); "
                "test_diff_window = test - dense_window_test, the dense partner's test at the epoch selected "
                "among epochs >= selectable_from",
    "ci95": "mean -/+ scipy.stats.t.ppf(0.975, n - 1) * std / sqrt(n); std is the sample std (ddof 1); null for n = 1",
    "setting.unpaired": "runs averaged into nothing, with the reason",
    "setting.missed_budget": "budget runs whose results.json says within_budget: false",
}


def _figures(dataset: str, groups: list[Group], palette: dict[str, str], out: Path) -> list[tuple[str, Path]]:
    name = safe(dataset)
    made = [(f"{dataset}: paired difference to dense per setting, over all dense epochs and over the "
             "pruned run's epoch window", effects_plot(groups, palette, out / f"effects-{name}.png")),
            (f"{dataset}: paired difference against FLOPs relative to dense",
             cost_plot(groups, palette, "flops_rel", out / f"cost-flops-{name}.png")),
            (f"{dataset}: paired difference against the speed-up each run timed in one process (the "
             "attention-free baseline has none)",
             cost_plot(groups, palette, "speedup", out / f"cost-speedup-{name}.png")),
            (f"{dataset}: paired difference against the ratio removed",
             ratio_plot(groups, palette, out / f"ratio-{name}.png"))]
    for model in sorted({g.model for g in groups}):
        made.append((f"{dataset}, {model}: training curves",
                     curves_plot([g for g in groups if g.model == model], palette,
                                 out / f"curves-{name}-{safe(model)}.png")))
    return [(caption, png) for caption, png in made if png is not None]


def _run_numbers(run: Run) -> dict:
    return {"path": str(run.path), "dataset": run.dataset, "model": run.model, "kind": run.kind,
            "seed": run.pair[0], "folds": run.pair[1], "fold": run.pair[2], "prune": run.prune,
            "test": run.test, "val": run.val, "params": run.params, "flops": run.flops,
            "flops_structural": run.flops_structural, "speedup": run.speedup, "budget_miss": run.budget_miss}
