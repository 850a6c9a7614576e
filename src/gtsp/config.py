"""Run configuration: one dataclass, filled from defaults, then a YAML file, then CLI flags.

Every field can be set in YAML under its own name; ``model_args`` holds the
backbone's hyper-parameters (``hidden``, ``layers``, ``heads``, ...), ``prune``
the sparsity per dimension (fraction removed).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gtsp.errors import GtspError


@dataclass
class RunConfig:
    """Everything one training run needs."""

    model: str = "gps"
    dataset: str = "MUTAG"
    data_root: str | None = None
    cache_root: str | None = None
    out: str = "runs/latest"
    seed: int = 0
    epochs: int = 50
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 1e-5
    warmup_epochs: int = 5
    grad_clip: float = 5.0
    bucket_pool: int = 1
    threads: int = 1
    device: str = "auto"
    folds: int = 0
    fold: int = 0
    resume: bool = False
    model_args: dict[str, Any] = field(default_factory=dict)
    prune: dict[str, float] = field(default_factory=dict)
    prune_args: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> "RunConfig":
        """Refuse impossible settings with one clear line each."""
        if self.epochs < 1:
            raise GtspError(f"--epochs must be at least 1 (got {self.epochs})")
        if self.batch_size < 1:
            raise GtspError(f"--batch-size must be at least 1 (got {self.batch_size})")
        if self.lr <= 0:
            raise GtspError(f"--lr must be positive (got {self.lr})")
        if self.bucket_pool < 1:
            raise GtspError(f"--bucket-pool must be at least 1 (1 = no size bucketing; got {self.bucket_pool})")
        if self.threads < 1:
            raise GtspError(f"--threads must be at least 1 (got {self.threads})")
        if self.device not in ("auto", "cpu", "cuda"):
            raise GtspError(f"--device must be auto, cpu or cuda (got {self.device!r})")
        hidden, heads = self.model_args.get("hidden"), self.model_args.get("heads")
        if hidden is not None and heads and hidden % heads:
            raise GtspError(f"{heads} attention heads do not divide the hidden size {hidden}: "
                            "choose --heads that divides --hidden")
        for key in ("hidden", "layers"):
            if key in self.model_args and int(self.model_args[key]) < 1:
                raise GtspError(f"--{key} must be at least 1 (got {self.model_args[key]})")
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def load_yaml(path: str | Path) -> dict[str, Any]:
    """The mapping in a YAML config file, with unknown keys refused."""
    path = Path(path)
    if not path.is_file():
        raise GtspError(f"config file {path} does not exist: check the --config path")
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise GtspError(f"config file {path} is not valid YAML ({err}): fix its syntax") from None
    known = {f.name for f in dataclasses.fields(RunConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise GtspError(f"config file {path} has unknown keys {unknown}: known keys are {sorted(known)}")
    return values


def merge(base: RunConfig, overrides: dict[str, Any]) -> RunConfig:
    """``base`` with ``overrides`` applied; dict fields (``model_args``, ``prune_args`` and the
    per-dimension dicts inside it) are merged key by key."""
    return RunConfig(**_merge_dicts(base.to_dict(), overrides))


def _merge_dicts(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in overrides.items():
        both_dicts = isinstance(merged.get(key), dict) and isinstance(value, dict)
        merged[key] = _merge_dicts(merged[key], value) if both_dicts else value
    return merged
