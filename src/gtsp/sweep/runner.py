"""Run one sweep point: ``python -m gtsp train --config RUN_DIR/point.yaml --out RUN_DIR --resume --quiet``.

A subprocess, so a crash of one point (segfault, out of memory) does not take the worker
with it; ``--resume`` so a retried point continues from its checkpoint. Its output is
appended to ``RUN_DIR/train.log``, each attempt after a ``# attempt`` header line.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from gtsp.sweep.changes import POINT_CONFIG, point_yaml
from gtsp.sweep.grid import Point

LOG_NAME = "train.log"
ERROR_PREFIX = "gtsp: error:"
GTSP_ERROR_STATUS = 2  # gtsp.cli.main's exit status for a GtspError
STOP_GRACE_S = 30      # after SIGINT, how long the trainer may take to exit before it is killed


@dataclass(frozen=True)
class Outcome:
    """How an attempt ended: ``ok``, ``gtsp-error`` (bad input) or ``crashed`` (anything else)."""

    status: str
    seconds: float
    returncode: int
    error: str = ""
    results: dict[str, Any] | None = None


def command(run_dir: Path) -> list[str]:
    """The ``gtsp train`` command line of the point in ``run_dir``."""
    return [sys.executable, "-m", "gtsp", "train", "--config", str(run_dir / POINT_CONFIG), "--out", str(run_dir),
            "--resume", "--quiet"]


def run_point(point: Point, run_dir: Path, claim_fd: int) -> Outcome:
    """Train ``point`` in ``run_dir`` and report how it ended; the claim's descriptor is inherited."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / POINT_CONFIG).write_text(point_yaml(point.config))
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    start = time.monotonic()
    with open(run_dir / LOG_NAME, "a") as log:
        log.write(f"# attempt by {socket.gethostname()}:{os.getpid()} at {datetime.now().isoformat(timespec='seconds')}"
                  f": {' '.join(command(run_dir)[1:])}\n")
        log.flush()
        proc = subprocess.Popen(command(run_dir), stdout=log, stderr=subprocess.STDOUT, env=env,
                                pass_fds=(claim_fd,))
        returncode = _wait(proc)
    seconds = time.monotonic() - start
    results_file = run_dir / "results.json"
    if returncode == 0 and results_file.is_file():
        return Outcome("ok", seconds, returncode, results=json.loads(results_file.read_text()))
    error = _error_line(run_dir / LOG_NAME)
    if returncode == GTSP_ERROR_STATUS and error.startswith(ERROR_PREFIX):
        return Outcome("gtsp-error", seconds, returncode, error)
    return Outcome("crashed", seconds, returncode, error or f"exit status {returncode}")


def _wait(proc: subprocess.Popen) -> int:
    """The trainer's exit status; on Ctrl-C / SIGTERM stop it (it keeps its checkpoint) and re-raise."""
    try:
        return proc.wait()
    except BaseException:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        raise


def _error_line(log: Path) -> str:
    """The last ``gtsp: error:`` line of this attempt, else its last non-empty line."""
    text = log.read_text(errors="replace")
    lines = [ln.strip() for ln in text[text.rfind("\n# attempt ") + 1:].splitlines()[1:] if ln.strip()]
    errors = [ln for ln in lines if ln.startswith(ERROR_PREFIX)]
    return (errors or lines or [""])[-1]
