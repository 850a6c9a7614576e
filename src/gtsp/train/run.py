"""One training run from a :class:`gtsp.config.RunConfig` to ``results.json``.

lock the run folder -> load data -> build model -> (attach sparsifier) -> train (or continue the
checkpoint) -> account -> write results -> print where they are.

Under ``torchrun`` every rank runs this same sequence (:mod:`gtsp.train.distributed`): rank 0
alone locks the folder, reads the checkpoint (and hands it to the others), measures, and writes
results and model files; every rank compacts, and ``results.json`` records each rank's digest of
its compacted model, which must all be equal.
"""
from __future__ import annotations

import logging
import math
import statistics
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from gtsp.budget import choice as budget_choice
from gtsp.config import RunConfig, check_resume
from gtsp.data.registry import GraphDataset, load_dataset
from gtsp.errors import GtspError
from gtsp.models import MODELS, build_model
from gtsp.models.files import COMPACTED_FILE, MODEL_FILE, model_spec, save_model
from gtsp.provenance import provenance
from gtsp.sparsify import CompactionPlan, CompositeSparsifier, build_sparsifier, sparsity_record, training_needs
from gtsp.train import distributed
from gtsp.train.compaction import compaction_report
from gtsp.train.notes import early_best_note, warmup_note
from gtsp.train.results import accounting, machine, missed_budget, results_table, write_results
from gtsp.train.run_folder import RunFolder
from gtsp.train.trainer import Trainer, seed_everything

log = logging.getLogger("gtsp.train")


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise GtspError("--device cuda was asked for but no CUDA GPU is visible: use --device cpu or auto")
    return torch.device(name)


def prepare_data(cfg: RunConfig) -> GraphDataset:
    """Load ``cfg.dataset`` with the encodings ``cfg.model`` needs, processing and caching them once."""
    if cfg.model not in MODELS:
        raise GtspError(f"unknown model {cfg.model!r}: choose one of {', '.join(sorted(MODELS))}")
    features = MODELS[cfg.model].required_features(cfg.model_args)
    return load_dataset(cfg.dataset, data_root=cfg.data_root, cache_root=cfg.cache_root, features=features,
                        seed=cfg.seed, folds=cfg.folds, fold=cfg.fold)


@dataclass
class RunOutcome:
    """What a finished run leaves in memory besides ``results.json``.

    Attributes:
        results: the results record (as written to ``results.json``).
        model: the trained model (the best epoch's weights; with its masks when pruned).
        compacted: the compacted model of a pruned run (None for a dense run).
        plan: the compaction plan of a pruned run (None for a dense run).
        data: the dataset the run trained on.
        spec: the model file spec of the saved model (compacted when pruned); None on ranks other than 0.
    """

    results: dict[str, Any]
    model: torch.nn.Module
    compacted: torch.nn.Module | None
    plan: CompactionPlan | None
    data: GraphDataset
    spec: dict[str, Any] | None


def run(cfg: RunConfig, progress: bool = True) -> dict[str, Any]:
    """Train as ``cfg`` says and return (and write) the results record.

    The run folder is locked for the whole run (see :class:`gtsp.train.run_folder.RunFolder`);
    the last line printed names it and the files it holds.
    """
    return execute(cfg, progress).results


def execute(cfg: RunConfig, progress: bool = True, *, data: GraphDataset | None = None,
            weights: dict[str, torch.Tensor] | None = None,
            start_weights: dict[str, Any] | None = None) -> RunOutcome:
    """:func:`run`, returning the models too; ``data`` replaces loading ``cfg.dataset`` (graphs in
    memory), ``weights`` (a backbone ``state_dict``) replaces the initialisation (fine-tuning), and
    ``start_weights`` (where those weights came from) is recorded as ``results["start_weights"]``."""
    cfg.validate()
    note = warmup_note(cfg.epochs, cfg.warmup_epochs)
    if note and distributed.is_main():
        log.warning(note)
    with distributed.session(resolve_device(cfg.device)) as device, _locked_folder(cfg) as folder:
        outcome = _run_in_folder(cfg, folder, device, progress, data, weights, start_weights)
        if folder is not None:
            print(f"run folder {folder.out}: {', '.join(folder.contents())}")
    return outcome


