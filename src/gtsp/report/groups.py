"""Repeats of one experiment, summarised, and compared with their dense reference.

For each (dataset, backbone, setting): the test metric, parameters, FLOPs, throughput and
speed-up as mean ± sample standard deviation over its runs, and against the dense
reference (same backbone, dataset and setting, unpruned, with attention):

- test metric: the difference to the dense run of the same seed/fold, then mean ± std of
  those paired differences (only seeds/folds both have count);
- parameters and FLOPs: a pruned run divides by the dense numbers in its own
  ``results.json`` (same architecture, same test graphs); the attention-free baseline,
  another architecture, by the mean of its dense reference;
- speed-up: a pruned run's ``speedup.measured`` (dense and compacted timed in the same
  process); for the baseline, its throughput over the dense run's of the same seed/fold
  (timed in different processes, so marked as such); dense itself is the 1.0x reference.
"""
from __future__ import annotations

import json
import statistics
from collections import defaultdict
from dataclasses import dataclass, field

from gtsp.report.collect import Run, dimension_names



def kind_order() -> tuple[str, ...]:
    """The order of run kinds in tables and legends."""
    return ("dense", "baseline", *dimension_names(), "joint", "budget")


@dataclass(frozen=True)
class Stat:
    """Mean and sample standard deviation (None for a single value) of ``n`` values."""

    mean: float
    std: float | None
    n: int

    @classmethod
    def of(cls, values: list[float]) -> "Stat | None":
        if not values:
            return None
        return cls(statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None, len(values))


@dataclass
class Group:
    """The runs of one setting and what the report says about them."""

    dataset: str
    model: str
    setting: str
    runs: list[Run]
    label: str = ""
    reference: "Group | None" = field(default=None, repr=False)

    @property
    def kind(self) -> str:
        return self.runs[0].kind

    def stat(self, attr: str) -> Stat:
        return Stat.of([getattr(r, attr) for r in self.runs])

    def latency_ms(self) -> Stat:
        """Milliseconds per graph: the inverse of the measured throughput."""
        return Stat.of([1000.0 / r.graphs_per_s for r in self.runs])

    def delta(self) -> Stat | None:
        """Test metric minus the dense reference's, paired by seed/fold."""
        return self._paired(lambda run, ref: run.test - ref.test)

    def relative(self, attr: str) -> Stat | None:
        """Parameters (``params``) or FLOPs (``flops``) as a fraction of dense."""
        if self.kind == "dense":
            return Stat.of([1.0] * len(self.runs))
        if self.kind != "baseline":
            return Stat.of([getattr(r, attr) / getattr(r, attr + "_dense") for r in self.runs])
        if self.reference is None:
            return None
        dense = self.reference.stat(attr).mean
        return Stat.of([getattr(r, attr) / dense for r in self.runs])

    def speedup(self) -> tuple[Stat | None, str]:
        """The speed-up over dense and how it was measured."""
        if self.kind == "dense":
            return Stat.of([1.0] * len(self.runs)), "reference"
        if self.kind != "baseline":
            return Stat.of([r.speedup for r in self.runs if r.speedup is not None]), "same process"
        return self._paired(lambda run, ref: run.graphs_per_s / ref.graphs_per_s), "across runs"

    def _paired(self, compare) -> Stat | None:
        if self.reference is None or self.reference is self:
            return None
        refs = defaultdict(list)
        for ref in self.reference.runs:
            refs[ref.pair].append(ref)
        return Stat.of([statistics.fmean(compare(run, ref) for ref in refs[run.pair])
                        for run in self.runs if run.pair in refs])

    def pairs(self) -> int:
        """How many of its runs have a dense run of the same seed/fold."""
        if self.reference is None or self.reference is self:
            return 0
        ref_pairs = {r.pair for r in self.reference.runs}
        return sum(r.pair in ref_pairs for r in self.runs)


def group_runs(runs: list[Run]) -> dict[str, list[Group]]:
    """Groups per dataset, each labelled and linked to its dense reference, in table order."""
    by_key: dict[tuple[str, str, str], list[Run]] = defaultdict(list)
    for run in runs:
        by_key[(run.dataset, run.model, run.setting)].append(run)
    groups = {key: Group(*key, sorted(rs, key=lambda r: r.pair)) for key, rs in by_key.items()}
    for (dataset, model, _), group in groups.items():
        group.reference = groups.get((dataset, model, group.runs[0].dense_setting))
    per_dataset: dict[str, list[Group]] = defaultdict(list)
    for group in groups.values():
        per_dataset[group.dataset].append(group)
    for dataset_groups in per_dataset.values():
        _label(dataset_groups)
        dataset_groups.sort(key=lambda g: (g.model, kind_order().index(g.kind), g.label))
    return dict(sorted(per_dataset.items()))


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
        asked = ", ".join(f"{k}={v}" for k, v in budget.items() if k in ("flops", "latency"))
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
