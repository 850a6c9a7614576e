"""Run configuration: one dataclass, filled from defaults, then a YAML file, then CLI flags.

Every field can be set in YAML under its own name; ``model_args`` holds the
backbone's hyper-parameters (``hidden``, ``layers``, ``heads``, ...), ``prune``
the sparsity per dimension (fraction removed). :meth:`RunConfig.validate` checks every
value's type and range, reading numbers the way YAML 1.1 writes them (PyYAML reads
``1e-3`` as a string), and refuses what cannot be what the user meant.
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gtsp.errors import GtspError
from gtsp.typed_values import coerce


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
    select_from: int = 1
    grad_clip: float = 5.0
    bucket_pool: int = 1
    threads: int = 1
    device: str = "auto"
    folds: int = 0
    fold: int = 0
    resume: bool = False
    overwrite: bool = False
    model_args: dict[str, Any] = field(default_factory=dict)
    prune: dict[str, float] = field(default_factory=dict)
    prune_args: dict[str, Any] = field(default_factory=dict)
    budget: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> "RunConfig":
        """Check every field, turn YAML-1.1 number strings into numbers (in place), return self.

        Each refusal is one line naming the field, the value and what is allowed.
        """
        hints = typing.get_type_hints(RunConfig)
        for f in dataclasses.fields(self):
            value = _typed(f.name, getattr(self, f.name), hints[f.name], FIELD_RULES.get(f.name))
            setattr(self, f.name, value)
        for name, (allowed, description) in FIELD_RULES.items():
            if not allowed(getattr(self, name)):
                raise GtspError(f"{name}={getattr(self, name)!r} is not allowed: {_flag(name)} takes "
                                f"{description}")
        _check_folds(self.folds, self.fold)
        if self.select_from > self.epochs:
            raise GtspError(f"select_from={self.select_from} is after the last epoch ({self.epochs}): no epoch could "
                            "be chosen; give --select-from at most --epochs")
        self.model_args = check_model_args(self.model, self.model_args)
        self.prune = check_prune(self.prune, self.prune_args)
        _check_budget(self.budget, self.prune)
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# field -> (test of a well-typed value, what is allowed); the type itself comes from the annotation
FIELD_RULES: dict[str, tuple[typing.Callable[[Any], bool], str]] = {
    "seed": (lambda v: 0 <= v < 2**32, "an integer in [0, 2**32)"),
    "epochs": (lambda v: v >= 1, "an integer >= 1"),
    "batch_size": (lambda v: v >= 1, "an integer >= 1"),
    "lr": (lambda v: v > 0, "a number > 0"),
    "weight_decay": (lambda v: v >= 0, "a number >= 0"),
    "warmup_epochs": (lambda v: v >= 0, "an integer >= 0"),
    "select_from": (lambda v: v >= 1, "an integer >= 1 (the first epoch whose model may be chosen as the best)"),
    "grad_clip": (lambda v: v >= 0, "a number >= 0 (0 = no clipping)"),
    "bucket_pool": (lambda v: v >= 1, "an integer >= 1 (1 = no size bucketing)"),
    "threads": (lambda v: v >= 1, "an integer >= 1"),
    "device": (lambda v: v in ("auto", "cpu", "cuda"), "auto, cpu or cuda"),
    "folds": (lambda v: v == 0 or v >= 2, "0 (no cross-validation) or an integer >= 2"),
    "fold": (lambda v: v >= 0, "an integer >= 0 (and below --folds)"),
    "dataset": (lambda v: bool(v.strip()), "a dataset name"),
    "out": (lambda v: bool(v.strip()), "a folder"),
}
_KIND_WORDS = {int: "an integer", float: "a number", bool: "true or false", str: "a text", dict: "a mapping"}


def _flag(name: str) -> str:
    return f"{name} (--{name.replace('_', '-')})"


def _typed(name: str, value: Any, hint: Any, rule: tuple | None) -> Any:
    """``value`` as the annotated type of field ``name``, or one clear error."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    optional = type(None) in typing.get_args(hint)
    kind = args[0] if optional else typing.get_origin(hint) or hint
    try:
        return coerce(value, kind, optional)
    except ValueError:
        allowed = rule[1] if rule else _KIND_WORDS.get(kind, kind.__name__)
        raise GtspError(f"{name}={value!r} is not {_KIND_WORDS.get(kind, kind.__name__)}: "
                        f"{_flag(name)} takes {allowed}") from None


def _check_folds(folds: int, fold: int) -> None:
    if folds == 0 and fold != 0:
        raise GtspError(f"--fold {fold} needs --folds: give the number of folds, e.g. --folds 10 --fold {fold}")
    if folds and fold >= folds:
        raise GtspError(f"fold={fold} does not exist for {folds} folds: use 0 <= --fold < --folds")


