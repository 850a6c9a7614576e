"""Repeats of one experiment, grouped and linked to their dense reference.

For each (dataset, backbone, setting) a :class:`Group` holds its runs and, unless it is the
dense reference itself, its :class:`gtsp.report.paired.Paired` comparison with the dense
reference (same backbone, dataset and setting, unpruned, with attention): every number that
compares a setting with dense comes from paired units (:mod:`gtsp.report.paired`).
"""
from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field

from gtsp.report.collect import Run, dimension_names
from gtsp.report.estimate import Estimate
from gtsp.report.paired import Paired, pair


def kind_order() -> tuple[str, ...]:
    """The order of run kinds in tables and legends."""
    return ("dense", "baseline", *dimension_names(), "joint", "budget")


@dataclass
class Group:
    """The runs of one setting and their paired comparison with dense (None for dense itself)."""

    dataset: str
    model: str
    setting: str
    runs: list[Run]
    label: str = ""
    reference: "Group | None" = field(default=None, repr=False)
    paired: Paired | None = field(default=None, repr=False)

    @property
    def kind(self) -> str:
        return self.runs[0].kind

    @property
    def name(self) -> str:
        """Backbone and setting, as plots and colours name it."""
        return f"{self.model}: {self.label}"

    def stat(self, attr: str) -> Estimate | None:
        """``attr`` of every run of the setting (paired or not): a description, not a comparison."""
        return Estimate.of([getattr(r, attr) for r in self.runs])

    def missed_budgets(self) -> list[tuple[Run, str]]:
        """Budget runs whose results say the budget was missed, with what was asked and got."""
        return [(r, r.budget_miss) for r in self.runs if r.budget_miss]


def group_runs(runs: list[Run]) -> tuple[dict[str, list[Group]], list[str]]:
    """Groups per dataset, labelled, paired with their dense reference, in table order; and warnings."""
    by_key: dict[tuple[str, str, str], list[Run]] = defaultdict(list)
    for run in runs:
        by_key[(run.dataset, run.model, run.setting)].append(run)
    groups = {key: Group(*key, sorted(rs, key=lambda r: (r.pair, str(r.path)))) for key, rs in by_key.items()}
    warnings = []
    for (dataset, model, setting), group in groups.items():
        reference = groups.get((dataset, model, group.runs[0].dense_setting))
        pairs = [r.pair for r in group.runs]
        if len(set(pairs)) < len(pairs):
            warnings.append(f"{dataset} {model}: several runs of one setting share a seed and fold "
                            f"({', '.join(str(r.path) for r in group.runs if pairs.count(r.pair) > 1)}); "
                            "the first by folder name is the one compared")
        if reference is not group:
            group.reference = reference
            group.paired = pair(group.runs, reference.runs if reference is not None else None)
    per_dataset: dict[str, list[Group]] = defaultdict(list)
    for group in groups.values():
        per_dataset[group.dataset].append(group)
    for dataset_groups in per_dataset.values():
        _label(dataset_groups)
        dataset_groups.sort(key=lambda g: (g.model, kind_order().index(g.kind), g.label))
    return dict(sorted(per_dataset.items())), warnings


def _label(groups: list[Group]) -> None:
    """Name each group by what it prunes, plus the settings that differ between groups of one backbone."""
    by_model: dict[str, list[Group]] = defaultdict(list)
    for g in groups:
        by_model[g.model].append(g)
    for siblings in by_model.values():
        flat = [_flat_setting(g) for g in siblings]
        varying = sorted(k for k in set().union(*flat) if len({json.dumps(f.get(k)) for f in flat}) > 1)
        for g, f in zip(siblings, flat):
            extra = ", ".join(f"{k.split('.')[-1]}={f[k]}" for k in varying if k in f)
            g.label = _prune_label(g.runs[0]) + (f" ({extra})" if extra else "")


def _prune_label(run: Run) -> str:
    if not run.attention:
        return "baseline (no attention)"
    budget = run.config.get("budget") or {}
    if budget:
        asked = ", ".join(f"{k}={v}" for k, v in budget.items() if k in ("flops", "flops_nominal", "latency"))
        return f"budget {asked} (chosen per run)"
    if not run.prune:
        return "dense"
    text = " + ".join(f"{d} {run.prune[d]:g}" for d in dimension_names() if d in run.prune)
    options = [f"{d}.{k}={v}" for d, opts in (run.config.get("prune_args") or {}).items() if d in run.prune
               for k, v in opts.items()]
    return text + (f" [{', '.join(options)}]" if options else "")


def _flat_setting(group: Group) -> dict[str, object]:
    """The setting as flat dotted keys, without what the pruning label already says."""
    setting = json.loads(group.setting)
    for key in ("prune", "prune_args", "budget"):
        setting.pop(key, None)
    setting["model_args"].pop("attention", None)
    flat: dict[str, object] = {}
    for key, value in setting.items():
        if isinstance(value, dict):
            flat.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            flat[key] = value
    return flat
