"""Training from Python: :func:`fit` (dense, pruned or under a budget) and :func:`build_model`.

``gtsp train`` runs :func:`run_config`; :func:`fit` builds the same
:class:`gtsp.config.RunConfig` from keyword arguments and runs it, on a named dataset or on a
:class:`gtsp.data.registry.GraphDataset` of graphs in memory.
"""
from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from gtsp.api.result import Result
from gtsp.config import RunConfig
from gtsp.data.info import DatasetInfo
from gtsp.data.registry import GraphDataset
from gtsp.errors import GtspError
from gtsp.models import GraphTransformer
from gtsp.models import build_model as build_backbone

# RunConfig fields fit() sets from its own arguments; any other field may be passed as an option
_OWN = frozenset({"model", "dataset", "epochs", "seed", "model_args", "prune", "prune_args", "budget", "out"})


def build_model(model: str, info: DatasetInfo, **hparams: Any) -> GraphTransformer:
    """Backbone ``model`` (``gps``, ``graphtrans``, ``graphormer``) for a dataset's ``info``.

    ``hparams`` are the backbone's typed hyper-parameters (e.g. ``hidden``, ``layers``, ``heads``);
    each is checked, with one clear error for a wrong name or value.

    Example:
        >>> import gtsp
        >>> data = gtsp.load_dataset("MUTAG")
        >>> net = gtsp.build_model("gps", data.info, hidden=32, layers=2)
        >>> net.hparams()["hidden"], len(net.layers)
        (32, 2)
    """
    return build_backbone(model, info, **hparams)


def fit(data: str | GraphDataset = "MUTAG", *, model: str = RunConfig.model, epochs: int = RunConfig.epochs,
        seed: int = RunConfig.seed, model_args: Mapping[str, Any] | None = None,
        prune: Mapping[str, float] | None = None, prune_args: Mapping[str, Any] | None = None,
        budget: Mapping[str, Any] | None = None, out: str | os.PathLike | None = None,
        progress: bool = False, **options: Any) -> Result:
    """Train backbone ``model`` on ``data`` and return a :class:`gtsp.Result`.

    Args:
        data: a dataset name (as ``gtsp train --dataset``) or a dataset from
            :func:`gtsp.load_dataset` / :func:`gtsp.dataset_from_graphs`.
        model: ``gps``, ``graphtrans`` or ``graphormer``.
        epochs, seed: training length and the seed of initialisation and batches.
        model_args: backbone hyper-parameters, e.g. ``{"hidden": 64, "layers": 4}``.
        prune: fraction removed per dimension, e.g. ``{"head": 0.5, "layer": 0.25}``.
        prune_args: per-dimension options, e.g. ``{"layer": {"criterion": "cka"}}``.
        budget: let gtsp choose the ratios, e.g. ``{"flops": 0.5}`` (see ``--budget``).
        out: run folder for checkpoint, ``metrics.jsonl``, ``results.json`` and the model file
            (must be new or empty unless ``overwrite=True``); None trains in a temporary folder.
        progress: show a progress bar, each epoch's record and the results table (else print nothing).
        options: any other ``gtsp train`` setting by its RunConfig name: ``batch_size``, ``lr``,
            ``weight_decay``, ``warmup_epochs``, ``grad_clip``, ``device``, ``threads``,
            ``folds``, ``fold``, ``data_root``, ``cache_root``, ``overwrite``...

    Example:
        >>> import gtsp
        >>> result = gtsp.fit("MUTAG", epochs=2, model_args={"hidden": 16, "layers": 1})
        >>> 0.0 <= result.metrics["test"] <= 1.0, result.compacted is None
        (True, True)
    """
    if not isinstance(data, str):
        check_features(data, model, model_args)
    dataset = data if isinstance(data, str) else data.info.name
    cfg = make_config(dataset=dataset, model=model, epochs=epochs, seed=seed, model_args=dict(model_args or {}),
                      prune=dict(prune or {}), prune_args=dict(prune_args or {}), budget=dict(budget or {}),
                      **options)
    given = None if isinstance(data, str) else data
    return in_folder(cfg, out, lambda c: run_config(c, progress=progress, data=given), quiet=not progress)


def check_features(data: GraphDataset, model: str, model_args: Mapping[str, Any] | None) -> None:
    """Refuse a dataset whose graphs lack an encoding ``model`` reads (it was loaded for another backbone)."""
    from gtsp.api.graphs import required_features
    from gtsp.api.predicting import FEATURE_ATTRS

    first = data.train[0]
    missing = [f for f in required_features(model, model_args) if getattr(first, FEATURE_ATTRS[f], None) is None]
    if missing:
        raise GtspError(f"the graphs of {data.info.name} lack the {', '.join(missing)} encoding {model} reads: load "
                        f"them for it, e.g. gtsp.load_dataset(name, model={model!r}) or "
                        f"gtsp.dataset_from_graphs(graphs, split, model={model!r})")


def make_config(**fields: Any) -> RunConfig:
    """A :class:`RunConfig` from keyword fields, refusing names it does not have."""
    names = {f.name for f in dataclasses.fields(RunConfig)}
    unknown = sorted(set(fields) - names)
    if unknown:
        raise GtspError(f"unknown setting(s) {unknown}: choose from {', '.join(sorted(names - {'resume'}))}")
    return RunConfig(**fields)


def in_folder(cfg: RunConfig, out: str | os.PathLike | None, train, quiet: bool) -> Result:
    """``train(cfg)`` with ``cfg.out = out``, or in a temporary folder removed afterwards when ``out`` is None;
    ``quiet`` keeps what the run prints (epoch records, results table) off the standard output."""
    with contextlib.redirect_stdout(io.StringIO()) if quiet else contextlib.nullcontext():
        if out is not None:
            cfg.out = str(out)
            return train(cfg)
        with tempfile.TemporaryDirectory(prefix="gtsp-run-") as folder:
            cfg.out = folder
            result = train(cfg)
    result.out = None
    return result


def run_config(cfg: RunConfig, *, progress: bool = True, data: GraphDataset | None = None,
               weights: dict[str, torch.Tensor] | None = None, start: dict[str, Any] | None = None) -> Result:
    """Run ``cfg`` (what ``gtsp train`` does) and return its :class:`gtsp.Result`.

    ``data`` replaces loading ``cfg.dataset``; ``weights`` (a backbone ``state_dict``) replaces
    the initialisation, which is how :func:`gtsp.prune` fine-tunes a trained model; ``start``
    describes where those weights came from (``results["start_weights"]``).

    Example:
        >>> import gtsp, tempfile
        >>> from pathlib import Path
        >>> from gtsp.config import RunConfig
        >>> cfg = RunConfig(epochs=1, model_args={"hidden": 16, "layers": 1}, out=tempfile.mkdtemp())
        >>> result = gtsp.run_config(cfg, progress=False)  # prints what gtsp train prints
        {"epoch": 1, ...}
        ...
        >>> result.results["epochs"], result.out == Path(cfg.out)
        (1, True)
    """
    from gtsp.train.run import execute

    outcome = execute(cfg, progress, data=data, weights=weights, start_weights=start)
    return Result(outcome.results, outcome.model, outcome.compacted, outcome.plan, outcome.data.info,
                  outcome.spec or {}, Path(cfg.out))
