"""Choosing the ratios under a budget: price every combination, then try the affordable ones.

1. :mod:`gtsp.budget.cost` prices every combination of the ratio grids exactly (executed FLOPs
   or measured latency, both for the structured dimensions only, since unstructured weight
   sparsity saves neither; or nominal FLOPs, which count weight zeros as saved).
2. The affordable combinations that use most of the budget (within :data:`FRONTIER_BAND` of it)
   form the shortlist: one that leaves a large part of the budget unused prunes more than it
   must. The cheapest affordable ones are kept when none is that close.
3. An Optuna study (TPE, seeded) tries shortlisted combinations on short proxy runs (the run's
   own config, ``proxy_epochs`` epochs, its sparsifiers scheduled over those epochs) and keeps
   the best validation metric, ties to the cheaper. The first trials are queued: each single
   dimension alone at its cheapest affordable ratio (the paper's one-dimension-at-a-time
   setting), then the most balanced combination (the smallest largest ratio), so the choice
   is always compared with the single dimensions at the same budget.

The study lives in a journal file in the run folder (or ``storage``), so an interrupted search
resumes: finished proxy runs are not repeated, an interrupted one resumes from its checkpoint.
"""
from __future__ import annotations

import copy
import json
import logging
import shutil
from pathlib import Path
from typing import Any

import optuna
from torch_geometric.data import Batch

from gtsp.budget.cost import COST_GRAPHS, Candidate, flops_candidates, latency_candidates, priced_dimensions
from gtsp.budget.spec import CHOICE_FILE, SEARCH_DIR, BudgetSpec
from gtsp.errors import GtspError
from gtsp.sparsify import registry
from gtsp.storage import open_storage

log = logging.getLogger("gtsp.budget")
FRONTIER_BAND = 0.15
MAX_ASKS = 2000  # sampler proposals outside the shortlist cost nothing (no training) but are capped


def price(cfg, data, spec: BudgetSpec, device) -> list[Candidate]:
    """Every combination with its cost (fraction of dense) on this run's validation split (timed on ``device``)."""
    if spec.kind != "latency":
        return flops_candidates(cfg.model, data.info, cfg.model_args, data.valid, nominal=spec.counts_unexecuted)
    batch = Batch.from_data_list(data.valid[: cfg.batch_size])
    return latency_candidates(cfg.model, data.info, cfg.model_args, batch, device)


def priced_on(cfg, data, spec: BudgetSpec, device) -> str:
    """What the prices were measured on, in words (for the record)."""
    if spec.kind != "latency":
        which = "nominal FLOPs (masked weights at their density)" if spec.counts_unexecuted else "executed FLOPs"
        return f"{which} counted per graph on {min(COST_GRAPHS, len(data.valid))} validation graphs"
    from gtsp.train.results import machine

    where = machine()
    return (f"inference time of one batch of {min(cfg.batch_size, len(data.valid))} validation graphs "
            f"(--batch-size {cfg.batch_size}) on {device} ({where.get('gpu') or where['processor']}, "
            f"{where['threads']} thread(s)), relative to dense timed alongside")


def _cached_prices(cfg, data, spec: BudgetSpec, path: Path, device) -> list[Candidate]:
    """Prices from an interrupted search's folder, else priced now (a resumed search keeps its shortlist)."""
    if path.is_file():
        return [Candidate(c["ratios"], c["cost"]) for c in json.loads(path.read_text())]
    candidates = price(cfg, data, spec, device)
    path.write_text(json.dumps([{"ratios": c.ratios, "cost": c.cost} for c in candidates]) + "\n")
    return candidates


def shortlist(candidates: list[Candidate], target: float) -> list[Candidate]:
    """The affordable combinations that use most of the budget; a clear error when none is affordable."""
    affordable = [c for c in candidates if c.cost <= target]
    if not affordable:
        cheapest = min(candidates, key=lambda c: c.cost)
        raise GtspError(f"no pruning combination brings the cost to {target:.2f} of dense: the cheapest, "
                        f"{cheapest.label}, costs {cheapest.cost:.3f}; raise the budget")
    near = [c for c in affordable if c.cost >= target - FRONTIER_BAND]
    return near or sorted(affordable, key=lambda c: -c.cost)[:10]


