"""Exported models: a run's model as one file, evaluated on a dataset with a check that it fits.

An export is a model file (:mod:`gtsp.models.files`): safetensors weights plus a JSON spec
(backbone, hyper-parameters, compaction plan, dataset info, provenance). Loading it runs no
stored code.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from gtsp.accounting.latency import measure_throughput
from gtsp.data.batching import eval_batches
from gtsp.data.info import DatasetInfo
from gtsp.data.registry import load_dataset
from gtsp.errors import GtspError
from gtsp.file_mode import as_new_file
from gtsp.models.digest import digest_metadata
from gtsp.models.files import (COMPACTED_FILE, MODEL_FILE, SPEC_KEY, load_model, read_header, read_spec, read_weights,
                               save_model, spec_path)
from gtsp.train.metrics import predictions, score
from gtsp.train.trainer import predict

# What a model's input and output layers were built for; a dataset must match all of them.
SHAPE_FIELDS = ("num_node_features", "num_edge_features", "molecular", "task", "num_outputs")


def run_model_file(run_dir: str | Path) -> Path:
    """The model file of a finished run: the compacted model when the run pruned, else its best model."""
    run_dir = Path(run_dir)
    results_file = run_dir / "results.json"
    if not results_file.is_file():
        raise GtspError(f"{run_dir} holds no results.json: export a finished run (gtsp train --out DIR)")
    try:
        results = json.loads(results_file.read_text())
    except json.JSONDecodeError as err:
        raise GtspError(f"{results_file} is not valid JSON ({err}): the run did not finish writing it") from None
    pruned = any(float(v) for v in (results.get("sparsity") or {}).values())
    source = run_dir / (COMPACTED_FILE if pruned else MODEL_FILE)
    if not source.is_file():
        raise GtspError(f"{run_dir} has no {source.name} although its results.json says it was "
                        f"{'pruned' if pruned else 'dense'}: rerun it with --overwrite")
    return source


def export_run(run_dir: str | Path, out: str | Path, *, overwrite: bool = False) -> Path:
    """Write ``out`` (and ``out.json``) from a finished run, with the run's provenance in the spec.

    The weights are checked against the digests in the run's file, and the export carries the
    digests of its weights and spec (added for files written before digests existed). An existing
    ``out`` is replaced only with ``overwrite``; a file of the run folder itself never is. Both
    files are written to temporary names first and renamed only once both are complete.
    """
    source = run_model_file(run_dir)
    read_spec(source)  # refuses a damaged file before copying it
    out = Path(out)
    _check_export_target(Path(run_dir), out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    metadata, state = read_header(source), read_weights(source)
    metadata.update(digest_metadata(state, metadata[SPEC_KEY]))
    _write_both(out, lambda tmp: save_file(state, tmp, metadata=metadata),
                lambda tmp: Path(tmp).write_text(metadata[SPEC_KEY] + "\n"))
    return out


def _check_export_target(run_dir: Path, out: Path, overwrite: bool) -> None:
    """Refuse an ``out`` that is a folder, a file of the run folder, or an existing file without ``overwrite``."""
    if out.is_dir():
        raise GtspError(f"--out {out} is a folder: give a file name, e.g. --out {out / 'model.safetensors'}")
    for target in (out, spec_path(out)):
        if target.exists() and target.resolve().parent == run_dir.resolve():
            raise GtspError(f"--out {out} would replace {target.name} of the run folder {run_dir}: "
                            "write the export outside it, e.g. --out model.safetensors")
        if target.exists() and not overwrite:
            raise GtspError(f"{target} already exists: choose another --out, or pass --overwrite to replace it")


def _write_both(out: Path, write_model, write_spec) -> None:
    """Write the model file and its spec beside it through temporary files; rename both only once both are whole."""
    temporaries = []
    try:
        for target, write in ((out, write_model), (spec_path(out), write_spec)):
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
            os.close(fd)
            temporaries.append((tmp, target))
            write(tmp)
            as_new_file(tmp)
        for tmp, target in temporaries:
            os.replace(tmp, target)
    finally:
        for tmp, _ in temporaries:
            if os.path.exists(tmp):
                os.unlink(tmp)


def check_dataset_fits(spec: dict[str, Any], info: DatasetInfo, dataset: str) -> None:
    """Refuse a dataset whose features or task differ from what the model was trained for."""
    trained = spec["dataset_info"]
    found = info.to_dict()
    wrong = [f"{k}: model {trained.get(k)!r}, {dataset} {found.get(k)!r}" for k in SHAPE_FIELDS
             if trained.get(k) != found.get(k)]
    if wrong:
        raise GtspError(f"this model was trained on {spec['dataset']} and does not fit {dataset} "
                        f"({'; '.join(wrong)}): evaluate it on {spec['dataset']} or a dataset of the same shape")


def evaluate_exported(path: str | Path, *, dataset: str | None = None, data_root: str | None = None,
                      cache_root: str | None = None, batch_size: int = 128, seed: int | None = None,
                      device: str = "cpu", threads: int = 1) -> dict[str, Any]:
    """Test metric and throughput of a model file on its dataset's test split (timed like ``gtsp train``)."""
    if device == "cpu":
        torch.set_num_threads(threads)
    model, spec = load_model(path, device)
    config = spec.get("config") or {}
    name = dataset or spec["dataset"]
    data = load_dataset(name, data_root=data_root, cache_root=cache_root, features=spec["features"],
                        seed=config.get("seed", 0) if seed is None else seed,
                        folds=config.get("folds", 0), fold=config.get("fold", 0))
    check_dataset_fits(spec, data.info, name)
    batches = eval_batches(data.test, batch_size)
    logits, labels = predict(model, batches, torch.device(device))
    metric = score(data.info, labels, predictions(data.info, logits), data.evaluator)
    speed = measure_throughput(model, batches[0], device=device)
    return {"metric": data.info.metric, "test": metric, "graphs_per_s": speed["graphs_per_s"],
            "graphs": len(data.test), "threads": torch.get_num_threads()}


__all__ = ["check_dataset_fits", "evaluate_exported", "export_run", "load_model", "run_model_file", "save_model"]
