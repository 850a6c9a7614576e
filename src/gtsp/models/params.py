"""Typed hyper-parameters: each backbone declares a frozen dataclass, and every value a user gives
(YAML, ``--model-arg``, flags) is checked against it with a message naming the field, the value
and what is allowed, before any model is built."""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import Any

from gtsp.errors import GtspError
from gtsp.typed_values import coerce as coerce_value


@dataclass(frozen=True)
class HyperParameter:
    """One hyper-parameter: its value type (int, float, str, bool), default, and whether None is allowed."""

    kind: type
    default: Any
    optional: bool


def hyperparameters(params_cls: type) -> dict[str, HyperParameter]:
    """``{name: HyperParameter}`` of a hyper-parameter dataclass, in declaration order."""
    hints = typing.get_type_hints(params_cls)
    declared = {}
    for f in dataclasses.fields(params_cls):
        args = [a for a in typing.get_args(hints[f.name]) if a is not type(None)]
        optional = len(args) < len(typing.get_args(hints[f.name]))
        declared[f.name] = HyperParameter(args[0] if args else hints[f.name], f.default, optional)
    return declared


def coerce(backbone: str, params_cls: type, values: dict[str, Any]) -> Any:
    """``params_cls(**values)`` with every value type-checked (ints stay ints, YAML numbers are accepted)."""
    declared = hyperparameters(params_cls)
    unknown = sorted(set(values) - set(declared))
    if unknown:
        raise GtspError(f"{backbone} has no hyper-parameter {', '.join(unknown)}: its hyper-parameters are "
                        f"{', '.join(declared)}")
    checked = {}
    for name, value in values.items():
        spec = declared[name]
        try:
            checked[name] = coerce_value(value, spec.kind, spec.optional)
        except ValueError:
            raise GtspError(f"{backbone} hyper-parameter {name}={value!r} is not {_article(spec.kind)}: "
                            f"give e.g. --model-arg {name}={_example(spec.kind)}") from None
    return params_cls(**checked)


def _article(kind: type) -> str:
    return {int: "an integer", float: "a number", bool: "true or false", str: "a word"}.get(kind, kind.__name__)


def _example(kind: type) -> str:
    return {int: "64", float: "0.1", bool: "false", str: "gin"}.get(kind, "...")


def check_range(backbone: str, name: str, value: float, low: float, high: float | None = None,
                high_open: bool = True) -> None:
    """Refuse ``value`` outside ``[low, high)`` (or ``[low, high]``), naming the field and the range."""
    above = high is not None and (value >= high if high_open else value > high)
    if value < low or above:
        bound = "" if high is None else f", {high}{')' if high_open else ']'}"
        allowed = f"[{low}{bound}" if high is not None else f">= {low}"
        raise GtspError(f"{backbone} hyper-parameter {name}={value} is outside {allowed}: choose a value in it")


def check_common(backbone: str, params: Any) -> None:
    """The checks every backbone shares: widths, depth, heads dividing the width, dropout ranges."""
    check_range(backbone, "hidden", params.hidden, 1)
    check_range(backbone, "layers", params.layers, 1)
    check_range(backbone, "heads", params.heads, 0)  # 0 heads: no attention, like attention=false
    for name in ("dropout", "attn_dropout"):
        check_range(backbone, name, getattr(params, name), 0.0, 1.0)
    if attends(params) and params.hidden % params.heads:
        raise GtspError(f"{params.heads} attention heads do not divide the hidden size {params.hidden}: "
                        "choose --heads that divides --hidden")


def attends(params: Any) -> bool:
    """Whether a model with these hyper-parameters has attention (``attention=false`` or 0 heads: not)."""
    return bool(params.attention) and params.heads > 0
