"""Who runs a point right now: an exclusive ``flock`` on ``RUN_DIR/.sweep.lock``.

Optuna's ``GridSampler`` can hand the same point to two workers at once (it says so itself),
so a worker runs a point only while it holds this lock. The kernel drops the lock when every
process holding it has died, so a killed worker never leaves a stale claim behind; the
training subprocess inherits the descriptor, so the point stays claimed while either of them
lives. On a shared filesystem (NFS) Linux turns ``flock`` into a lock the server arbitrates,
so workers on several machines exclude each other too.
"""
from __future__ import annotations

import fcntl
import os
from pathlib import Path

LOCK_NAME = ".sweep.lock"


class Claim:
    """An exclusive, non-blocking claim on one run folder."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / LOCK_NAME
        self.fd: int | None = None

    def acquire(self) -> bool:
        """Take the claim; False when another process holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self.fd = fd
        return True

    def release(self) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> "Claim":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def is_claimed(run_dir: Path) -> bool | None:
    """Whether some live process holds ``run_dir``'s claim; None when there is no lock file to ask."""
    claim = Claim(run_dir)
    if not claim.path.is_file():
        return None
    if claim.acquire():
        claim.release()
        return False
    return True
