"""The sweep as an Optuna study: a ``GridSampler`` over point indices on shared storage.

Every attempt at a point is one trial with the parameter ``point`` (its index). A point's
state is read from all its trials and its run folder:

- ``done``: ``results.json`` is in its folder, or a trial is COMPLETE;
- ``failed``: a trial failed with a gtsp error (bad input: rerunning cannot help), or the
  training process crashed more than ``retries`` times;
- ``running``: a trial is RUNNING; ``queued``: a retry waits in the study's queue;
- ``todo``: none of these (never tried, or its last attempt was interrupted or lost).

A RUNNING trial whose worker died is found by its claim (:mod:`gtsp.sweep.claim`): free lock,
yet RUNNING. It is marked FAIL (outcome ``lost``) and the point queued again; Optuna's storages
refuse to finish a trial twice, so two workers doing this at once cannot both succeed.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from gtsp.errors import GtspError
from gtsp.storage import open_storage
from gtsp.sweep.claim import is_claimed
from gtsp.sweep.grid import Point
from gtsp.sweep.journal import damaged_journal
from gtsp.sweep.spec import SweepSpec

PARAM = "point"
JOURNAL_NAME = "sweep.journal"
UNCLAIMED_GRACE_S = 120  # a RUNNING trial that never claimed its point is lost after this long
COUNTED = ("gtsp-error", "crashed")  # failures that count against a point (not interruptions or losses)


@dataclass(frozen=True)
class PointState:
    status: str        # done, failed, running, queued or todo
    detail: str = ""   # the error line of a failed point
    tried: bool = False


def storage_url(spec: SweepSpec, storage: str | None) -> str:
    """``--storage`` as given, or the sweep's own journal file ``OUT/sweep.journal`` (absolute)."""
    return storage or str((spec.out / JOURNAL_NAME).absolute())


def open_sweep(spec: SweepSpec, points: list[Point], url: str) -> "SweepStudy":
    """The sweep's study on ``url``, created on first use; refused when it holds another grid by that name."""
    # quiet: this module reports progress itself, and handles the sampler's "re-evaluating" warning
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    storage = open_storage(url)
    sampler = PointGrid({PARAM: list(range(len(points)))}, seed=0)
    try:
        study = optuna.create_study(study_name=spec.name, storage=storage, sampler=sampler, direction="maximize",
                                    load_if_exists=True)
    except (AssertionError, KeyError, AttributeError) as err:  # the journal's records do not fit together
        raise damaged_journal(url, err) from None
    names = [p.name for p in points]
    stored = study.user_attrs.get("points")
    if stored is None:
        study.set_user_attr("points", names)
    elif stored != names:
        raise GtspError(f"the sweep storage {url} already holds a sweep named {spec.name!r} with other points "
                        f"({len(stored)} vs {len(names)}, e.g. {stored[:2]}): set another name: in the sweep file "
                        "or use another --storage / --out")
    return SweepStudy(study, storage, points, spec.out, spec.retries)


class PointGrid(optuna.samplers.GridSampler):
    """``GridSampler`` without its end-of-trial check, which stops ``optimize`` once the grid is used up.

    The worker runs one trial per ``optimize`` call and decides itself when the sweep is over
    (from the point states); the check also breaks on queued retries, which carry no grid cell
    (Optuna 5.0: ``KeyError: 'grid_id'`` when one unvisited cell is left).
    """

    def __init__(self, search_space, seed: int | None = None) -> None:
        super().__init__(search_space, seed=seed)
        # Optuna shuffles the grid; a sweep runs its points in file order instead, so that a sweep
        # stopped early holds its first points (e.g. whole folds), not a random subset
        self._all_grids.sort()

    def after_trial(self, study, trial, state, values) -> None:
        return None


def point_of(trial: FrozenTrial) -> int | None:
    """The point index of a trial (queued trials hold it as a fixed parameter)."""
    if PARAM in trial.params:
        return int(trial.params[PARAM])
    fixed = trial.system_attrs.get("fixed_params") or {}
    return int(fixed[PARAM]) if PARAM in fixed else None


