"""Run a list of ``gtsp train`` jobs in parallel under a wall-clock deadline, resumably.

Each line of the job file is ``NAME  ARGS...`` (the arguments of ``gtsp train``) or
``@prepare ARGS...`` (the arguments of ``gtsp data prepare``); ``#`` starts a comment.
All ``@prepare`` lines run first, in parallel (each processes a different cache folder, so
the training jobs that follow never race to build the same one). Jobs then start in file
order, at most ``--parallel`` at a time, each in ``OUT/NAME`` with ``--resume``, so a second
call continues what a first one left. A job already holding ``results.json`` is skipped.
At the deadline running jobs get SIGINT (the trainer keeps its last checkpoint), then
SIGKILL. ``OUT/campaign.json`` lists every job with its status, and ``--archive`` packs the
run folders without their ``*.pt`` files::

    python benchmarks/campaign.py benchmarks/jobs/molhiv.txt --out runs/c1 --parallel 4 --deadline 3000
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Job:
    name: str
    argv: list[str]
    log: Path
    proc: subprocess.Popen | None = None
    started: float = 0.0
    record: dict = field(default_factory=dict)


def read_jobs(path: Path, out: Path) -> tuple[list[Job], list[Job]]:
    prepares, jobs = [], []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        words = shlex.split(line, comments=True)
        if not words:
            continue
        if words[0] == "@prepare":
            prepares.append(Job(f"prepare-{len(prepares)}", [*_gtsp(), "data", "prepare", *words[1:]],
                                out / f"prepare-{len(prepares)}.log"))
            continue
        if any(w == "--out" for w in words):
            sys.exit(f"{path}:{number}: do not give --out; the campaign puts job {words[0]} in {out / words[0]}")
        jobs.append(Job(words[0], [*_gtsp(), "train", *words[1:], "--out", str(out / words[0]), "--quiet",
                                   "--resume"], out / f"{words[0]}.log"))
    names = [j.name for j in jobs]
    if len(set(names)) != len(names):
        sys.exit(f"{path}: job names repeat; each job needs its own name (its run folder)")
    return prepares, jobs


def _gtsp() -> list[str]:
    return [sys.executable, "-m", "gtsp"]


def start(job: Job) -> None:
    job.log.parent.mkdir(parents=True, exist_ok=True)
    with open(job.log, "ab") as log:
        job.proc = subprocess.Popen(job.argv, stdout=log, stderr=subprocess.STDOUT)
    job.started = time.monotonic()
    print(f"[{time.strftime('%H:%M:%S')}] start {job.name}", flush=True)


def finish(job: Job, status: str) -> None:
    rc = job.proc.returncode if job.proc is not None else None
    job.record = {"name": job.name, "status": status, "returncode": rc,
                  "seconds": round(time.monotonic() - job.started, 1), "command": shlex.join(job.argv[1:])}
    print(f"[{time.strftime('%H:%M:%S')}] {status} {job.name} rc={rc} {job.record['seconds']} s", flush=True)


def stop(jobs: list[Job], grace: float = 20.0) -> None:
    """SIGINT (checkpoint stays resumable), then SIGKILL whatever is still alive after ``grace`` s."""
    for job in jobs:
        job.proc.send_signal(signal.SIGINT)
    end = time.monotonic() + grace
    for job in jobs:
        try:
            job.proc.wait(timeout=max(0.1, end - time.monotonic()))
        except subprocess.TimeoutExpired:
            job.proc.kill()
            job.proc.wait()
        finish(job, "stopped at deadline")


def run_pool(jobs: list[Job], parallel: int, deadline: float, out: Path) -> None:
    queue = [j for j in jobs if not (out / j.name / "results.json").is_file()]
    for done in (j for j in jobs if j not in queue):
        done.record = {"name": done.name, "status": "done earlier"}
    running: list[Job] = []
    while queue or running:
        if time.monotonic() >= deadline:
            stop(running)
            for job in queue:
                job.record = {"name": job.name, "status": "not started (deadline)"}
            return
        while queue and len(running) < parallel:
            running.append(queue.pop(0))
            start(running[-1])
        for job in [j for j in running if j.proc.poll() is not None]:
            running.remove(job)
            finish(job, "done" if job.proc.returncode == 0 else "failed")
        time.sleep(1.0)


def summarise(job: Job, out: Path) -> dict:
    results = out / job.name / "results.json"
    if results.is_file():
        r = json.loads(results.read_text())
        job.record.update(metric=r["metric"], epochs=r["epochs"], best_epoch=r.get("best_epoch"),
                          train_seconds=r.get("train_seconds"), device=r.get("device"))
    return job.record


def archive(out: Path, target: Path, checkpoints: bool = False) -> None:
    """Pack ``out`` without model files; with ``checkpoints``, only the checkpoints of unfinished runs."""
    def keep(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        if info.isdir():
            return info
        is_checkpoint = info.name.endswith("/checkpoint.pt")
        unfinished = is_checkpoint and not (out.parent / Path(info.name).parent / "results.json").is_file()
        if checkpoints:
            return info if unfinished else None
        return None if info.name.endswith(".pt") else info

    with tarfile.open(target, "w:gz") as tar:
        tar.add(out, arcname=out.name, filter=keep)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("jobs", type=Path, help="job file: NAME ARGS... per line, @prepare ARGS... for data")
    p.add_argument("--out", type=Path, required=True, help="folder for the run folders and logs")
    p.add_argument("--parallel", type=int, default=2, help="jobs at a time (default 2)")
    p.add_argument("--deadline", type=float, default=float("inf"), help="seconds from start until jobs stop")
    p.add_argument("--archive", type=Path, help="write a .tar.gz of --out here, without *.pt files")
    p.add_argument("--archive-checkpoints", type=Path,
                   help="write the checkpoints of unfinished runs to this .tar.gz (to resume them elsewhere)")
    args = p.parse_args(argv)
    t0 = time.monotonic()
    deadline = t0 + args.deadline
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core per job: small graphs gain nothing from more
    prepares, jobs = read_jobs(args.jobs, args.out)
    run_pool(prepares, len(prepares) or 1, deadline, args.out)
    run_pool(jobs, args.parallel, deadline, args.out)
    summary = {"jobs_file": str(args.jobs), "parallel": args.parallel, "seconds": round(time.monotonic() - t0, 1),
               "prepare": [p.record for p in prepares], "jobs": [summarise(j, args.out) for j in jobs]}
    (args.out / "campaign.json").write_text(json.dumps(summary, indent=1))
    if args.archive:
        archive(args.out, args.archive)
    if args.archive_checkpoints:
        archive(args.out, args.archive_checkpoints, checkpoints=True)
    failed = [j.name for j in prepares + jobs if j.record.get("status") == "failed"]
    print(f"campaign finished in {summary['seconds']} s; failed: {', '.join(failed) or 'none'}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