def first_trials(short: list[Candidate]) -> list[Candidate]:
    """Each single dimension at its cheapest affordable ratio, then the most balanced combination."""
    singles = {}
    for c in sorted(short, key=lambda c: -c.cost):
        if len(c.ratios) == 1:
            singles.setdefault(next(iter(c.ratios)), c)
    balanced = min(short, key=lambda c: (max(c.ratios.values(), default=0.0), -c.cost))
    return [*singles.values(), *([balanced] if balanced not in singles.values() else [])]


def choose(cfg, data, spec: BudgetSpec, out: Path, run_fn, device="cpu") -> dict[str, Any]:
    """Run (or resume) the search for ``cfg`` and return the choice record (also written to the folder);
    ``run_fn(config)`` trains one proxy run, ``device`` is where latency is timed."""
    folder = Path(out) / SEARCH_DIR
    record_file = folder / CHOICE_FILE
    if record_file.is_file():
        return json.loads(record_file.read_text())
    folder.mkdir(parents=True, exist_ok=True)
    candidates = _cached_prices(cfg, data, spec, folder / "prices.json", device)
    try:
        short = shortlist(candidates, spec.target)
    except GtspError:
        if not any(folder.glob("*.journal")):  # nothing searched yet: leave no folder that blocks the retry
            shutil.rmtree(folder)
        raise
    by_label = {c.label: c for c in short}
    study = _study(spec, folder, data.info.higher_is_better)
    if not study.trials:
        for candidate in first_trials(short)[: spec.trials]:
            study.enqueue_trial(_params(candidate, spec), skip_if_exists=True)
    _run_trials(study, cfg, spec, folder, by_label, run_fn)
    record = _record(study, spec, candidates, short, data.info.higher_is_better)
    record["priced_on"] = priced_on(cfg, data, spec, device)
    record_file.write_text(json.dumps(record, indent=2) + "\n")
    return record


def _study(spec: BudgetSpec, folder: Path, maximize: bool) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    storage = open_storage(spec.storage or str(folder / "search.journal"))
    return optuna.create_study(study_name=f"budget-{spec.kind}-{spec.target:g}", storage=storage,
                               sampler=optuna.samplers.TPESampler(seed=0), load_if_exists=True,
                               direction="maximize" if maximize else "minimize")


def _dims(spec: BudgetSpec) -> list[str]:
    return [d.name for d in priced_dimensions(spec.counts_unexecuted)]


def _params(candidate: Candidate, spec: BudgetSpec) -> dict[str, float]:
    return {d: candidate.ratios.get(d, 0.0) for d in _dims(spec)}


def _choices(dimension: str) -> list[float]:
    return list(registry.dimension(dimension).ratios)


def _requeue_interrupted(study: optuna.Study) -> None:
    """A trial left RUNNING by a killed search (the run folder's lock rules out a live one) is retried;
    the killed one is failed without an ``error``, which is what tells it apart from a proxy that failed."""
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        study.enqueue_trial(trial.params or trial.system_attrs.get("fixed_params", {}),
                            user_attrs={k: v for k, v in trial.user_attrs.items() if k != "label"})
        study.tell(trial.number, state=optuna.trial.TrialState.FAIL)


def _completed(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))


def _tried(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """Trials that trained a proxy run, finished or failed (not those a killed search interrupted)."""
    return [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,
                                                                 optuna.trial.TrialState.FAIL))
            if "label" in t.user_attrs and (t.state == optuna.trial.TrialState.COMPLETE or "error" in t.user_attrs)]


