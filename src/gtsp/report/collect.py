"""Read every ``results.json`` under a folder into flat :class:`Run` records.

A run's *setting* is its configuration without what only tells repeats apart (seed, fold)
or where files and threads went; the device that really ran it counts (speeds differ).
Runs sharing dataset, backbone and setting are repeats of one experiment. Its *dense
reference* is the same setting without pruning.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gtsp.errors import GtspError

NOT_SETTING = ("seed", "fold", "out", "data_root", "cache_root", "resume", "threads", "device")
ADDED_FIELDS = ("select_from",)  # RunConfig fields newer than committed runs: their default equals absence


def dimension_names() -> tuple[str, ...]:
    """The registered pruning dimensions, in registry order."""
    from gtsp.sparsify import registry

    return registry.names()


@dataclass(frozen=True)
class Run:
    """The numbers of one finished run that a report compares."""

    path: Path                   # its run folder
    dataset: str
    model: str
    pair: tuple[int, int, int]   # (seed, folds, fold): runs with the same pair are compared one to one
    metric: str
    higher_is_better: bool
    test: float
    val: float
    params: float                # nonzero parameters of the model one deploys (the compacted one when pruned)
    flops: float                 # counted FLOPs per graph (density-weighted when weights are masked)
    flops_structural: float      # what the deployed model computes (differs from flops under weight masks)
    speedup: float | None        # dense vs compacted, timed in the same process (pruned runs only)
    budget_miss: str | None      # a budget run that missed its budget: what was asked and what it got
    prune: dict[str, float]      # nonzero ratios only
    attention: bool              # False: the attention-free baseline
    setting: str                 # canonical JSON of the setting
    dense_setting: str           # the setting of its dense reference
    config: dict[str, Any] = field(repr=False)

    @property
    def kind(self) -> str:
        """``dense``, ``baseline``, one dimension name, ``joint``, or ``budget`` (ratios chosen by gtsp)."""
        if not self.attention:
            return "baseline"
        if self.config.get("budget"):
            return "budget"
        dims = [d for d in dimension_names() if d in self.prune]
        return "dense" if not dims else dims[0] if len(dims) == 1 else "joint"


def collect(root: str | Path) -> tuple[list[Run], list[str]]:
    """Every run under ``root`` and a warning line per ``results.json`` that could not be read."""
    root = Path(root)
    if not root.is_dir():
        raise GtspError(f"{root} is not a folder: give the folder holding your run folders (e.g. runs/)")
    runs, warnings = [], []
    for path in sorted(root.rglob("results.json")):
        if _is_budget_proxy(path.parent):
            continue  # a budget search's short trial run, not an experiment
        try:
            runs.append(to_run(path.parent, json.loads(path.read_text())))
        except (ValueError, KeyError, TypeError) as err:
            warnings.append(f"skipped {path}: not a complete gtsp results file ({type(err).__name__}: {err})")
    if not runs:
        raise GtspError(f"no readable results.json under {root}: run gtsp train or gtsp sweep into it first")
    return runs, warnings


def _is_budget_proxy(run_dir: Path) -> bool:
    from gtsp.budget.spec import SEARCH_DIR  # plain constants: the report never needs Optuna

    return run_dir.name.startswith("proxy-") and run_dir.parent.name == SEARCH_DIR


def to_run(run_dir: Path, results: dict[str, Any]) -> Run:
    """The :class:`Run` of one ``results.json`` (``run_dir`` is where it lies)."""
    cfg = normalised_config(results)
    flops, params = results["flops_per_graph"], results["params"]
    prune = {d: float(r) for d, r in (cfg.get("prune") or {}).items() if r}
    pruned = "speedup" in results
    setting = setting_of(cfg, results.get("device"))
    return Run(
        path=run_dir, dataset=results["dataset"], model=results["model"],
        pair=(int(results["seed"]), int(cfg.get("folds", 0)), int(cfg.get("fold", 0))),
        metric=results["metric"]["name"], higher_is_better=bool(results["metric"]["higher_is_better"]),
        test=float(results["metric"]["test"]), val=float(results["metric"]["val"]),
        params=float(params["compacted_nonzero"] if pruned else params["nonzero"]),
        flops=float(flops["pruned"] if pruned else flops["dense"]),
        flops_structural=float(flops.get("structural", flops["pruned"] if pruned else flops["dense"])),
        speedup=float(results["speedup"]["measured"]) if pruned else None, budget_miss=_budget_miss(results),
        prune=prune, attention=(cfg.get("model_args") or {}).get("attention", True) is not False,
        setting=setting, dense_setting=dense_setting_of(cfg, results.get("device")), config=cfg)


def normalised_config(results: dict[str, Any]) -> dict[str, Any]:
    """The run's config as today's code would write it, so runs of older and newer code compare.

    A field added later is left out where it holds its default (older runs lack it), and a FLOPs
    budget searched before budgets priced executed FLOPs (no ``priced`` in its record) is named
    what it priced: ``flops_nominal``.
    """
    from gtsp.config import RunConfig

    cfg = dict(results["config"])
    for name in ADDED_FIELDS:
        if name in cfg and cfg[name] == getattr(RunConfig, name):
            del cfg[name]
    record = results.get("budget")
    budget = dict(cfg.get("budget") or {})
    if "flops" in budget and isinstance(record, dict) and "priced" not in record:
        budget["flops_nominal"] = budget.pop("flops")
        cfg["budget"] = budget
    return cfg


def _budget_miss(results: dict[str, Any]) -> str | None:
    budget = results.get("budget")
    if not isinstance(budget, dict) or budget.get("within_budget") is not False:
        return None
    got = budget.get("measured_cost")
    got_text = f"{got:.3f}" if isinstance(got, (int, float)) else "not measured"
    return f"missed budget: asked {budget.get('kind')} <= {budget.get('target')} of dense, got {got_text}"


def setting_of(cfg: dict[str, Any], device: str | None) -> str:
    """Canonical JSON of what makes runs repeats of one experiment.

    Zero ratios count as unpruned, options of unused dimensions are dropped, and
    ``attention: true`` (the default) is the same as leaving it out.
    """
    prune = {d: r for d, r in (cfg.get("prune") or {}).items() if r}
    prune_args = {d: a for d, a in (cfg.get("prune_args") or {}).items() if d in prune}
    if cfg.get("budget"):  # what was asked makes the experiment; the choice may differ per fold
        prune, prune_args = {}, {}
    model_args = {k: v for k, v in (cfg.get("model_args") or {}).items() if not (k == "attention" and v is True)}
    kept = {k: v for k, v in cfg.items() if k not in NOT_SETTING and not (k == "budget" and not v)}
    return json.dumps({**kept, "model_args": model_args, "prune": prune, "prune_args": prune_args,
                       "device": device}, sort_keys=True)


def dense_setting_of(cfg: dict[str, Any], device: str | None) -> str:
    """The setting of the dense reference: unpruned, with attention (so also the baseline's reference)."""
    model_args = {k: v for k, v in (cfg.get("model_args") or {}).items() if k != "attention"}
    return setting_of({**cfg, "model_args": model_args, "prune": {}, "prune_args": {}, "budget": {}}, device)
