"""Dataset names -> loaded, split graphs.

``ogbg-*`` names and datasets made by ``gtsp data build-mol`` go through OGB's own
loader, split and evaluator (:mod:`gtsp.data.ogb_load`); every other name is a TU
dataset (:mod:`gtsp.data.tu`), split by :func:`gtsp.data.splits.stratified_split`.
Molecular datasets are checked here: a binary dataset whose validation or test split
no task can be scored on is refused at load time (OGB's evaluator would raise only
after a whole epoch), and regression datasets get their training split's per-task
mean and std (``DatasetInfo.target_mean/target_std``) for target standardisation.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch_geometric.data import Data

from gtsp.data.info import DatasetInfo
from gtsp.data.paths import cache_root as resolve_cache
from gtsp.data.paths import data_root as resolve_data
from gtsp.data.safe_load import cache_loads_data_only
from gtsp.data.splits import stratified_split, unscorable_tasks
from gtsp.data.transforms import pre_transform_for
from gtsp.data.tu import KNOWN_TU, load_tu, local_raw_dir
from gtsp.errors import GtspError


@dataclass
class GraphDataset:
    """A dataset ready for training: graphs per split, its info, and OGB's evaluator when it has one."""

    info: DatasetInfo
    train: list[Data]
    valid: list[Data]
    test: list[Data]
    evaluator: Any = None
    split: dict[str, np.ndarray] = field(default_factory=dict)


def load_dataset(name: str, *, data_root: str | None = None, cache_root: str | None = None,
                 features: Sequence[str] = (), seed: int = 0, folds: int = 0, fold: int = 0) -> GraphDataset:
    """Load ``name`` with the precomputed ``features`` (e.g. ``("rwse",)``) and its split."""
    root, cache = resolve_data(data_root), resolve_cache(cache_root)
    pre_transform, tag = pre_transform_for(features)
    try:
        with cache_loads_data_only(cache):
            return _load(name, root, cache, pre_transform, tag, seed, folds, fold)
    except OSError as err:  # PyG and OGB write the processed data there
        raise GtspError(f"cannot prepare {name} in the processed-data cache {cache} ({err.strerror or err}"
                        f"{': ' + str(err.filename) if err.filename else ''}): free space there or make it "
                        "writable, or choose another with --cache-root / GTSP_CACHE") from None


def _load(name: str, root, cache, pre_transform, tag: str, seed: int, folds: int, fold: int) -> GraphDataset:
    if _is_molecular(name, cache):
        from gtsp.data.ogb_load import load_mol_dataset  # imports RDKit: only when needed

        dataset, split, evaluator = load_mol_dataset(name, data_root=root, cache_root=cache,
                                                     pre_transform=pre_transform, transform_tag=tag)
        return _from_ogb(name, dataset, split, evaluator)
    if name not in KNOWN_TU and local_raw_dir(name, root) is None and not _looks_like_tu(name):
        raise GtspError(f"unknown dataset {name!r}: known are {', '.join(KNOWN_TU)}, any ogbg-mol* "
                        "OGB dataset, or a name made by 'gtsp data build-mol'")
    graphs, info = load_tu(name, root, cache, pre_transform, tag)
    labels = np.array([int(g.y) for g in graphs])
    split = stratified_split(labels, seed, folds, fold)
    return GraphDataset(info, *(_take(graphs, split[k]) for k in ("train", "valid", "test")), split=split)


def _is_molecular(name: str, cache) -> bool:
    return name.startswith("ogbg-") or (cache / "custom" / name / "meta.json").is_file()


def _looks_like_tu(name: str) -> bool:
    """TU names are upper case with digits and dashes (NCI1, IMDB-BINARY, COLLAB...)."""
    return name.replace("-", "").replace("_", "").isalnum() and name.upper() == name


def _take(graphs: list[Data], index: np.ndarray) -> list[Data]:
    return [graphs[i] for i in index]


def _from_ogb(name: str, dataset, split: dict, evaluator) -> GraphDataset:
    graphs = [dataset[i] for i in range(len(dataset))]
    split = {k: np.asarray(v) for k, v in split.items()}
    labels = torch.cat([g.y.view(1, -1).double() for g in graphs]).numpy()
    task = "binary" if "classification" in dataset.task_type else "regression"
    if task == "binary":
        _check_scorable(name, labels, split)
    mean, std = _target_scale(labels[split["train"]]) if task == "regression" else (None, None)
    metric = evaluator.eval_metric
    info = DatasetInfo(name=name, num_node_features=graphs[0].x.size(-1),
                       num_edge_features=graphs[0].edge_attr.size(-1) if graphs[0].edge_attr is not None else 0,
                       molecular=True, task=task, num_outputs=dataset.num_tasks, metric=metric,
                       higher_is_better=metric not in ("rmse", "mae"), target_mean=mean, target_std=std)
    return GraphDataset(info, *(_take(graphs, split[k]) for k in ("train", "valid", "test")),
                        evaluator=evaluator, split=split)


def _check_scorable(name: str, labels: np.ndarray, split: dict[str, np.ndarray]) -> None:
    """Refuse a binary dataset whose validation or test split no task can be scored on."""
    for part in ("valid", "test"):
        problems = unscorable_tasks(labels, split[part], binary=True)
        if len(problems) == labels.shape[1]:
            raise GtspError(f"{name}: no task can be scored on the {part} split ({len(split[part])} molecules; "
                            f"{problems[0][1]}): ROC-AUC needs both classes: rebuild it with "
                            "'gtsp data build-mol ... --split random --overwrite' (or another --seed)")


def _target_scale(train_labels: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-task mean and std of the known training labels (std 1 where it is 0 or undefined)."""
    mean, std = [], []
    for column in train_labels.T:
        known = column[~np.isnan(column)]
        mu = float(known.mean()) if known.size else 0.0
        sigma = float(known.std()) if known.size > 1 else 0.0
        mean.append(mu)
        std.append(sigma if sigma > 0 else 1.0)
    return tuple(mean), tuple(std)