def build_run_model(cfg: RunConfig, info, weights: dict[str, torch.Tensor] | None = None,
                    steps_per_epoch: int = 1) -> tuple[torch.nn.Module, CompositeSparsifier | None]:
    """The model a run trains (from ``weights`` when given) with its sparsifier prepared and scheduled."""
    model = build_model(cfg.model, info, **cfg.model_args)
    if weights is not None:
        model.load_state_dict(weights, strict=True)
    sparsifier = build_sparsifier(cfg.prune, cfg.prune_args, cfg.seed)
    if sparsifier is not None:
        model = sparsifier.prepare(model)
        sparsifier.schedule(cfg.epochs, steps_per_epoch)
    return model, sparsifier


@contextmanager
def _locked_folder(cfg: RunConfig) -> Iterator[RunFolder | None]:
    """The run folder, locked and checked by rank 0 (None on the other ranks, which never write)."""
    folder = distributed.on_main(RunFolder(cfg.out, resume=cfg.resume, overwrite=cfg.overwrite).__enter__)
    try:
        yield folder
    finally:
        if folder is not None:
            folder.__exit__(None, None, None)


def _start_state(cfg: RunConfig, folder: RunFolder | None, device: torch.device) -> dict[str, Any] | None:
    """The checkpoint a ``--resume`` continues, read by rank 0 and handed to every rank."""
    if not cfg.resume:
        return None
    map_location = device if distributed.world_size() == 1 else "cpu"  # other ranks' devices differ
    return distributed.broadcast_from_main(distributed.on_main(lambda: folder.start_state(map_location)))


def _run_in_folder(cfg: RunConfig, folder: RunFolder | None, device: torch.device, progress: bool,
                   given: GraphDataset | None, weights: dict[str, torch.Tensor] | None,
                   start_weights: dict[str, Any] | None) -> RunOutcome:
    start = _start_state(cfg, folder, device)
    choice = budget_choice.saved_choice(cfg)  # a resumed budget run trains what its search chose
    if choice is not None:
        budget_choice.apply_choice(cfg, choice)
    changes = _checked_resume(start, cfg)
    if device.type == "cpu":
        # small per-graph ops: extra intra-op threads measured 1.05x slower idle, up to 30x slower
        # on a loaded machine (studies/speed/README.md); --threads raises it
        torch.set_num_threads(cfg.threads)
    data = given if given is not None else distributed.in_turn(lambda: prepare_data(cfg))  # one rank fills the cache
    if cfg.budget and choice is None:
        choice = budget_choice.search_choice(
            cfg, data, run_fn=lambda proxy: execute(proxy, progress=False, data=given, weights=weights,
                                                    start_weights=start_weights).results,
            device=device)
        budget_choice.apply_choice(cfg, choice)
    run_info = _run_info(cfg, start, changes, provenance(data.split))
    seed_everything(cfg.seed)
    model, sparsifier = build_run_model(cfg, data.info, weights, math.ceil(len(data.train) / cfg.batch_size))
    out = Path(cfg.out)
    trainer = Trainer(model, data, out, epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr,
                      weight_decay=cfg.weight_decay, warmup_epochs=cfg.warmup_epochs, grad_clip=cfg.grad_clip,
                      seed=cfg.seed, bucket_pool=cfg.bucket_pool, device=device, hooks=sparsifier, progress=progress,
                      run_info=run_info, select_from=cfg.select_from, **training_needs(cfg.prune))
    if start is not None:
        trainer.restore(start)
    fit = trainer.fit()
    results = {
        "dataset": cfg.dataset, "model": cfg.model, "seed": cfg.seed, "epochs": cfg.epochs,
        "config": cfg.to_dict(), "dataset_info": data.info.to_dict(),
        "split_sizes": {"train": len(data.train), "valid": len(data.valid), "test": len(data.test)},
        "metric": {"name": data.info.metric, "higher_is_better": data.info.higher_is_better,
                   "val": fit.val, "test": fit.test},
        "best_epoch": fit.best_epoch, "train_seconds": fit.train_seconds,
        "epoch_seconds_mean": statistics.fmean(fit.epoch_seconds),
        "sparsity": sparsity_record(cfg.prune),
        "machine": machine(), "device": str(device),
        "provenance": run_info["resumes"][-1]["provenance"] if run_info["resumes"] else run_info["provenance"],
        "resumes": run_info["resumes"],
        "distributed": {"ranks": distributed.world_size(), "backend": distributed.backend()},
    }
    if start_weights is not None:
        results["start_weights"] = start_weights
    main = distributed.is_main()
    compacted, plan, spec = None, None, None
    if sparsifier is None and main:
        results.update(accounting(model, data.test, trainer.test_batches[0], device))
    elif sparsifier is not None:
        dense = build_model(cfg.model, data.info, **cfg.model_args)
        compacted, plan, report = compaction_report(dense, model, sparsifier, data, trainer.test_batches, device,
                                                    measure=main)
        results["metric"]["test_compacted"] = report.pop("test_compacted")
        results.update(report)
        results["distributed"]["compacted_sha256"] = _compacted_digests(compacted)
        if main:
            spec = model_spec(compacted, data.info, dataset=cfg.dataset, plan=plan, extra=_spec_extra(cfg, data.info))
            save_model(compacted, spec, out / COMPACTED_FILE)
    if choice is not None:
        results["budget"] = budget_choice.achieved(choice, results)
    if main:
        write_results(out / "results.json", results)
        if sparsifier is None:
            spec = model_spec(model, data.info, dataset=cfg.dataset, extra=_spec_extra(cfg, data.info))
            save_model(model, spec, out / MODEL_FILE)
        print(results_table(results))
        for note in (early_best_note({**results, "history": fit.history}, cfg.warmup_epochs, cfg.select_from),
                     missed_budget(results)):
            if note:
                log.warning(note)
    return RunOutcome(results, model, compacted, plan, data, spec)


