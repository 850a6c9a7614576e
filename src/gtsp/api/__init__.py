"""gtsp's Python API: datasets, training, pruning a trained model, model files, predictions,
and PyG GraphGPS models brought in. Every name here is also reachable as ``gtsp.<name>``.

Each name's module is imported on first use, so ``import gtsp`` and the ``gtsp`` command stay light.
"""
from __future__ import annotations

import importlib
from typing import Any

# public name -> the gtsp.api module that defines it
WHERE = {"Result": "result", "SavedModel": "model_files", "build_model": "training",
         "dataset_from_graphs": "graphs", "evaluate": "model_files", "export_run": "model_files", "fit": "training",
         "from_pyg": "pyg_import", "load_dataset": "graphs", "load_model": "model_files",
         "predict_graphs": "predicting", "predict_smiles": "predicting", "prune": "pruning",
         "run_config": "training", "save_model": "model_files"}

__all__ = sorted(WHERE)


def __getattr__(name: str) -> Any:
    """The public name ``name``, importing its module on first use."""
    if name not in WHERE:
        raise AttributeError(f"module 'gtsp.api' has no attribute {name!r}")
    return getattr(importlib.import_module(f"gtsp.api.{WHERE[name]}"), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *WHERE])
