"""Optuna journal files with a lock that never hangs: stale locks are found, waits are said and bounded.

Optuna's journal lock is a symbolic link ``JOURNAL.lock`` made for the few milliseconds of one
append. A process killed meanwhile leaves it behind, and Optuna's own lock then spins
(forever when the link dangles, as one made from a relative path does). :class:`JournalLock`
keeps Optuna's protocol (a symlink to the journal, so it excludes Optuna's own lock too) but:

- links to the journal's absolute path, so the link never dangles while the journal exists;
- takes a lock older than :data:`STALE_S` as left by a dead process (no append takes that long)
  and removes it, saying so; a dangling one (never made by this class) after :data:`DANGLING_STALE_S`;
- says once that it waits, after :data:`SAY_AFTER_S`, naming the lock file;
- gives up after :data:`MAX_WAIT_S` with an error naming the lock file and how to remove it.
"""
from __future__ import annotations

import errno
import logging
import os
import stat
import time
import uuid
from pathlib import Path

from optuna.storages.journal import JournalFileBackend

from gtsp.errors import GtspError

log = logging.getLogger("gtsp.journal")
STALE_S = 30.0          # a lock this old (seconds, unchanged) was left by a dead process
DANGLING_STALE_S = 2.0  # a lock pointing nowhere was left by a dead process (or an older gtsp) once this old
SAY_AFTER_S = 1.0       # the wait is reported from then on
MAX_WAIT_S = 60.0       # then the wait ends with an error


class JournalLock:
    """Optuna's symlink lock on ``journal`` without its endless wait (see the module docstring); the
    ``acquire`` / ``release`` pair that ``JournalFileBackend`` calls."""

    def __init__(self, journal: Path) -> None:
        self.target = str(Path(journal).absolute())
        self.path = self.target + ".lock"

    def acquire(self) -> bool:
        start, said, pause = time.monotonic(), False, 0.001
        while True:
            try:
                os.symlink(self.target, self.path)
                return True
            except FileExistsError:
                pass
            except OSError as err:
                raise GtspError(f"cannot create the journal lock {self.path} ({err.strerror}): make its folder "
                                "writable") from None
            waited = time.monotonic() - start
            if self._remove_if_stale():
                continue
            if waited > MAX_WAIT_S:
                raise GtspError(f"the journal lock {self.path} has been held for over {MAX_WAIT_S:g} s: if no "
                                f"gtsp process uses this journal any more, remove it (rm {self.path}) and rerun")
            if waited > SAY_AFTER_S and not said:
                log.warning("waiting for the journal lock %s (held by another process; a lock left by a killed "
                            "one is removed after %.0f s)", self.path, STALE_S)
                said = True
            time.sleep(pause)
            pause = min(pause * 2, 0.5)

    def release(self) -> None:
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass  # removed as stale by another process: nothing left to release

    def _remove_if_stale(self) -> bool:
        """Remove the lock when it is stale; True when it was removed (by this process)."""
        try:
            seen = os.lstat(self.path)
        except FileNotFoundError:
            return True  # released meanwhile
        if stat.S_ISDIR(seen.st_mode):
            raise GtspError(f"the journal lock {self.path} is a folder, which no gtsp process makes: remove it "
                            f"(rm -r {self.path}) and rerun")
        dangling = not os.path.exists(self.path)
        age = time.time() - seen.st_mtime
        if age < (DANGLING_STALE_S if dangling else STALE_S):
            return False
        # move it aside first, so a fresh lock made meanwhile by another process is put back, not lost
        aside = f"{self.path}.stale-{uuid.uuid4().hex}"
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return True
        except OSError as err:
            raise GtspError(f"cannot remove the stale journal lock {self.path} ({err.strerror}): remove it "
                            f"(rm {self.path}) and rerun") from None
        moved = os.lstat(aside)
        if (moved.st_ino, moved.st_mtime) != (seen.st_ino, seen.st_mtime):
            _put_back(aside, self.path)
            return False
        os.unlink(aside)
        log.warning("removed the journal lock %s, left %.0f s ago by a process that is gone%s", self.path, age,
                    " (it pointed to a missing file)" if dangling else "")
        return True


def _put_back(aside: str, path: str) -> None:
    """Restore a live lock moved aside by mistake, unless a newer one took its place."""
    try:
        os.link(aside, path, follow_symlinks=False)
    except OSError as err:
        if err.errno != errno.EEXIST:
            raise
    os.unlink(aside)


def journal_backend(path: str | Path) -> JournalFileBackend:
    """Optuna's journal file backend on ``path`` (made absolute) with :class:`JournalLock`."""
    journal = Path(path).absolute()
    journal.parent.mkdir(parents=True, exist_ok=True)
    lock = JournalLock(journal)
    drop_torn_record(journal, lock)
    return JournalFileBackend(str(journal), lock_obj=lock)


def drop_torn_record(journal: Path, lock: JournalLock) -> None:
    """Cut an incomplete last record (a process stopped mid-write) off ``journal``, saying so.

    Optuna skips such a record when reading but appends the next one right after it, which merges
    both into one unreadable line (Optuna then fails with "Should not reach."). The record was
    never complete, so no process relies on it; the cut is made holding the journal's lock.
    """
    if not _torn(journal):
        return
    lock.acquire()
    try:
        if not _torn(journal):  # a live writer finished it meanwhile
            return
        data = journal.read_bytes()
        keep = data.rfind(b"\n") + 1
        os.truncate(journal, keep)
    finally:
        lock.release()
    log.warning("%s ended with an incomplete record (%d bytes, left by a process stopped while writing it): "
                "removed it", journal, len(data) - keep)


def _torn(journal: Path) -> bool:
    """Whether ``journal`` is non-empty and does not end with a newline."""
    try:
        with open(journal, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            if handle.tell() == 0:
                return False
            handle.seek(-1, os.SEEK_END)
            return handle.read(1) != b"\n"
    except FileNotFoundError:
        return False


def damaged_journal(path: str | Path, err: BaseException) -> GtspError:
    """The error for a journal Optuna cannot replay (cut short or edited)."""
    return GtspError(f"the journal {path} is damaged and cannot be read ({type(err).__name__}: {err}): move it "
                     f"aside (mv {path} {path}.damaged) and run again; finished runs are found from their "
                     "results.json and interrupted ones continue from their checkpoints")
