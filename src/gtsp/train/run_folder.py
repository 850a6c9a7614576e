"""The run folder (``--out``): one run at a time, nothing lost, nothing left over.

- A folder that already holds files is refused unless the run continues it (``--resume``) or
  replaces it (``--overwrite``, which removes exactly the files gtsp writes, :data:`ARTEFACTS`).
- A lock file (``fcntl.flock``, released by the kernel when its process dies, so a lock left by a
  killed run never blocks) keeps a second process out; it records pid, host and start time so
  the refusal can name the holder.
- Every file is written to a unique temporary name in the same folder, then ``os.replace``-d
  into place: a crash leaves the old file or the new one, never half of one.
- The previous checkpoint is kept as ``checkpoint.prev.pt``; a latest one that cannot be read
  falls back to it with a warning.
- Checkpoints hold only tensors, numbers, strings and plain containers, and are read with
  ``torch.load(weights_only=True)``: reading one never runs code stored in it.
"""
from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import pickle
import socket
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import torch

from gtsp.errors import GtspError
from gtsp.file_mode import as_new_file

log = logging.getLogger("gtsp.train")

LOCK = ".gtsp.lock"
CHECKPOINT = "checkpoint.pt"
PREVIOUS = "checkpoint.prev.pt"
METRICS = "metrics.jsonl"
RESULTS = "results.json"
# every file a run writes into its folder: what --overwrite removes (with their temporary files);
# the model files as gtsp.models.files names them, and the pickles earlier versions wrote
ARTEFACTS = (CHECKPOINT, PREVIOUS, METRICS, RESULTS, "model.safetensors", "model.safetensors.json",
             "compacted.safetensors", "compacted.safetensors.json", "model.pt", "compacted.pt", "masked_state.pt")
CHECKPOINT_KEYS = ("model", "optimizer", "scheduler", "trainer", "rng")


