"""Exported models: save a trained (compacted when pruned) model on its own, load it, evaluate it.

An export is one file holding the module itself (so a compacted model, whose
layers have different head counts and widths, loads without its config), the
dataset info and the run config. It is a pickle: load only files you trust.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gtsp import __version__
from gtsp.accounting.latency import measure_throughput
from gtsp.data.batching import eval_batches
from gtsp.data.registry import load_dataset
from gtsp.errors import GtspError
from gtsp.train.metrics import predictions, score
from gtsp.train.trainer import predict


def export_run(run_dir: str | Path, out: str | Path) -> Path:
    """Write ``out`` from a finished run: its compacted model when it was pruned, else its best model."""
    run_dir = Path(run_dir)
    results_file = run_dir / "results.json"
    if not results_file.is_file():
        raise GtspError(f"{run_dir} holds no results.json: export a finished run (gtsp train --out DIR)")
    results = json.loads(results_file.read_text())
    source = run_dir / ("compacted.pt" if (run_dir / "compacted.pt").is_file() else "model.pt")
    model = torch.load(source, weights_only=False)
    package = {"model": model, "dataset": results["dataset"], "dataset_info": results["dataset_info"],
               "config": results["config"], "features": model.required_features(results["config"]["model_args"]),
               "gtsp_version": __version__}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(package, out)
    return out


def load_exported(path: str | Path) -> dict[str, Any]:
    """The package written by :func:`export_run` (``package["model"]`` is ready for inference)."""
    path = Path(path)
    if not path.is_file():
        raise GtspError(f"model file {path} does not exist: create it with gtsp export RUN_DIR --out {path}")
    package = torch.load(path, weights_only=False, map_location="cpu")
    if not isinstance(package, dict) or not isinstance(package.get("model"), nn.Module):
        raise GtspError(f"{path} is not a gtsp export: create one with gtsp export RUN_DIR --out FILE")
    package["model"].eval()
    return package


def evaluate_exported(path: str | Path, *, dataset: str | None = None, data_root: str | None = None,
                      cache_root: str | None = None, batch_size: int = 128, seed: int | None = None,
                      device: str = "cpu") -> dict[str, float]:
    """Test metric and throughput of an exported model on its dataset's test split."""
    package = load_exported(path)
    config = package["config"]
    data = load_dataset(dataset or package["dataset"], data_root=data_root, cache_root=cache_root,
                        features=package["features"], seed=config["seed"] if seed is None else seed,
                        folds=config["folds"], fold=config["fold"])
    model = package["model"].to(device)
    batches = eval_batches(data.test, batch_size)
    logits, labels = predict(model, batches, torch.device(device))
    metric = score(data.info, labels, predictions(data.info, logits), data.evaluator)
    speed = measure_throughput(model, batches[0], device=device)
    return {"metric": data.info.metric, "test": metric, "graphs_per_s": speed["graphs_per_s"],
            "graphs": len(data.test)}
