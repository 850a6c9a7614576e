"""Datasets for the Python API: a named dataset, or graphs already in memory with the user's split.

Both give a :class:`gtsp.data.registry.GraphDataset` (train / valid / test lists of PyG ``Data``
plus a :class:`gtsp.data.info.DatasetInfo`) carrying the precomputed encodings the chosen
backbone needs (e.g. GraphGPS's random-walk encoding), so :func:`gtsp.fit` trains on either.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch_geometric.data import Data

from gtsp.data.info import DatasetInfo
from gtsp.data.registry import GraphDataset
from gtsp.data.transforms import pre_transform_for
from gtsp.errors import GtspError
from gtsp.models import backbone, check_hparams

SPLITS = ("train", "valid", "test")
TASKS = ("multiclass", "regression")


def required_features(model: str, model_args: Mapping[str, Any] | None) -> tuple[str, ...]:
    """The precomputed encodings backbone ``model`` with ``model_args`` reads (e.g. ``("rwse",)``)."""
    check_hparams(model, dict(model_args or {}))
    return tuple(backbone(model).required_features(dict(model_args or {})))


def load_dataset(name: str = "MUTAG", *, model: str = "gps", model_args: Mapping[str, Any] | None = None,
                 seed: int = 0, folds: int = 0, fold: int = 0, data_root: str | None = None,
                 cache_root: str | None = None) -> GraphDataset:
    """Dataset ``name`` split as ``gtsp train`` splits it, with the encodings ``model`` needs.

    ``name`` is a TU name (MUTAG ships with gtsp), an ``ogbg-mol*`` name or a dataset made by
    ``gtsp data build-mol``; ``folds``/``fold`` pick a K-fold split of a TU dataset.

    Example:
        >>> import gtsp
        >>> data = gtsp.load_dataset("MUTAG")
        >>> len(data.train), len(data.valid), len(data.test), data.info.metric
        (150, 19, 19, 'accuracy')
    """
    from gtsp.data.registry import load_dataset as load

    return load(name, data_root=data_root, cache_root=cache_root, features=required_features(model, model_args),
                seed=seed, folds=folds, fold=fold)


def dataset_from_graphs(graphs: Sequence[Data], split: Mapping[str, Sequence[int]], *, task: str | None = None,
                        model: str = "gps", model_args: Mapping[str, Any] | None = None,
                        name: str = "graphs") -> GraphDataset:
    """A dataset of PyG graphs in memory, split by the indices in ``split`` (keys train, valid, test).

    Each graph needs ``x`` (float node features), ``edge_index`` and ``y``; ``edge_attr`` when
    the graphs have edge features. ``task`` is ``"multiclass"`` (one integer class per graph,
    scored by accuracy) or ``"regression"`` (float targets, scored by MAE); by default integer
    labels mean multiclass and float labels regression. The graphs are copied and given the
    encodings ``model`` needs; the originals are not changed.

    Example:
        >>> import gtsp, torch
        >>> from torch_geometric.data import Data
        >>> ring = torch.tensor([[0, 1, 2, 1, 2, 0], [1, 2, 0, 0, 1, 2]])
        >>> graphs = [Data(x=torch.rand(3, 4), edge_index=ring, y=torch.tensor([i % 2])) for i in range(12)]
        >>> data = gtsp.dataset_from_graphs(graphs, {"train": range(8), "valid": [8, 9], "test": [10, 11]})
        >>> data.info.task, data.info.num_outputs, len(data.train)
        ('multiclass', 2, 8)
    """
    graphs = list(graphs)
    index = _checked_split(split, len(graphs))
    _check_graphs(graphs)
    task = task or ("multiclass" if not torch.is_floating_point(graphs[0].y) else "regression")
    if task not in TASKS:
        raise GtspError(f"task {task!r} is not supported for graphs in memory: choose one of {', '.join(TASKS)}")
    transform, _ = pre_transform_for(required_features(model, model_args))
    ready = [transform(g.clone()) if transform is not None else g.clone() for g in graphs]
    info = _info(name, ready, index["train"], task)
    return GraphDataset(info, *([ready[i] for i in index[part]] for part in SPLITS),
                        split={part: np.asarray(index[part]) for part in SPLITS})


def _checked_split(split: Mapping[str, Sequence[int]], count: int) -> dict[str, list[int]]:
    """``split`` as lists of indices, each part non-empty, in range and disjoint from the others."""
    missing = [part for part in SPLITS if part not in split]
    if missing or set(split) - set(SPLITS):
        raise GtspError(f"split has keys {sorted(split)}: give exactly train, valid and test index lists")
    index = {part: [int(i) for i in split[part]] for part in SPLITS}
    for part, items in index.items():
        if not items:
            raise GtspError(f"the {part} split is empty: give it at least one graph index")
        outside = [i for i in items if not 0 <= i < count]
        if outside:
            raise GtspError(f"the {part} split names graph {outside[0]}, but there are {count} graphs (0..{count - 1})")
    shared = (set(index["train"]) & set(index["valid"])) | (set(index["train"]) & set(index["test"])) \
        | (set(index["valid"]) & set(index["test"]))
    if shared:
        raise GtspError(f"graph {min(shared)} is in two splits: train, valid and test must not overlap")
    return index


def _check_graphs(graphs: list[Data]) -> None:
    """Every graph has ``x``, ``edge_index`` and ``y`` of the same widths as the first one's."""
    if not graphs:
        raise GtspError("no graphs given: pass a list of torch_geometric.data.Data")
    first = graphs[0]
    for k, g in enumerate(graphs):
        if not isinstance(g, Data) or g.x is None or g.edge_index is None or g.y is None:
            raise GtspError(f"graph {k} is not a PyG Data with x, edge_index and y: give every graph all three")
        if g.x.dim() != 2 or g.x.size(1) != first.x.size(1):
            raise GtspError(f"graph {k} has x of shape {tuple(g.x.shape)}, graph 0 has {tuple(first.x.shape)}: "
                            "every graph needs the same node-feature width")
        if (g.edge_attr is None) != (first.edge_attr is None):
            raise GtspError(f"graph {k} and graph 0 differ in having edge_attr: give it to all graphs or none")
        if g.edge_attr is not None and g.edge_attr.dim() != 2:
            raise GtspError(f"graph {k} has edge_attr of shape {tuple(g.edge_attr.shape)}: give [edges, features]")


def _info(name: str, graphs: list[Data], train: list[int], task: str) -> DatasetInfo:
    """The :class:`DatasetInfo` of in-memory graphs (regression targets scaled by the training split)."""
    first = graphs[0]
    edges = first.edge_attr.size(1) if first.edge_attr is not None else 0
    if task == "multiclass":
        labels = torch.cat([g.y.view(-1) for g in graphs])
        if torch.is_floating_point(labels) and not torch.equal(labels, labels.round()):
            raise GtspError("multiclass labels must be whole class numbers 0..K-1: give task='regression' for "
                            "real-valued targets")
        if labels.min() < 0:
            raise GtspError(f"class label {int(labels.min())} is negative: number classes 0..K-1")
        return DatasetInfo(name, first.x.size(1), edges, False, task, int(labels.max()) + 1, "accuracy", True)
    targets = torch.stack([graphs[i].y.view(-1).double() for i in train])
    mean = tuple(float(v) for v in targets.nanmean(0))
    std = tuple(float(v) if v > 0 else 1.0 for v in targets.std(0, unbiased=False).nan_to_num(1.0))
    return DatasetInfo(name, first.x.size(1), edges, False, task, targets.size(1), "mae", False, mean, std)
