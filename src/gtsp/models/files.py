"""Model files: weights as a ``state_dict`` in safetensors, described by a JSON spec. No pickle.

A model file holds everything needed to rebuild the model without running any stored code:

- the weights: a plain ``state_dict`` (safetensors: tensors only, nothing executable);
- the spec (JSON, embedded in the safetensors header and also written beside it as
  ``<file>.json`` for people to read): backbone name, its typed hyper-parameters, the
  compaction plan of a pruned model, the dataset (name, :class:`DatasetInfo`, precomputed
  features, molecular featuriser and its version), package versions and git revision;
- digests of the spec and of the weights (:mod:`gtsp.models.digest`), checked on every load.

Loading builds the backbone from the spec, applies the plan (heads, neurons, layers, token
selectors) and loads the weights with ``load_state_dict(strict=True)``.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from gtsp.data.info import DatasetInfo
from gtsp.errors import GtspError
from gtsp.file_mode import as_new_file
from gtsp.models import backbone, build_model
from gtsp.models.digest import check_spec, check_weights, digest_metadata
from gtsp.sparsify import CompactionPlan, apply_plan

FORMAT = "gtsp-model"
FORMAT_VERSION = 1
SPEC_KEY = "gtsp_spec"
MODEL_FILE = "model.safetensors"  # a dense run's best model, in its run folder
COMPACTED_FILE = "compacted.safetensors"  # a pruned run's compacted model


def model_spec(model: nn.Module, info: DatasetInfo, *, dataset: str, plan: CompactionPlan | None = None,
               extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON spec of ``model`` (a backbone, compacted by ``plan`` when given)."""
    return {"format": FORMAT, "format_version": FORMAT_VERSION, "backbone": model.name,
            "hparams": model.hparams(), "plan": plan.to_dict() if plan is not None else None,
            "dataset": dataset, "dataset_info": info.to_dict(),
            "features": list(model.required_features(model.hparams())), **(extra or {})}


def save_model(model: nn.Module, spec: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write ``model``'s weights and ``spec`` to ``path`` (safetensors) and ``path.json``, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    text = json.dumps(spec, indent=2, default=float)
    _atomic(path, lambda tmp: save_file(state, tmp, metadata={SPEC_KEY: text, **digest_metadata(state, text)}))
    _atomic(spec_path(path), lambda tmp: Path(tmp).write_text(text + "\n"))
    return path


def spec_path(path: str | os.PathLike) -> Path:
    return Path(f"{path}.json")


def read_spec(path: str | os.PathLike) -> dict[str, Any]:
    """The spec stored in a model file (checked against its digest), or a clear error for anything that is not one."""
    metadata = read_header(path)
    check_spec(path, metadata, metadata[SPEC_KEY])
    try:
        spec = json.loads(metadata[SPEC_KEY])
    except ValueError as err:
        raise GtspError(f"the spec in {path} is not valid JSON ({err}): export the model again") from None
    if spec.get("format") != FORMAT or int(spec.get("format_version", 0)) > FORMAT_VERSION:
        raise GtspError(f"{path} has format {spec.get('format')} v{spec.get('format_version')}; this gtsp reads "
                        f"{FORMAT} v{FORMAT_VERSION} or older: upgrade gtsp")
    return spec


def read_header(path: str | os.PathLike) -> dict[str, str]:
    """The safetensors header metadata of a gtsp model file (spec and digests)."""
    path = Path(path)
    if not path.is_file():
        raise GtspError(f"model file {path} does not exist: write one with gtsp export RUN_DIR --out {path}")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except (SafetensorError, OSError, ValueError) as err:
        raise GtspError(f"{path} is not a gtsp model file (safetensors: {err}): give a file written by "
                        "gtsp export, or a run folder's model.safetensors / compacted.safetensors") from None
    if SPEC_KEY not in metadata:
        raise GtspError(f"{path} is a safetensors file without a gtsp spec: export it with gtsp export")
    return metadata


def build_from_spec(spec: dict[str, Any]) -> nn.Module:
    """The (compacted) architecture ``spec`` describes, with freshly initialised weights."""
    info = DatasetInfo.from_dict(spec["dataset_info"])
    backbone(spec["backbone"])  # a clear error for an unknown backbone
    model = build_model(spec["backbone"], info, **spec["hparams"])
    if spec.get("plan") is not None:
        apply_plan(model, CompactionPlan.from_dict(spec["plan"]))
    return model


def load_model(path: str | os.PathLike, device: torch.device | str = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """``(model in eval mode, spec)`` from a model file; never unpickles anything."""
    spec = read_spec(path)
    model = build_from_spec(spec)
    state = read_weights(path)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise GtspError(f"the weights in {path} do not fit the architecture its spec describes ({err}); "
                        "the file is damaged or was edited: export it again") from None
    return model.to(device).eval(), spec


def read_weights(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The ``state_dict`` stored in a model file, checked against its digest."""
    try:
        state = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as err:
        raise GtspError(f"the weights in {path} cannot be read ({err}): the file is damaged; export it again") from None
    check_weights(path, read_header(path), state)
    return state


def _atomic(path: Path, write) -> None:
    """Write through a unique temporary file in the same folder, then rename over ``path``."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        as_new_file(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