def _run_trials(study, cfg, spec: BudgetSpec, folder: Path, by_label: dict[str, Candidate], run_fn) -> None:
    _requeue_interrupted(study)
    for _ in range(MAX_ASKS):
        if len(_tried(study)) >= min(spec.trials, len(by_label)):
            return
        trial = study.ask()
        ratios = {d: trial.suggest_categorical(d, _choices(d)) for d in _dims(spec)}
        label = Candidate({d: r for d, r in ratios.items() if r}, 0.0).label
        if label not in by_label or any(t.user_attrs.get("label") == label for t in _tried(study)):
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            continue
        trial.set_user_attr("label", label)
        trial.set_user_attr("cost", by_label[label].cost)
        try:
            value = _proxy(cfg, spec, folder, by_label[label], run_fn)
        except GtspError as err:  # e.g. a schedule that needs more epochs than the proxy has
            trial.set_user_attr("error", str(err))
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            log.warning("budget trial %s failed and is left out: %s", label, err)
            continue
        study.tell(trial, value)
        log.info("budget trial %s: cost %.3f of dense, proxy validation %.4f", label, by_label[label].cost, value)


def _proxy(cfg, spec: BudgetSpec, folder: Path, candidate: Candidate, run_fn) -> float:
    """Validation metric of a short run of ``cfg`` pruned as ``candidate`` says (resumed if interrupted)."""
    proxy = copy.deepcopy(cfg)
    out = folder / f"proxy-{candidate.label}"
    proxy.epochs = spec.epochs_for(cfg.epochs)
    proxy.warmup_epochs = min(cfg.warmup_epochs, proxy.epochs // 2)
    proxy.out, proxy.budget = str(out), {}
    proxy.resume, proxy.overwrite = (out / "checkpoint.pt").is_file(), False
    proxy.prune = dict(candidate.ratios)
    proxy.prune_args = budget_prune_args(cfg.prune_args, candidate.ratios)
    return float(run_fn(proxy)["metric"]["val"])


def budget_prune_args(prune_args: dict[str, Any], ratios: dict[str, float]) -> dict[str, Any]:
    """The run's pruning options for the chosen dimensions, with the options each price assumed
    (``budget_options``, e.g. weight masks per layer), so the priced cost holds."""
    args = {d: dict(o) for d, o in prune_args.items() if d in ratios}
    for name in ratios:
        assumed = registry.dimension(name).budget_options
        if assumed:
            args.setdefault(name, {}).update(assumed)
    return args


def _record(study: optuna.Study, spec: BudgetSpec, candidates: list[Candidate], short: list[Candidate],
            maximize: bool) -> dict[str, Any]:
    trials = [{"ratios": _ratios_of(t.user_attrs["label"]), "cost": t.user_attrs["cost"], "proxy_val": t.value}
              for t in _completed(study)]
    if not trials:
        errors = sorted({t.user_attrs.get("error", "interrupted") for t in _tried(study)})
        raise GtspError(f"every proxy run of the budget search failed ({'; '.join(errors)}): fix that cause "
                        "(e.g. raise proxy_epochs), then continue with --resume")
    rank = lambda t: (-t["proxy_val"] if maximize else t["proxy_val"], t["cost"])  # noqa: E731 better, then cheaper
    best = min(trials, key=rank)
    singles = [t for t in trials if len(t["ratios"]) == 1]
    epochs = spec.proxy_epochs or "a tenth of the run's"
    reason = (f"best proxy validation metric ({best['proxy_val']:.4f}) of {len(trials)} affordable combinations "
              f"tried, each trained {epochs} epochs")
    if singles:
        reason += f"; the best single dimension reached {min(singles, key=rank)['proxy_val']:.4f}"
    failed = [{"ratios": _ratios_of(t.user_attrs["label"]), "cost": t.user_attrs["cost"],
               "error": t.user_attrs.get("error")} for t in _tried(study) if t.state == optuna.trial.TrialState.FAIL]
    return {"budget": spec.to_dict(), "chosen": best["ratios"], "predicted_cost": best["cost"], "reason": reason,
            "trials": trials, "failed_trials": failed, "priced": len(candidates), "affordable_shortlist": len(short)}


def _ratios_of(label: str) -> dict[str, float]:
    if label == "dense":
        return {}
    return {d: float(r) for d, r in (item.split("=") for item in label.split(","))}
