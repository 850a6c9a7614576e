"""Each backbone's hyper-parameters with their types and defaults, read from the backbone itself.

A backbone that declares a ``Params`` dataclass is read from its fields; otherwise from the
annotations and defaults of its constructor (every argument after ``info``). Configuration
checks go through :func:`hyperparameter_types` only, so they follow whatever the backbone declares.
"""
from __future__ import annotations

import dataclasses
import inspect
import typing
from dataclasses import dataclass
from typing import Any

from gtsp.errors import GtspError


@dataclass(frozen=True)
class HyperParameter:
    """One hyper-parameter: its value type (int, float, str, bool), default, and whether None is allowed."""

    kind: type
    default: Any
    optional: bool


def hyperparameter_types(model: str) -> dict[str, HyperParameter]:
    """``{name: HyperParameter}`` of backbone ``model``, in declaration order."""
    from gtsp.models import MODELS

    if model not in MODELS:
        raise GtspError(f"unknown model {model!r}: choose one of {', '.join(sorted(MODELS))}")
    cls = MODELS[model]
    params_cls = getattr(cls, "Params", None)
    if dataclasses.is_dataclass(params_cls):
        hints = typing.get_type_hints(params_cls)
        defaults = {f.name: _field_default(f) for f in dataclasses.fields(params_cls)}
    else:
        hints = typing.get_type_hints(cls.__init__)
        defaults = {name: p.default for name, p in inspect.signature(cls.__init__).parameters.items()
                    if name not in ("self", "info")}
    return {name: _describe(hints[name], default) for name, default in defaults.items()}


def _field_default(f: dataclasses.Field) -> Any:
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


def _describe(hint: Any, default: Any) -> HyperParameter:
    """``int | None`` -> ``HyperParameter(int, default, optional=True)``."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    optional = len(args) < len(typing.get_args(hint))
    return HyperParameter(args[0] if args else hint, default, optional)
