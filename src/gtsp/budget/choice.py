"""A run under a budget: the search's choice applied to the run's config, and the cost it reached.

The choice is written to ``OUT/budget/choice.json`` before the final training starts, so a
resumed run reads it back and trains the same combination (the search never runs twice). The
final results record what was asked, what was predicted and what the compacted model measured.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gtsp.budget.search import budget_prune_args, choose
from gtsp.budget.spec import CHOICE_FILE, SEARCH_DIR, BudgetSpec, check_budget
from gtsp.errors import GtspError


def saved_choice(cfg) -> dict[str, Any] | None:
    """The choice an earlier (interrupted) run of this budget left in ``cfg.out``; None when there is none."""
    spec = check_budget(cfg.budget)
    path = Path(cfg.out) / SEARCH_DIR / CHOICE_FILE
    if spec is None or not path.is_file():
        return None
    record = json.loads(path.read_text())
    if record.get("budget") != spec.to_dict():
        raise GtspError(f"{path} holds a budget search for {record.get('budget')}, not for {spec.to_dict()}: "
                        "choose another --out for this budget (or remove that budget folder)")
    return record


def search_choice(cfg, data, run_fn, device="cpu") -> dict[str, Any]:
    """Run (or resume) the budget search of ``cfg`` on ``data``; ``run_fn(config)`` trains one proxy run,
    ``device`` is where the run trains (and latency is timed)."""
    from gtsp.train import distributed

    if distributed.world_size() > 1:
        raise GtspError("the budget search runs in one process: run it once without torchrun (it writes "
                        "OUT/budget/choice.json), then continue the same --out under torchrun with --resume")
    return choose(cfg, data, check_budget(cfg.budget), Path(cfg.out), run_fn, device)


def apply_choice(cfg, record: dict[str, Any]) -> None:
    """Set ``cfg``'s pruning to the chosen ratios (in place), with the options the price assumed."""
    cfg.prune = {d: float(r) for d, r in record["chosen"].items()}
    cfg.prune_args = budget_prune_args(cfg.prune_args, cfg.prune)


def achieved(record: dict[str, Any], results: dict[str, Any]) -> dict[str, Any]:
    """The ``results.json`` entry of a budget run: asked, predicted and measured cost, and why."""
    spec = BudgetSpec(**record["budget"])
    entry = {"kind": spec.kind, "target": spec.target, "chosen": record["chosen"],
             "predicted_cost": record["predicted_cost"], "reason": record["reason"], "trials": record["trials"],
             "failed_trials": record.get("failed_trials", []), "priced_on": record.get("priced_on")}
    flops, speed = results.get("flops_per_graph"), results.get("speedup")
    if flops is not None and speed is not None:
        measured = {"flops": flops["executed"] / flops["dense"], "flops_nominal": flops["nominal"] / flops["dense"],
                    "latency": 1.0 / speed["measured"]}
        entry["priced"] = spec.kind
        entry["measured_cost"] = measured[spec.kind]
        entry["measured"] = measured
        entry["within_budget"] = entry["measured_cost"] <= spec.target
    return entry
