"""Predictions from Python, on PyG graphs or on SMILES strings.

Outputs are what ``gtsp predict`` writes: class probabilities (softmax) for a multiclass
model, task probabilities (sigmoid) for a binary one, values in the labels' units for
regression. Rows follow the input order.
"""
from __future__ import annotations

import os
from collections.abc import Sequence

import torch
from torch_geometric.data import Batch, Data

from gtsp.api.model_files import SavedModel, load_model
from gtsp.api.result import Result
from gtsp.errors import GtspError

# precomputed encoding -> the attribute a graph holds it in
FEATURE_ATTRS = {"rwse": "rwse", "spd": "spd"}


def _resolve(source: Result | SavedModel | str | os.PathLike) -> SavedModel:
    """The model and spec of a result, a loaded model file, or a model file path."""
    if isinstance(source, Result):
        return SavedModel(source.deployed, source.spec)
    if isinstance(source, SavedModel):
        return source
    if isinstance(source, (str, os.PathLike)):
        return load_model(source)
    raise GtspError(f"predict takes a gtsp.Result, a gtsp.SavedModel or a model file path, "
                    f"not {type(source).__name__}")


def predict_graphs(source: Result | SavedModel | str | os.PathLike, graphs: Sequence[Data] | Batch, *,
                   batch_size: int = 128) -> torch.Tensor:
    """``[graphs, outputs]`` predictions of a model for PyG graphs (a list or a ``Batch``).

    Graphs that lack an encoding the model reads (e.g. GraphGPS's ``rwse``) get it computed
    first, on a copy.

    Example:
        >>> import gtsp
        >>> data = gtsp.load_dataset("MUTAG")
        >>> result = gtsp.fit(data, epochs=1, model_args={"hidden": 16, "layers": 1})
        >>> probabilities = gtsp.predict_graphs(result, data.test[:5])
        >>> tuple(probabilities.shape), bool(torch.allclose(probabilities.sum(1), torch.ones(5)))
        ((5, 2), True)
    """
    from gtsp.predict import predict_graphs as predict

    saved = _resolve(source)
    items = graphs.to_data_list() if isinstance(graphs, Batch) else list(graphs)
    return predict(saved.model, saved.info, _with_features(items, saved.spec.get("features", [])), batch_size)


def predict_smiles(source: Result | SavedModel | str | os.PathLike, smiles: Sequence[str], *,
                   batch_size: int = 128) -> torch.Tensor:
    r"""``[molecules, outputs]`` predictions of a molecular model; an invalid SMILES is an error naming it.

    The molecules are featurised exactly as the model's training data were (the featuriser the
    model file records must be the installed one). For a CSV with invalid rows marked instead,
    use ``gtsp predict``.

    Example (a model trained on alcohols made into a dataset as ``gtsp data build-mol`` makes one):
        >>> import gtsp, tempfile, os
        >>> from gtsp.data.mol_build import build_custom
        >>> folder = tempfile.mkdtemp()
        >>> with open(os.path.join(folder, "alcohols.csv"), "w") as table:
        ...     _ = table.write("smiles,carbons\n" + "".join(f"{'C' * n}O,{n}\n" for n in range(1, 21)))
        >>> _ = build_custom(os.path.join(folder, "alcohols.csv"), smiles_col="smiles", label_cols=["carbons"],
        ...                  name="alcohols", cache_root=folder, split="random")
        >>> result = gtsp.fit("alcohols", epochs=1, model_args={"hidden": 16, "layers": 1}, cache_root=folder)
        >>> gtsp.predict_smiles(result, ["CCO", "CCCCO"]).shape
        torch.Size([2, 1])
    """
    from gtsp.data.featurize import featurize_smiles
    from gtsp.predict import check_molecular
    from gtsp.predict import predict_graphs as predict

    saved = _resolve(source)
    check_molecular(saved.spec, "this model")
    graphs, invalid = featurize_smiles(list(smiles), saved.spec["features"])
    if invalid:
        raise GtspError(f"SMILES {smiles[invalid[0]]!r} (position {invalid[0]}) cannot be parsed by RDKit: "
                        f"fix or drop it ({len(invalid)} invalid in all)")
    return predict(saved.model, saved.info, graphs, batch_size)


def _with_features(graphs: list[Data], features: Sequence[str]) -> list[Data]:
    """``graphs``, each given (on a copy) the precomputed encodings it lacks."""
    from gtsp.data.transforms import pre_transform_for

    missing = [f for f in features if any(getattr(g, FEATURE_ATTRS[f], None) is None for g in graphs)]
    if not missing:
        return graphs
    transform, _ = pre_transform_for(missing)
    return [g if all(getattr(g, FEATURE_ATTRS[f], None) is not None for f in missing) else transform(g.clone())
            for g in graphs]
