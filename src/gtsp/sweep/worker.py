"""A sweep worker: take a point, claim it, train it, record it; until every point is settled.

Each round first marks lost trials (their worker died) as FAIL and queues again every point
that still needs a run, then runs one Optuna trial: a queued retry if there is one, else the
``GridSampler``'s next cell. A point handed out twice (the sampler's known race, or a
retry queued by two workers) is claimed by one worker only; the other records its trial as
PRUNED with the reason, without running anything. A worker with nothing to take waits while
others run, so it can pick up their points if they die.

``python -m gtsp.sweep.worker SWEEP.yaml --storage URL --out DIR`` runs one worker
(``gtsp sweep --workers N`` starts N of them).
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import optuna
from optuna.trial import TrialState

from gtsp.errors import GtspError
from gtsp.sweep.changes import changed_points, settle
from gtsp.sweep.claim import Claim
from gtsp.sweep.grid import Point, expand
from gtsp.sweep.runner import Outcome, run_point
from gtsp.sweep.spec import load_sweep
from gtsp.sweep.study import PARAM, SweepStudy, open_sweep

POLL_S = 2.0
SETTLED = ("done", "failed")


class PointFailed(Exception):
    """A point's training ended badly; the trial is recorded as FAIL with the reason."""


def work(sweep: SweepStudy, name: str = "worker") -> None:
    """Run points of ``sweep`` until each is done or failed."""
    while True:
        for lost in sweep.fail_lost_trials():
            _say(f"{lost}: its worker is gone; it will run again")
        states = sweep.states()
        if all(s.status in SETTLED for s in states):
            return
        sweep.requeue(states)
        if not any(s.status in ("todo", "queued") for s in states):
            time.sleep(POLL_S)  # the rest runs elsewhere; wait in case a worker dies
            continue
        attempt = Attempt()
        try:
            sweep.study.optimize(lambda trial: _objective(sweep, trial, attempt), n_trials=1, catch=(PointFailed,))
        finally:
            if attempt.claim is not None:  # released only once the trial is recorded
                attempt.claim.release()
        if attempt.outcome is not None:
            _report(sweep, attempt, name)


@dataclass
class Attempt:
    """What one round did: the claim it holds and, when it trained, the point and how it ended."""

    claim: Claim | None = None
    point: Point | None = None
    outcome: Outcome | None = None


def _objective(sweep: SweepStudy, trial: optuna.Trial, attempt: Attempt) -> float:
    index = trial.suggest_categorical(PARAM, list(range(len(sweep.points))))
    point, run_dir = sweep.points[index], sweep.run_dir(index)
    if (run_dir / "results.json").is_file():
        trial.set_user_attr("found", "results.json was already there; not rerun")
        return _record_results(trial, run_dir)
    claim = Claim(run_dir)
    if not claim.acquire():
        trial.set_user_attr("skipped", "another worker runs this point")
        raise optuna.TrialPruned()
    attempt.claim = claim
    state = sweep.state(index, ignore=trial.number)
    if state.status in SETTLED:  # settled by another worker between the sampler's pick and the claim
        trial.set_user_attr("skipped", f"already {state.status}")
        raise optuna.TrialPruned()
    trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
    attempt.point = point
    attempt.outcome = outcome = run_point(point, run_dir, claim.fd)
    trial.set_user_attr("seconds", round(outcome.seconds, 1))
    trial.set_user_attr("outcome", outcome.status)
    if outcome.status != "ok":
        trial.set_user_attr("error", outcome.error)
        raise PointFailed(f"{point.name}: {outcome.error}")
    return _record_results(trial, run_dir)


def _record_results(trial: optuna.Trial, run_dir: Path) -> float:
    """The trial's value is the validation metric; the test metric goes with it as an attribute."""
    metric = json.loads((run_dir / "results.json").read_text())["metric"]
    trial.set_user_attr("metric", metric["name"])
    trial.set_user_attr("test", metric["test"])
    return float(metric["val"])


def _report(sweep: SweepStudy, attempt: Attempt, name: str) -> None:
    """One line per finished attempt, with how many points are settled and the time left."""
    states = sweep.states()
    settled, total = sum(s.status in SETTLED for s in states), len(states)
    outcome = attempt.outcome
    if outcome.status == "ok":
        metric = outcome.results["metric"]
        what = f"done, test {metric['name']} {metric['test']:.4f}"
    else:
        again = "" if states[attempt.point.index].status == "failed" else "; it will run again"
        what = f"FAILED ({outcome.status}{again}): {outcome.error}"
    _say(f"{name} {settled}/{total} {attempt.point.name}: {what} ({outcome.seconds:.1f} s)"
         f"{_eta(sweep, total - settled)}")


def _eta(sweep: SweepStudy, remaining: int) -> str:
    """Time left: remaining points x mean seconds per run, shared among the workers (running ones + this)."""
    trials = sweep.study.get_trials(deepcopy=False)
    seconds = [t.user_attrs["seconds"] for t in trials if t.state == TrialState.COMPLETE and "seconds" in t.user_attrs]
    if remaining <= 0 or not seconds:
        return ""
    workers = 1 + sum(t.state == TrialState.RUNNING for t in trials)
    left = timedelta(seconds=round(-(-remaining // workers) * sum(seconds) / len(seconds)))
    return f"; ETA {left} for {remaining} more"


def _say(line: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {line}", flush=True)


def stop_on_sigterm() -> None:
    """SIGTERM stops a worker like Ctrl-C: the trainer gets SIGINT and keeps its checkpoint."""
    def handler(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m gtsp.sweep.worker", description=__doc__.splitlines()[0])
    p.add_argument("sweep_file")
    p.add_argument("--storage", required=True, help="the sweep's storage (journal file or database URL)")
    p.add_argument("--out", required=True, help="root of the run folders")
    p.add_argument("--name", default="worker", help="how this worker signs its lines")
    args = p.parse_args(argv)
    stop_on_sigterm()
    try:
        spec = load_sweep(args.sweep_file, out=args.out)
        points = expand(spec)
        settle(spec.out, changed_points(spec.out, points), rerun=False, accept=False)  # gtsp sweep settles them
        work(open_sweep(spec, points, args.storage), args.name)
    except GtspError as err:
        print(f"gtsp: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except OSError as err:
        from gtsp.cli_values import DISK_ERRORS, disk_error_line

        if err.errno not in DISK_ERRORS:
            raise
        print(f"gtsp: error: {disk_error_line(err)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