@dataclass
class SweepStudy:
    """The study, the storage it lives on, and the points its indices stand for."""

    study: optuna.Study
    storage: BaseStorage
    points: list[Point]
    out: Path
    retries: int

    def run_dir(self, index: int) -> Path:
        return self.out / self.points[index].name

    def trials_by_point(self) -> dict[int, list[FrozenTrial]]:
        """Each point's trials since it was last reset (:meth:`reset`)."""
        by_point: dict[int, list[FrozenTrial]] = {p.index: [] for p in self.points}
        reset = self.study.user_attrs.get("reset_at", {})
        for trial in self.study.get_trials(deepcopy=False):
            index = point_of(trial)
            if index in by_point and trial.number >= reset.get(str(index), 0):
                by_point[index].append(trial)
        return by_point

    def reset(self, points: list[Point]) -> None:
        """Forget the trials of ``points`` so far (``--rerun-changed``): they count as never tried."""
        if not points:
            return
        mark = len(self.study.get_trials(deepcopy=False))
        reset = dict(self.study.user_attrs.get("reset_at", {}))
        reset.update({str(p.index): mark for p in points})
        self.study.set_user_attr("reset_at", reset)
        for point in points:  # their grid cells count as visited: they come back through the queue
            self.study.enqueue_trial({PARAM: point.index}, user_attrs={"requeued": True})

    def states(self) -> list[PointState]:
        """The state of every point, from the study's trials and the run folders."""
        forgiven = int(self.study.user_attrs.get("failures_counted_from", 0))
        by_point = self.trials_by_point()
        return [_state(by_point[p.index], self.run_dir(p.index), self.retries, forgiven) for p in self.points]

    def state(self, index: int, ignore: int | None = None) -> PointState:
        """The state of one point, leaving out trial number ``ignore`` (the caller's own)."""
        trials = [t for t in self.trials_by_point()[index] if t.number != ignore]
        forgiven = int(self.study.user_attrs.get("failures_counted_from", 0))
        return _state(trials, self.run_dir(index), self.retries, forgiven)

    def requeue(self, states: list[PointState]) -> None:
        """Queue a new attempt for every point that was tried, is not settled and has none under way.

        Never-tried points are left to the ``GridSampler``; a tried one's grid cell counts as
        visited, so it comes back only through the queue (as ``RetryFailedTrialCallback`` does it).
        """
        for point, state in zip(self.points, states):
            if state.status == "todo" and state.tried:
                self.study.enqueue_trial({PARAM: point.index}, user_attrs={"requeued": True})

    def forgive_failures(self) -> None:
        """``--retry-failed``: failures recorded so far no longer count, so failed points run again."""
        self.study.set_user_attr("failures_counted_from", len(self.study.get_trials(deepcopy=False)))

    def fail_lost_trials(self) -> list[str]:
        """Mark FAIL (outcome ``lost``) every RUNNING trial whose worker is gone; their point names."""
        lost = []
        for trial in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            index = point_of(trial)
            if not _is_lost(trial, None if index is None else self.run_dir(index)):
                continue
            trial_id = self.storage.get_trial_id_from_study_id_trial_number(
                self.storage.get_study_id_from_name(self.study.study_name), trial.number)
            try:
                self.storage.set_trial_user_attr(trial_id, "outcome", "lost")
                self.storage.set_trial_state_values(trial_id, TrialState.FAIL)
            except optuna.exceptions.UpdateFinishedTrialError:
                continue  # it finished meanwhile, or another worker got there first
            lost.append(self.points[index].name if index is not None else f"trial {trial.number}")
        return lost


def _state(trials: list[FrozenTrial], run_dir: Path, retries: int, forgiven: int) -> PointState:
    states = {t.state for t in trials}
    if (run_dir / "results.json").is_file() or TrialState.COMPLETE in states:
        return PointState("done", tried=True)
    if TrialState.RUNNING in states:
        return PointState("running", tried=True)
    failures = [t for t in trials if t.state == TrialState.FAIL and t.number >= forgiven
                and t.user_attrs.get("outcome") in COUNTED]
    errors = [t for t in failures if t.user_attrs["outcome"] == "gtsp-error"]
    if errors or len(failures) > retries:
        return PointState("failed", (errors or failures)[-1].user_attrs.get("error", ""), tried=True)
    if TrialState.WAITING in states:
        return PointState("queued", tried=True)
    return PointState("todo", tried=bool(trials))


def _is_lost(trial: FrozenTrial, run_dir: Path | None) -> bool:
    if "worker" in trial.user_attrs and run_dir is not None:
        # the worker records itself only while holding the claim; a free claim means it is gone
        return is_claimed(run_dir) is False
    if trial.datetime_start is None:
        return False
    # aware (journal) or naive local time (RDB): timestamp() reads both right
    return time.time() - trial.datetime_start.timestamp() > UNCLAIMED_GRACE_S
