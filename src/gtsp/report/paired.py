"""Paired comparisons: each run against the dense run of the same dataset, backbone, fold and seed.

A *paired unit* is one run of a setting and its *dense partner*: the run of the dense reference
setting (same configuration, unpruned, with attention) with the same seed, number of folds and
fold. Every comparison with dense is a mean over paired units, never a mean over one setting's
runs against a mean over dense's (which may cover other folds). Per unit:

- ``test_diff``: test metric minus the partner's (``metric.test`` of both ``results.json``);
- ``params_rel``, ``flops_rel``, ``flops_structural_rel``: the run's deployed parameters and FLOPs
  per graph over the partner's (the partner's ``params.nonzero``, ``flops_per_graph.dense``);
- ``speedup``: the run's ``speedup.measured``, dense and compacted timed interleaved in that run's
  own process (None for the attention-free baseline: never timed in one process with dense);
- ``test_diff_window``: test metric minus the partner's test at the epoch the trainer would have
  chosen among the run's own selectable epochs (:mod:`gtsp.report.selection`).

Runs without a partner, or that share their unit with another run of the setting, are listed
apart with the reason and never enter a mean.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gtsp.report.collect import Run
from gtsp.report.estimate import Estimate
from gtsp.report.selection import first_selectable, read_log, select

MEASURES = ("test_diff", "params_rel", "flops_rel", "flops_structural_rel", "speedup", "test_diff_window")


@dataclass(frozen=True)
class Unit:
    """One run and its dense partner, with everything compared."""

    run: Run
    dense: Run
    selectable_from: int | None      # the run's first selectable epoch (None: no metrics.jsonl)
    dense_window: dict[str, Any] | None  # the partner's record selected from that epoch on

    @property
    def test_diff(self) -> float:
        return self.run.test - self.dense.test

    @property
    def params_rel(self) -> float:
        return self.run.params / self.dense.params

    @property
    def flops_rel(self) -> float:
        return self.run.flops / self.dense.flops

    @property
    def flops_structural_rel(self) -> float:
        return self.run.flops_structural / self.dense.flops

    @property
    def speedup(self) -> float | None:
        return self.run.speedup

    @property
    def test_diff_window(self) -> float | None:
        return None if self.dense_window is None else self.run.test - float(self.dense_window["test"])

    def numbers(self) -> dict[str, Any]:
        """The unit as plain numbers for ``report.json``."""
        seed, folds, fold = self.run.pair
        window = self.dense_window
        return {"seed": seed, "folds": folds, "fold": fold, "run": str(self.run.path),
                "dense_run": str(self.dense.path), "test": self.run.test, "dense_test": self.dense.test,
                **{m: getattr(self, m) for m in MEASURES}, "selectable_from": self.selectable_from,
                "dense_window_epoch": window["epoch"] if window else None,
                "dense_window_test": float(window["test"]) if window else None}


@dataclass(frozen=True)
class Unpaired:
    """A run left out of every mean, and why."""

    run: Run
    reason: str

    def numbers(self) -> dict[str, Any]:
        seed, folds, fold = self.run.pair
        return {"run": str(self.run.path), "seed": seed, "folds": folds, "fold": fold, "test": self.run.test,
                "reason": self.reason}


@dataclass(frozen=True)
class Paired:
    """A setting's paired units, the runs left apart, and the estimate of each measure."""

    units: list[Unit]
    unpaired: list[Unpaired]

    def estimate(self, measure: str) -> Estimate | None:
        """Mean, std and 95 % CI of ``measure`` over the units that have it."""
        values = [getattr(u, measure) for u in self.units]
        return Estimate.of([v for v in values if v is not None])

    def windows(self) -> list[int]:
        """The distinct first selectable epochs of the units' runs."""
        return sorted({u.selectable_from for u in self.units if u.selectable_from is not None})

    def numbers(self) -> dict[str, Any]:
        """``n``, ``units`` and one estimate per measure (null when no unit has it)."""
        estimates = {m: self.estimate(m) for m in MEASURES}
        return {"n": len(self.units), "units": [u.numbers() for u in self.units],
                **{m: e.numbers() if e is not None else None for m, e in estimates.items()}}


def pair(runs: list[Run], dense: list[Run] | None) -> Paired:
    """Pair each of ``runs`` with the run of ``dense`` (the reference setting's runs) of its seed/fold."""
    partners: dict[tuple[int, int, int], Run] = {}
    for ref in sorted(dense or [], key=lambda r: str(r.path)):
        partners.setdefault(ref.pair, ref)
    units, unpaired, seen = [], [], set()
    for run in sorted(runs, key=lambda r: (r.pair, str(r.path))):
        if dense is None:
            unpaired.append(Unpaired(run, "no dense run of this setting under the report's folder"))
        elif run.pair in seen:
            unpaired.append(Unpaired(run, "another run of this setting has the same seed and fold"))
        elif run.pair not in partners:
            unpaired.append(Unpaired(run, "no dense run of this seed and fold"))
        else:
            units.append(_unit(run, partners[run.pair]))
        seen.add(run.pair)
    return Paired(units, unpaired)


def _unit(run: Run, dense: Run) -> Unit:
    start = first_selectable(read_log(run.path))
    window = select(read_log(dense.path), start, run.higher_is_better) if start is not None else None
    return Unit(run, dense, start, window)