def _compacted_digests(compacted: torch.nn.Module) -> list[str]:
    """Every rank's digest of its compacted model, in rank order (one entry in one process)."""
    digests = distributed.all_gather(distributed.state_digest(compacted))
    if len(set(digests)) > 1:
        log.error("the ranks compacted to different models (digests %s): a sparsifier decided on statistics "
                  "that were not reduced across ranks", ", ".join(d[:12] for d in digests))
    return digests


def _spec_extra(cfg: RunConfig, info) -> dict[str, Any]:
    """What a model file records besides its architecture: the run's config, featuriser and provenance."""
    from gtsp.provenance import git_revision, package_versions

    featurizer, tasks = None, None
    if info.molecular:
        from gtsp.data.featurize import featurizer_id  # imports RDKit: molecular data only
        from gtsp.data.ogb_load import label_names

        featurizer, tasks = featurizer_id(), label_names(cfg.dataset, cfg.cache_root)
    return {"config": cfg.to_dict(), "featurizer": featurizer, "tasks": tasks, "versions": package_versions(),
            "git": git_revision()}


def _checked_resume(start: dict[str, Any] | None, cfg: RunConfig) -> dict[str, tuple[Any, Any]]:
    """The safe setting changes against the checkpoint a resume continues (others are refused)."""
    if start is None:
        return {}
    saved = start.get("run", {}).get("config")
    if saved is None:
        log.warning("the checkpoint was written by an earlier gtsp and records no config: the settings of "
                    "this resume cannot be checked against it")
        return {}
    changes = {k: v for k, v in check_resume(saved, cfg).items() if k not in ("resume", "overwrite")}
    if changes:
        log.info("--resume after epoch %d with changed settings: %s", start["trainer"]["epoch"],
                 ", ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in changes.items()))
    return changes


def _run_info(cfg: RunConfig, start: dict[str, Any] | None, changes: dict[str, tuple[Any, Any]],
              current: dict[str, Any]) -> dict[str, Any]:
    """What every checkpoint records about the run: the config in force, the provenance of its
    start, and each resume (after which epoch, what changed, its own provenance)."""
    if start is None:
        return {"config": cfg.to_dict(), "provenance": current, "resumes": []}
    saved = start.get("run", {})
    first = saved.get("provenance") or {}
    if first.get("split_sha256") not in (None, current["split_sha256"]):
        raise GtspError(f"--resume: the train/valid/test split of {cfg.dataset} differs from the checkpoint's "
                        "(other data files under --data-root, or another dataset version): resume with the "
                        "original data, or start again with --overwrite")
    resume = {"after_epoch": start["trainer"]["epoch"], "changed": {k: list(v) for k, v in changes.items()},
              "provenance": current}
    return {"config": cfg.to_dict(), "provenance": first or current, "resumes": [*saved.get("resumes", []), resume]}
