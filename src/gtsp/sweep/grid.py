"""A sweep's points: every combination of the axis values, each with a folder name and a full config.

A point's name is made from its axis values in the sweep file's order, so it is readable and
the same on every machine: ``seed: 1`` and ``prune.head: 0.5`` give ``head-0.5_seed-1``; a
whole mapping reads ``prune-head=0.5+layer=0.25`` (``prune-none`` for ``{}``).
"""
from __future__ import annotations

import copy
import itertools
import re
from dataclasses import dataclass
from typing import Any

from gtsp.config import RunConfig
from gtsp.errors import GtspError
from gtsp.sweep.spec import Axis, SweepSpec

UNSAFE = re.compile(r"[^A-Za-z0-9._+=-]+")


@dataclass(frozen=True)
class Point:
    """One run of the sweep."""

    index: int
    name: str                 # its folder under the sweep's out
    values: dict[str, Any]    # axis key -> value
    config: dict[str, Any]    # every RunConfig field except out and resume


def expand(spec: SweepSpec) -> list[Point]:
    """All points of ``spec``, grid by grid (in each the last axis varies fastest), each config checked."""
    points: list[Point] = []
    for axes in spec.grids:
        labels = _labels(axes)
        for combo in itertools.product(*(a.values for a in axes)):
            name = "_".join(f"{labels[a.key]}-{_fmt(v)}" for a, v in zip(axes, combo))
            config = copy.deepcopy(spec.base)
            for axis, value in zip(axes, combo):
                _set(config, axis.path, value)
            try:
                RunConfig(**config).validate()
            except GtspError as err:
                raise GtspError(f"sweep file {spec.file}: point {name}: {err}") from None
            points.append(Point(len(points), name, {a.key: v for a, v in zip(axes, combo)}, config))
    _check_unique(spec, points)
    return points


def _labels(axes: tuple[Axis, ...]) -> dict[str, str]:
    """The last part of each axis path (``prune.head`` -> ``head``), or the whole path where two clash."""
    last = [a.path[-1] for a in axes]
    return {a.key: a.path[-1] if last.count(a.path[-1]) == 1 else a.key for a in axes}


def _fmt(value: Any) -> str:
    """A value as it appears in a folder name."""
    if isinstance(value, dict):
        return "+".join(f"{k}={_fmt(v)}" for k, v in _flatten(value)) or "none"
    if isinstance(value, bool) or value is None:
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return "+".join(_fmt(v) for v in value) or "none"
    return UNSAFE.sub("-", str(value))


def _flatten(mapping: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    items = []
    for key, value in mapping.items():
        if isinstance(value, dict) and value:
            items += _flatten(value, f"{prefix}{key}.")
        else:
            items.append((f"{prefix}{key}", value))
    return items


def _set(config: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    """Set ``config[path[0]][path[1]]... = value``, creating the inner mappings on the way."""
    target = config
    for key in path[:-1]:
        inner = target.get(key)
        if not isinstance(inner, dict):
            inner = target[key] = {}
        target = inner
    target[path[-1]] = copy.deepcopy(value)


def _check_unique(spec: SweepSpec, points: list[Point]) -> None:
    seen: dict[str, Point] = {}
    for point in points:
        if point.name in seen:
            raise GtspError(f"sweep file {spec.file}: points {seen[point.name].values} and {point.values} get the "
                            f"same folder name {point.name}: make the values differ in letters or digits")
        seen[point.name] = point
