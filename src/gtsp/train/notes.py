"""What a run says about its own settings and outcome, so that a surprising result is never silent.

- A warm-up longer than the training: the learning rate never reaches the peak ``--lr``.
- A best model from a very early epoch (before the warm-up ended, or in the first tenth of the
  epochs): on a small validation split a barely trained model can rank first.
"""
from __future__ import annotations

from typing import Any


def warmup_note(epochs: int, warmup_epochs: int) -> str | None:
    """The warning for ``--epochs`` below ``--warmup-epochs`` (None when the warm-up ends in time)."""
    if warmup_epochs <= epochs:
        return None
    return (f"--warmup-epochs {warmup_epochs} is more than --epochs {epochs}: the learning rate rises for the whole "
            f"run and never reaches the peak --lr (it ends at {epochs / warmup_epochs:.0%} of it); lower "
            "--warmup-epochs to train at the learning rate asked for")


def early_best_note(results: dict[str, Any], warmup_epochs: int, select_from: int) -> str | None:
    """Why the model kept is from a very early epoch (None otherwise, or when ``--select-from`` was set)."""
    best, epochs = results["best_epoch"], results["epochs"]
    if select_from > 1 or epochs < 10 or best > max(warmup_epochs, epochs // 10):
        return None
    metric = results["metric"]
    record = next((r for r in results.get("history", []) if r.get("epoch") == best), {})
    trained = f" (training {metric['name']} {record['train_metric']:.3f} then)" if "train_metric" in record else ""
    suggest = max(warmup_epochs + 1, epochs // 3)
    return (f"the model kept is from epoch {best} of {epochs}{trained}: it had the best validation {metric['name']} "
            f"({metric['val']:.4f}) on {results['split_sizes']['valid']} validation graphs, where a barely trained "
            f"model can rank first; to choose among later epochs, run with --select-from {suggest} "
            "(metrics.jsonl lists every epoch)")
