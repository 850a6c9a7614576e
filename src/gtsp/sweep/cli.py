"""``gtsp sweep SWEEP.yaml [--storage URL] [--workers N] [--dry-run] [--out DIR] [--retry-failed]
[--rerun-changed | --accept-changed]``."""
from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys

from gtsp.errors import GtspError
from gtsp.sweep.changes import changed_points, settle
from gtsp.sweep.grid import Point, expand
from gtsp.sweep.spec import SweepSpec, load_sweep


def add_parser(sub) -> None:
    """The ``sweep`` subcommand."""
    p = sub.add_parser("sweep", help="train every point of a grid (resumable, on one or many workers)",
                       description="Run gtsp train for every point of the sweep file's grid, one run folder per "
                                   "point. Finished points are never rerun; a killed sweep continues where it "
                                   "stopped when started again. See the README, section Sweeps and reports.")
    p.add_argument("sweep_file", help="YAML file with base:, grid: and out: (see the README, section Sweeps and reports)")
    p.add_argument("--out", help="root of the run folders (overrides out: in the sweep file)")
    p.add_argument("--storage", help="Optuna storage shared by the workers: a database URL (sqlite:///x.db, "
                                     "postgresql://...) or a journal file (default OUT/sweep.journal)")
    p.add_argument("--workers", type=int, default=1, help="worker processes on this machine (default 1)")
    p.add_argument("--dry-run", action="store_true", help="list the points and their state; run nothing")
    p.add_argument("--retry-failed", action="store_true",
                   help="run again the points recorded as failed (after fixing their cause)")
    p.add_argument("--rerun-changed", action="store_true",
                   help="train again the finished points whose configuration the sweep file has changed since "
                        "(their run files are replaced)")
    p.add_argument("--accept-changed", action="store_true",
                   help="keep the results of finished points whose configuration the sweep file has changed since")


def cmd_sweep(args: argparse.Namespace) -> None:
    """Check the sweep file, then list its points (``--dry-run``) or run them and summarise."""
    from gtsp.sweep.study import open_sweep, storage_url  # Optuna loads only for this command
    from gtsp.sweep.worker import stop_on_sigterm, work

    spec = load_sweep(args.sweep_file, out=args.out)
    points = expand(spec)
    if args.dry_run:
        print(dry_run(spec, points))
        return
    if args.workers < 1:
        raise GtspError(f"--workers must be at least 1 (got {args.workers})")
    changed = changed_points(spec.out, points)
    if changed and not (args.rerun_changed or args.accept_changed):
        settle(spec.out, changed, rerun=False, accept=False)  # refuses, naming them and the two choices
    url = storage_url(spec, args.storage)
    sweep = open_sweep(spec, points, url)
    sweep.reset(settle(spec.out, changed, rerun=args.rerun_changed, accept=args.accept_changed))
    if args.retry_failed:
        sweep.forgive_failures()
    print(f"sweep {spec.name}: {len(points)} points in {spec.out}, storage {url}, {args.workers} worker(s)",
          flush=True)
    stop_on_sigterm()
    try:
        if args.workers == 1:
            work(sweep)
        else:
            _run_workers(spec, url, args.workers)
    except KeyboardInterrupt:
        print("gtsp sweep: interrupted; run the same command again to continue", file=sys.stderr)
        raise SystemExit(130) from None
    _finish(sweep)


def dry_run(spec: SweepSpec, points: list[Point]) -> str:
    """One line per point: folder name, axis values and whether its results are already there."""
    width = max(len(p.name) for p in points)
    axes = dict.fromkeys(a.key for grid in spec.grids for a in grid)
    lines = [f"sweep {spec.name}: {len(points)} points in {spec.out} (axes: {', '.join(axes)})"]
    changed = {c.point.index: c for c in changed_points(spec.out, points)}
    for p in points:
        done = "done" if (spec.out / p.name / "results.json").is_file() else "todo"
        if p.index in changed:
            done = f"changed since it finished ({'; '.join(changed[p.index].differences)})"
        values = ", ".join(f"{k}={json.dumps(v)}" for k, v in p.values.items())
        lines.append(f"{p.index:4d}  {p.name:<{width}}  {done}  {values}")
    return "\n".join(lines)


def _run_workers(spec: SweepSpec, url: str, count: int) -> None:
    """Start ``count`` worker processes on the same storage and wait for all of them."""
    argv = [sys.executable, "-m", "gtsp.sweep.worker", str(spec.file), "--storage", url, "--out", str(spec.out)]
    procs = [subprocess.Popen([*argv, "--name", f"worker{i + 1}"]) for i in range(count)]
    try:
        for proc in procs:
            proc.wait()
    except KeyboardInterrupt:  # Ctrl-C reached the workers too; let them stop their trainers
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in procs:
            proc.wait()
        raise
    crashed = [f"worker{i + 1} (exit status {p.returncode})" for i, p in enumerate(procs) if p.returncode != 0]
    if crashed:
        print(f"gtsp sweep: {', '.join(crashed)} stopped early; the points it left run when the sweep is "
              "started again", file=sys.stderr)


def _finish(sweep) -> None:
    """The closing summary; failed points make the command fail, naming each with its error."""
    states = sweep.states()
    counts = {status: sum(s.status == status for s in states) for status in ("done", "failed", "todo")}
    unfinished = len(states) - counts["done"] - counts["failed"]
    print(f"sweep finished: {counts['done']} done, {counts['failed']} failed"
          + (f", {unfinished} unfinished (start the sweep again)" if unfinished else "")
          + f" of {len(states)}; report with: gtsp report {sweep.out}", flush=True)
    failed = [(p, s) for p, s in zip(sweep.points, states) if s.status == "failed"]
    if failed:
        details = "; ".join(f"{p.name}: {_short(s)}" for p, s in failed)
        raise GtspError(f"{len(failed)} of {len(states)} points failed ({details}); logs in "
                        f"{sweep.out}/POINT/train.log; fix the cause, then rerun with --retry-failed")


def _short(state) -> str:
    return state.detail.removeprefix("gtsp: error: ") or "no error line"