# ---- atomic writes ------------------------------------------------------------------------------
def atomic_write(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Call ``write`` on a fresh temporary file beside ``path``, then move it onto ``path`` in one step."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        as_new_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """``path.write_text(text)``, atomically."""
    atomic_write(path, lambda handle: handle.write(text.encode()))


# ---- checkpoints --------------------------------------------------------------------------------
def save_checkpoint(out: Path, state: dict[str, Any]) -> None:
    """Write ``state`` as the latest checkpoint; the one it replaces becomes ``checkpoint.prev.pt``."""
    out = Path(out)
    fd, tmp = tempfile.mkstemp(prefix=f".{CHECKPOINT}.", suffix=".tmp", dir=out)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(state, handle)
            handle.flush()
            os.fsync(handle.fileno())
        as_new_file(tmp)
        if (out / CHECKPOINT).exists():
            os.replace(out / CHECKPOINT, out / PREVIOUS)
        os.replace(tmp, out / CHECKPOINT)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(out: Path, map_location: Any = "cpu") -> dict[str, Any] | None:
    """The latest readable checkpoint in ``out``; None when there is none at all.

    An unreadable ``checkpoint.pt`` (truncated, not a checkpoint) is removed with a warning and
    ``checkpoint.prev.pt`` is used instead; when neither can be read the run cannot continue.
    The state's ``loaded_from`` names the file it came from.
    """
    out = Path(out)
    latest, previous = out / CHECKPOINT, out / PREVIOUS
    if not latest.exists() and not previous.exists():
        return None
    problem = "is missing"
    if latest.exists():
        state, problem = _read_checkpoint(latest, map_location)
        if state is not None:
            return {**state, "loaded_from": str(latest)}
    if previous.exists():
        state, previous_problem = _read_checkpoint(previous, map_location)
        if state is not None:
            state = {**state, "loaded_from": str(previous)}
            log.warning("%s %s: continuing from %s (after epoch %d)", latest, problem, previous,
                        state["trainer"]["epoch"])
            latest.unlink(missing_ok=True)
            return state
        problem += f"; {PREVIOUS} {previous_problem}"
    raise GtspError(f"{latest} {problem}, and no earlier checkpoint can be read: start the run again "
                    f"with --overwrite (or choose another --out)")


def _read_checkpoint(path: Path, map_location: Any) -> tuple[dict[str, Any] | None, str]:
    """``(state, "")`` or ``(None, why it is unusable)``."""
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        if "Unsupported global" not in str(err):
            return None, f"is unreadable (UnpicklingError: {_first_line(err)})"
        return None, ("holds Python objects other than tensors and plain values (written by an earlier gtsp, "
                      "or not a gtsp checkpoint), which are never loaded because loading them could run code")
    except Exception as err:  # a truncated or foreign file fails in many ways (zip, EOF, ...)
        return None, f"is unreadable ({type(err).__name__}: {_first_line(err)})"
    if not isinstance(state, dict) or any(key not in state for key in CHECKPOINT_KEYS):
        return None, "is not a gtsp checkpoint"
    return state, ""


def _first_line(err: BaseException) -> str:
    return str(err).splitlines()[0] if str(err) else ""


# ---- the folder ---------------------------------------------------------------------------------
class RunFolder:
    """Context manager that owns ``out`` for one run: locks it and checks or clears what it holds.

    Args:
        out: the run folder (created when missing).
        resume: the run continues what the folder holds.
        overwrite: the run replaces what the folder holds (removes :data:`ARTEFACTS` only).
    """

    def __init__(self, out: str | Path, *, resume: bool = False, overwrite: bool = False) -> None:
        if resume and overwrite:
            raise GtspError("--resume and --overwrite contradict each other: continue the run in --out "
                            "with --resume, or replace it with --overwrite")
        self.out, self.resume, self.overwrite = Path(out), resume, overwrite
        self._fd: int | None = None

    def __enter__(self) -> "RunFolder":
        self._create()
        self._lock()
        try:
            self._check_contents()
        except BaseException:
            self._unlock()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._unlock()

    def contents(self) -> list[str]:
        """Names in the folder other than the lock file, sorted."""
        return sorted(p.name for p in self.out.iterdir() if p.name != LOCK)

    def _create(self) -> None:
        if self.out.exists() and not self.out.is_dir():
            raise GtspError(f"--out {self.out} is a file: give a folder for the run")
        try:
            self.out.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise GtspError(f"cannot create the run folder {self.out} ({err.strerror}): "
                            "choose a writable --out") from None

    def _lock(self) -> None:
        """Take the folder's lock or fail naming its holder; retry when the file was replaced meanwhile."""
        path = self.out / LOCK
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as err:
                holder = _read_holder(fd)
                os.close(fd)
                if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise GtspError(f"cannot lock the run folder {self.out} ({err.strerror}): "
                                    "choose a --out on a local disk") from None
                raise GtspError(f"the run folder {self.out} is in use by {holder}: wait for that run to end, "
                                "or choose another --out") from None
            # the previous holder removes the file when it ends: a lock on a removed file locks nothing
            if path.exists() and os.path.samestat(os.fstat(fd), os.stat(path)):
                break
            os.close(fd)
        holder = {"pid": os.getpid(), "host": socket.gethostname(),
                  "started": time.strftime("%Y-%m-%d %H:%M:%S %z")}
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(holder).encode())
        self._fd = fd

    def _unlock(self) -> None:
        if self._fd is None:
            return
        (self.out / LOCK).unlink(missing_ok=True)  # still holding the lock: nobody else has it now
        os.close(self._fd)
        self._fd = None

    def _check_contents(self) -> None:
        names = self.contents()
        if not names or self.resume:
            return
        if self.overwrite:
            self._clear()
            return
        ours = [n for n in names if n in ARTEFACTS]
        listed = ", ".join(names[:6]) + (", ..." if len(names) > 6 else "")
        if ours:
            raise GtspError(f"--out {self.out} already holds a run ({listed}): continue it with --resume, "
                            "replace it with --overwrite, or choose another --out")
        raise GtspError(f"--out {self.out} is not empty ({listed}): choose a new or empty folder, "
                        "or --overwrite to write the run beside these files")

    def _clear(self) -> None:
        """Remove every file gtsp writes here (and their leftover temporary files), nothing else."""
        removed = []
        for entry in self.out.iterdir():
            if entry.is_file() and (entry.name in ARTEFACTS or _is_temporary(entry.name)):
                entry.unlink()
                removed.append(entry.name)
        if removed:
            log.info("--overwrite: removed %s from %s", ", ".join(sorted(removed)), self.out)

    def start_state(self, map_location: Any = "cpu") -> dict[str, Any] | None:
        """The checkpoint a ``--resume`` continues from; None to start afresh.

        A folder with a finished run's ``results.json`` but no checkpoint is not started afresh
        over: that would replace the results with nothing to continue.
        """
        state = load_checkpoint(self.out, map_location)
        if state is None and (self.out / RESULTS).exists():
            raise GtspError(f"--resume: {self.out} holds results.json but no checkpoint to continue from: "
                            "keep it and choose another --out, or start again with --overwrite")
        if state is None:
            log.warning("--resume: no checkpoint in %s, starting from scratch", self.out)
        return state


def _is_temporary(name: str) -> bool:
    """Whether ``name`` is a temporary file of :func:`atomic_write` for one of the artefacts."""
    return name.endswith(".tmp") and any(name.startswith(f".{artefact}.") for artefact in ARTEFACTS)


def _read_holder(fd: int) -> str:
    """``pid 123 on host h since t`` from the lock file, or a generic phrase while it is being written."""
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
        return f"pid {info['pid']} on {info['host']} since {info['started']}"
    except (ValueError, KeyError, TypeError, OSError):
        return "another gtsp process"
