"""What a budget asks for: ``{"flops": 0.5}``, ``{"flops_nominal": 0.5}`` or ``{"latency": 0.5}``, plus
search options.

``flops`` prices the FLOPs the compacted model executes with dense kernels (unstructured weight
zeros save nothing there); ``flops_nominal`` is the paper's convention, masked matrices counted
at their density.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from gtsp.errors import GtspError
from gtsp.typed_values import finite_number

BUDGET_KINDS = ("flops", "flops_nominal", "latency")
NOMINAL = "flops_nominal"  # the only kind that prices savings which do not execute
OPTIONS = ("trials", "proxy_epochs", "storage")
MIN_PROXY_EPOCHS = 3
SEARCH_DIR = "budget"  # OUT/budget: prices, Optuna journal, proxy runs, choice
CHOICE_FILE = "choice.json"


@dataclass(frozen=True)
class BudgetSpec:
    """A checked budget.

    Attributes:
        kind: ``"flops"`` (executed FLOPs per graph), ``"flops_nominal"`` (FLOPs with masked weights
            counted at their density) or ``"latency"`` (measured inference time).
        target: the largest allowed cost, as a fraction of the dense model's, in (0, 1).
        trials: proxy trainings the search may run (each a short joint-pruning run).
        proxy_epochs: epochs of each proxy run (0: a tenth of the run's epochs, at least 3).
        storage: Optuna storage URL or journal path (default: a journal in the run folder).
    """

    kind: str
    target: float
    trials: int = 6
    proxy_epochs: int = 0
    storage: str | None = None

    def epochs_for(self, run_epochs: int) -> int:
        return self.proxy_epochs or max(MIN_PROXY_EPOCHS, run_epochs // 10)

    @property
    def counts_unexecuted(self) -> bool:
        """Whether savings that do not execute (unstructured zeros) lower this budget's cost."""
        return self.kind == NOMINAL

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_budget(budget: dict[str, Any]) -> BudgetSpec | None:
    """``budget`` as a :class:`BudgetSpec` (None when empty), or one clear error."""
    if not budget:
        return None
    kinds = [k for k in budget if k in BUDGET_KINDS]
    unknown = sorted(set(budget) - set(BUDGET_KINDS) - set(OPTIONS))
    if unknown:
        raise GtspError(f"unknown budget entries {unknown}: give flops=F, flops_nominal=F or latency=F (and optionally "
                        f"{', '.join(OPTIONS)}), e.g. --budget flops=0.5")
    if len(kinds) != 1:
        raise GtspError(f"a budget names exactly one cost, {', '.join(BUDGET_KINDS)} (got {kinds or 'none'}): "
                        "e.g. --budget flops=0.5")
    kind = kinds[0]
    target = finite_number(budget[kind])
    if target is None or not 0.0 < target < 1.0:
        raise GtspError(f"--budget {kind}={budget[kind]!r} is not a fraction in (0, 1): give the share of the "
                        f"dense model's cost to keep, e.g. {kind}=0.5")
    trials, epochs = (finite_number(budget.get(k, d)) for k, d in (("trials", 6), ("proxy_epochs", 0)))
    if trials is None or trials < 1 or not float(trials).is_integer():
        raise GtspError(f"budget trials={budget.get('trials')!r} is not an integer >= 1: e.g. trials=6")
    if epochs is None or epochs in (1, 2) or epochs < 0 or not float(epochs).is_integer():
        raise GtspError(f"budget proxy_epochs={budget.get('proxy_epochs')!r} is not 0 (a tenth of --epochs) or "
                        f"an integer >= {MIN_PROXY_EPOCHS} (pruning decides after the first epochs and the "
                        "pruned model must then be evaluated): e.g. proxy_epochs=5")
    storage = budget.get("storage")
    return BudgetSpec(kind, float(target), int(trials), int(epochs), None if storage is None else str(storage))