def check_model_args(model: str, model_args: Any) -> dict[str, Any]:
    """``model_args`` with each value typed as backbone ``model`` declares it; unknown names refused."""
    from gtsp.models import backbone, check_hparams
    from gtsp.models.params import hyperparameters

    declared = hyperparameters(backbone(model).Params)
    unknown = sorted(set(model_args) - set(declared))
    if unknown:
        raise GtspError(f"{model} has no hyper-parameter {', '.join(unknown)}: its hyper-parameters are "
                        f"{', '.join(declared)}")
    checked = {}
    for name, value in model_args.items():
        spec = declared[name]
        try:
            checked[name] = coerce(value, spec.kind, spec.optional)
        except ValueError:
            raise GtspError(f"model_args.{name}={value!r} is not {_KIND_WORDS.get(spec.kind, spec.kind.__name__)}: "
                            f"{model}'s {name} takes e.g. --model-arg {name}={spec.default}") from None
        _check_hyperparameter_range(name, checked[name])
    effective = {name: spec.default for name, spec in declared.items()} | checked
    hidden, heads = effective.get("hidden"), effective.get("heads")
    if effective.get("attention", True) and isinstance(hidden, int) and heads and hidden % heads:
        raise GtspError(f"{heads} attention heads do not divide the hidden size {hidden}: "
                        "choose --heads that divides --hidden")
    check_hparams(model, checked)  # the backbone's own checks (pooling, local MPNN, encodings)
    return checked


def _check_hyperparameter_range(name: str, value: Any) -> None:
    """Ranges every backbone shares: dropouts in [0, 1), widths >= 1, counts >= 0."""
    if name.endswith("dropout") and isinstance(value, float) and not 0.0 <= value < 1.0:
        raise GtspError(f"model_args.{name}={value} is outside [0, 1): give a dropout probability, e.g. 0.1")
    if isinstance(value, int) and not isinstance(value, bool):
        low = 1 if name == "hidden" else 0
        if value < low:
            raise GtspError(f"model_args.{name}={value} is below {low}: give an integer >= {low}")


def check_prune(prune: dict[str, Any], prune_args: dict[str, Any]) -> dict[str, float]:
    """``prune`` as ``{dimension: ratio}`` floats, every ratio and option checked by its dimension."""
    from gtsp.sparsify import check_pruning

    return {name: float(options.ratio) for name, options in check_pruning(prune, prune_args).items()}


def _check_budget(budget: dict[str, Any], prune: dict[str, float]) -> None:
    from gtsp.budget import check_budget

    if check_budget(budget) is not None and any(prune.values()):
        raise GtspError(f"--budget chooses the pruning ratios itself, but --prune {prune} was given too: "
                        "drop one of them")


# settings a resumed run may change: they do not change what the checkpoint's state means
SAFE_ON_RESUME = ("epochs", "lr", "grad_clip", "threads", "device", "data_root", "cache_root", "out", "resume",
                  "overwrite")


def resume_changes(saved: dict[str, Any], cfg: RunConfig) -> dict[str, tuple[Any, Any]]:
    """``{setting: (checkpoint value, new value)}`` for every setting that differs from ``saved``.

    Dict fields are compared entry by entry (``model_args.hidden``); backbone defaults count as
    given and a ratio of 0 as no pruning, so equal runs written differently compare equal.
    """
    old, new = _comparable(RunConfig().to_dict() | saved), _comparable(cfg.to_dict())
    return {key: (old.get(key), new.get(key)) for key in sorted(set(old) | set(new)) if old.get(key) != new.get(key)}


def _comparable(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` flattened to dotted keys, with backbone defaults filled in and zero ratios dropped."""
    from gtsp.models import backbone
    from gtsp.models.params import hyperparameters

    known = {f.name for f in dataclasses.fields(RunConfig)}
    config = {k: v for k, v in config.items() if k in known}
    try:
        defaults = {name: spec.default for name, spec in hyperparameters(backbone(config["model"]).Params).items()}
    except GtspError:
        defaults = {}
    config["model_args"] = defaults | config["model_args"]
    config["prune"] = {dim: ratio for dim, ratio in config["prune"].items() if ratio}
    return _flatten(config)


def _flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def check_resume(saved: dict[str, Any], cfg: RunConfig) -> dict[str, tuple[Any, Any]]:
    """The safe changes of ``cfg`` against the checkpoint's ``saved`` config; any other change is refused.

    Safe: :data:`SAFE_ON_RESUME`, with ``epochs`` only growing and only for dense runs (a pruning
    schedule is laid out over the epochs the run started with).
    """
    changes = resume_changes(saved, cfg)
    refused = {key: change for key, change in changes.items() if key.split(".")[0] not in SAFE_ON_RESUME}
    if "epochs" in changes:
        before, after = changes["epochs"]
        if after < before or any(cfg.prune.values()):
            refused["epochs"] = changes["epochs"]
    if refused:
        listed = ", ".join(f"{key}: {old!r} -> {new!r}" for key, (old, new) in refused.items())
        raise GtspError(f"--resume: settings differ from the checkpoint's ({listed}): resume with the checkpoint's "
                        "settings, or start again with --overwrite or another --out; a resume may change only "
                        "lr, grad_clip, threads, device, data_root, cache_root, and epochs (more, dense runs only)")
    return changes


def load_yaml(path: str | Path) -> dict[str, Any]:
    """The mapping in a YAML config file, with unknown keys refused."""
    path = Path(path)
    if not path.is_file():
        raise GtspError(f"config file {path} does not exist: check the --config path")
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise GtspError(f"config file {path} is not valid YAML ({err}): fix its syntax") from None
    if not isinstance(values, dict):
        raise GtspError(f"config file {path} holds {type(values).__name__}, not key: value lines: "
                        "write one field per line, e.g. epochs: 50")
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
