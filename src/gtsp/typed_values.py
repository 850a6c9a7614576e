"""Values from YAML, flags and JSON read as the type a field declares, one rule for every field.

YAML 1.1 reads ``1e-3`` as text and users write ``64.0`` for an integer; both are accepted.
Booleans are never numbers, and non-finite numbers are refused.
"""
from __future__ import annotations

import math
from typing import Any


def coerce(value: Any, kind: type, optional: bool = False) -> Any:
    """``value`` as ``kind`` (int, float, bool, str, dict); ValueError when it is not one.

    Numbers written as text (YAML 1.1's ``1e-3``) and whole floats for integers are accepted;
    booleans are never numbers, and non-finite numbers are refused.
    """
    if value is None and optional:
        return None
    if kind in (int, float):
        number = finite_number(value)
        if number is not None and (kind is float or float(number).is_integer()):
            return kind(number)
    elif isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return value
    raise ValueError(f"{value!r} is not {kind.__name__}")


def finite_number(value: Any) -> float | int | None:
    """A finite number from a number or a numeric text; None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if isinstance(value, (int, float)) and math.isfinite(value):
        return value
    return None
