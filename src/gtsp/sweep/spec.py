"""The sweep file: what to vary (``grid:``), around what (``base:``), and where runs go (``out:``).

::

    name: mutag-demo            # study name (default: the file's stem)
    out: runs/mutag-demo        # root of the run folders (relative to the working directory)
    retries: 2                  # reruns of a point whose training process crashed (default 2)
    base:                       # any RunConfig field; config: FILE loads a gtsp train YAML first
      config: ../../configs/gps-nci1.yaml   # relative to this sweep file
      epochs: 2
    grid:                       # the Cartesian product of every axis, in this order
      prune.head: [0, 0.5]      # a dotted path sets one key inside model_args / prune / prune_args
      model_args: [{hidden: 32}, {hidden: 64, heads: 8}]  # a whole dict field is replaced by each value
      seed: [0, 1, 2]
      fold: ["0..9"]            # "A..B" is the integers A to B

``grid:`` may also be a list of such mappings: the points are then the union of their
products, in order (e.g. pruning settings x seeds, plus the attention-free baseline x seeds).

Everything is checked here, before any run starts: unknown keys, empty or repeated axis
values, paths that do not lead into a dict field, fields the sweep sets itself.
"""
from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from gtsp.config import RunConfig, load_yaml, merge
from gtsp.errors import GtspError

SWEEP_KEYS = ("name", "out", "retries", "base", "grid")
DICT_FIELDS = ("model_args", "prune", "prune_args", "budget")
SET_BY_SWEEP = ("out", "resume")  # every point runs in its own folder with --resume
RANGE = re.compile(r"^(-?\d+)\.\.(-?\d+)$")
MAX_AXIS_VALUES = 10_000  # values one axis may take ("A..B" included)
MAX_POINTS = 100_000      # points of the whole sweep (every grid's product), checked before expanding


@dataclass(frozen=True)
class Axis:
    """One varied setting: ``path`` into RunConfig (``("prune", "head")``) and its values."""

    path: tuple[str, ...]
    values: tuple[Any, ...]

    @property
    def key(self) -> str:
        return ".".join(self.path)


@dataclass(frozen=True)
class SweepSpec:
    """A checked sweep file."""

    file: Path
    name: str
    out: Path
    retries: int
    base: dict[str, Any]  # every RunConfig field (defaults < config: file < base:), without out/resume
    grids: tuple[tuple[Axis, ...], ...]  # each a Cartesian product; the sweep is their union


def load_sweep(path: str | Path, out: str | Path | None = None) -> SweepSpec:
    """Read and check the sweep file at ``path``; ``out`` (the ``--out`` flag) overrides its ``out:``."""
    path = Path(path)
    doc = _read_mapping(path)
    unknown = sorted(set(doc) - set(SWEEP_KEYS))
    if unknown:
        raise GtspError(f"sweep file {path} has unknown keys {unknown}: a sweep file holds {list(SWEEP_KEYS)}")
    root = out if out is not None else doc.get("out")
    if not root:
        raise GtspError(f"sweep file {path} names no output folder: add 'out: runs/NAME' or pass --out DIR")
    retries = doc.get("retries", 2)
    if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
        raise GtspError(f"sweep file {path}: retries must be a whole number >= 0 (got {retries!r})")
    name = str(doc.get("name") or path.stem)
    return SweepSpec(file=path, name=name, out=Path(root), retries=retries,
                     base=_base_config(path, doc.get("base") or {}), grids=_grids(path, doc.get("grid")))


