"""Model selection redone on a run's ``metrics.jsonl``, to compare dense and pruned runs fairly.

A pruned run may only choose among the epochs after its schedule ends (the trainer asks the
sparsifier whether an epoch is ``selectable``); until then the logged ``best_epoch`` stays -1,
so the first epoch logging another value is the first one it could choose. A dense run chooses
among all epochs. :func:`select` re-chooses a dense run's epoch inside a pruned run's window
with the trainer's rule: the best validation metric; on a tie, a validation loss at least as
low wins, so later epochs win exact ties.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

LOG = "metrics.jsonl"


def read_log(run_dir: Path) -> dict[int, dict[str, Any]]:
    """Each epoch's record in ``run_dir/metrics.jsonl`` (the last line of an epoch wins; cut lines skipped)."""
    path = run_dir / LOG
    if not path.is_file():
        return {}
    epochs: dict[int, dict[str, Any]] = {}
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
            epochs[int(record["epoch"])] = record
        except (ValueError, KeyError, TypeError):
            continue  # a line cut by a kill
    return epochs


def first_selectable(log: dict[int, dict[str, Any]]) -> int | None:
    """The first epoch the run could select (None without a log or when none was selectable)."""
    for epoch in sorted(log):
        if log[epoch].get("best_epoch", -1) != -1:
            return epoch
    return None


def select(log: dict[int, dict[str, Any]], start: int, higher_is_better: bool) -> dict[str, Any] | None:
    """The record the trainer would have selected among epochs ``>= start``; None when there are none."""
    best: dict[str, Any] | None = None
    for epoch in sorted(e for e in log if e >= start):
        record = log[epoch]
        if best is None or _better(record, best, higher_is_better):
            best = record
    return best


def _better(record: dict[str, Any], best: dict[str, Any], higher_is_better: bool) -> bool:
    val, best_val = record["val"], best["val"]
    if val != best_val:
        return val > best_val if higher_is_better else val < best_val
    return best.get("val_loss") is None or record.get("val_loss") is not None and record["val_loss"] <= best["val_loss"]
