"""Budget mode: the most accurate pruning combination whose cost fits a budget.

``--budget flops=0.5`` (fraction of the dense model's counted FLOPs per graph) or
``--budget latency=0.5`` (fraction of its measured inference time per batch, on the machine
that runs the search): :mod:`gtsp.budget.cost` prices every combination of per-dimension
ratios exactly on the model's own architecture, :mod:`gtsp.budget.search` tries the
affordable ones on short proxy runs (an Optuna study) and picks the best validation metric.
"""
from gtsp.budget.spec import BUDGET_KINDS, BudgetSpec, check_budget

__all__ = ["BUDGET_KINDS", "BudgetSpec", "check_budget"]
