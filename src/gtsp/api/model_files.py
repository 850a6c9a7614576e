"""Model files from Python: save, load, export a run's model, evaluate one on a dataset.

A model file is safetensors weights plus a JSON spec (:mod:`gtsp.models.files`); loading
rebuilds the architecture from the spec and never runs stored code.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gtsp.api.result import Result
from gtsp.data.info import DatasetInfo
from gtsp.errors import GtspError


@dataclass
class SavedModel:
    """A model read from a model file: the model in eval mode and the spec it was built from.

    Example:
        >>> import gtsp, tempfile, os
        >>> result = gtsp.fit("MUTAG", epochs=1, model_args={"hidden": 16, "layers": 1})
        >>> path = gtsp.save_model(result, os.path.join(tempfile.mkdtemp(), "mutag.safetensors"))
        >>> saved = gtsp.load_model(path)
        >>> saved.info.name, saved.spec["backbone"]
        ('MUTAG', 'gps')
    """

    model: nn.Module
    spec: dict[str, Any]

    def __repr__(self) -> str:
        compacted = " (compacted)" if self.spec.get("plan") else ""
        return f"SavedModel({self.spec['backbone']}{compacted} for {self.spec['dataset']}, {self.spec['hparams']})"

    @property
    def info(self) -> DatasetInfo:
        """The :class:`DatasetInfo` of the data the model was trained for."""
        return DatasetInfo.from_dict(self.spec["dataset_info"])


def save_model(model: Result | SavedModel, path: str | os.PathLike) -> Path:
    """Write a trained model (a :class:`gtsp.Result`'s deployed model, or a :class:`SavedModel`) to ``path``.

    Also writes ``path.json`` (the spec, for people to read). Returns ``path``.

    Example:
        >>> import gtsp, tempfile, os
        >>> result = gtsp.fit("MUTAG", epochs=1, model_args={"hidden": 16, "layers": 1})
        >>> gtsp.save_model(result, os.path.join(tempfile.mkdtemp(), "m.safetensors")).name
        'm.safetensors'
    """
    if isinstance(model, Result):
        return model.save(path)
    if isinstance(model, SavedModel):
        from gtsp.models.files import save_model as save

        return save(model.model, model.spec, path)
    raise GtspError(f"save_model takes a gtsp.Result or gtsp.SavedModel, not {type(model).__name__}: "
                    "for a bare backbone use gtsp.from_pyg's result or train it with gtsp.fit")


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> SavedModel:
    """The model in a model file (``gtsp export``, ``gtsp prune``, :func:`save_model`), in eval mode.

    Example:
        >>> import gtsp, tempfile, os
        >>> path = gtsp.save_model(gtsp.fit("MUTAG", epochs=1, model_args={"hidden": 16, "layers": 1}),
        ...                        os.path.join(tempfile.mkdtemp(), "m.safetensors"))
        >>> type(gtsp.load_model(path).model).__name__
        'GPS'
    """
    from gtsp.models.files import load_model as load

    model, spec = load(path, device)
    return SavedModel(model, spec)


def export_run(run_dir: str | os.PathLike, out: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Copy a finished run's model file (compacted when it pruned) to ``out`` (what ``gtsp export`` does).

    An existing ``out`` is replaced only with ``overwrite``; the run's own files never are.

    Example:
        >>> import gtsp, tempfile, os
        >>> run = tempfile.mkdtemp()
        >>> _ = gtsp.fit("MUTAG", epochs=1, model_args={"hidden": 16, "layers": 1}, out=run)
        >>> gtsp.export_run(run, os.path.join(run, "exported.safetensors")).name
        'exported.safetensors'
    """
    from gtsp.inference import export_run as export

    return export(run_dir, out, overwrite=overwrite)


def evaluate(path: str | os.PathLike, *, dataset: str | None = None, batch_size: int = 128, device: str = "cpu",
             threads: int = 1, data_root: str | None = None, cache_root: str | None = None) -> dict[str, Any]:
    """Test metric and throughput of a model file on a dataset's test split (what ``gtsp evaluate`` does).

    ``dataset`` defaults to the one the model was trained on, split as in training.

    Example:
        >>> import gtsp, tempfile, os
        >>> path = gtsp.save_model(gtsp.fit("MUTAG", epochs=1, model_args={"hidden": 16, "layers": 1}),
        ...                        os.path.join(tempfile.mkdtemp(), "m.safetensors"))
        >>> report = gtsp.evaluate(path)
        >>> report["metric"], report["graphs"]
        ('accuracy', 19)
    """
    from gtsp.inference import evaluate_exported

    return evaluate_exported(path, dataset=dataset, data_root=data_root, cache_root=cache_root,
                             batch_size=batch_size, device=device, threads=threads)