def _read_mapping(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise GtspError(f"sweep file {path} does not exist: check the path")
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise GtspError(f"sweep file {path} is not valid YAML ({err}): fix its syntax") from None
    if not isinstance(doc, dict):
        raise GtspError(f"sweep file {path} must be a mapping with base:, grid: and out:")
    return doc


def _base_config(path: Path, base: Any) -> dict[str, Any]:
    """Defaults, then the ``config:`` file (relative to the sweep file), then the other ``base:`` keys."""
    if not isinstance(base, dict):
        raise GtspError(f"sweep file {path}: base: must be a mapping of RunConfig fields")
    base = dict(base)
    cfg = RunConfig()
    if "config" in base:
        cfg = merge(cfg, load_yaml(path.parent / str(base.pop("config"))))
    _check_fields(path, "base", base)
    values = merge(cfg, base).to_dict()
    return {k: v for k, v in values.items() if k not in SET_BY_SWEEP}


def _check_fields(path: Path, where: str, keys) -> None:
    known = [f.name for f in dataclasses.fields(RunConfig)]
    unknown = sorted(set(keys) - set(known))
    if unknown:
        raise GtspError(f"sweep file {path}: {where} has unknown fields {unknown}: known fields are {known}")
    fixed = sorted(set(keys) & set(SET_BY_SWEEP))
    if fixed:
        raise GtspError(f"sweep file {path}: {where} sets {fixed}, which the sweep sets itself (each point runs "
                        "in OUT/POINT-NAME with --resume): remove it and give the root folder as out:")


def _grids(path: Path, grid: Any) -> tuple[tuple[Axis, ...], ...]:
    grids = grid if isinstance(grid, list) else [grid]
    if not grids:
        raise GtspError(f"sweep file {path}: grid: is an empty list: give at least one mapping of axes")
    checked = tuple(_axes(path, g) for g in grids)
    total = sum(math.prod(len(a.values) for a in axes) for axes in checked)
    if total > MAX_POINTS:
        raise GtspError(f"sweep file {path}: the grid has {total:,} points, over the limit of {MAX_POINTS:,}: "
                        "vary fewer values, or split it into several sweeps")
    return checked


def _axes(path: Path, grid: Any) -> tuple[Axis, ...]:
    if not isinstance(grid, dict) or not grid:
        raise GtspError(f"sweep file {path}: grid: is missing or empty: give at least one axis, e.g. "
                        "grid: {seed: [0, 1, 2]}")
    axes = tuple(_axis(path, str(key), values) for key, values in grid.items())
    _check_fields(path, "grid", {a.path[0] for a in axes})
    for a in axes:
        for b in axes:
            if a is not b and b.path[:len(a.path)] == a.path:
                raise GtspError(f"sweep file {path}: grid axes {a.key} and {b.key} overlap: vary either the "
                                f"whole {a.key} or keys inside it")
    return axes


def _axis(path: Path, key: str, values: Any) -> Axis:
    parts = tuple(key.split("."))
    if len(parts) > 1 and parts[0] not in DICT_FIELDS:
        raise GtspError(f"sweep file {path}: grid axis {key}: only {list(DICT_FIELDS)} have keys inside them; "
                        f"write {parts[0]}: [...] for a plain field")
    if not isinstance(values, list):
        raise GtspError(f"sweep file {path}: grid axis {key} must be a list of values, e.g. {key}: [{values!r}]")
    try:
        expanded = [v for value in values for v in _expand(value)]
    except GtspError as err:
        raise GtspError(f"sweep file {path}: grid axis {key}: {err}") from None
    if not expanded:
        raise GtspError(f"sweep file {path}: grid axis {key} is empty: give at least one value, or remove it")
    if len(parts) == 1 and parts[0] in DICT_FIELDS and not all(isinstance(v, dict) for v in expanded):
        raise GtspError(f"sweep file {path}: grid axis {key} takes whole mappings, e.g. {key}: [{{}}, "
                        f"{{head: 0.5}}]; vary one key with {key}.KEY: [...]")
    if any(expanded[i] in expanded[:i] for i in range(len(expanded))):
        raise GtspError(f"sweep file {path}: grid axis {key} repeats a value ({expanded}): list each value once")
    return Axis(parts, tuple(expanded))


def _expand(value: Any) -> list[Any]:
    """``"0..3"`` -> ``[0, 1, 2, 3]``; any other value -> ``[value]``."""
    match = RANGE.match(value) if isinstance(value, str) else None
    if not match:
        return [value]
    low, high = int(match.group(1)), int(match.group(2))
    if high - low + 1 > MAX_AXIS_VALUES:
        raise GtspError(f"the range {value!r} has {high - low + 1:,} values, over the limit of {MAX_AXIS_VALUES:,} "
                        "per axis: give a smaller range")
    return list(range(low, high + 1))
