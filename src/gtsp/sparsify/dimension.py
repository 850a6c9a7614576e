"""The dimension plugin contract: everything gtsp knows about one pruning dimension, in one object.

A :class:`Dimension` owns

- ``options``: a frozen dataclass (``ratio`` first, then the dimension's own arguments) from which
  YAML / ``--prune-arg`` parsing, type checks and help are derived; its ``__post_init__`` holds the
  dimension's range checks, so every value is checked in one place;
- ``sparsifier``: the :class:`~gtsp.sparsify.base.Sparsifier` built from those options;
- ``fragment``: its part of a compaction plan (``to_dict`` / ``from_dict`` / ``apply(model)``);
  :class:`~gtsp.sparsify.plan.CompactionPlan` holds one fragment per pruned dimension and applies
  them in the registry's order;
- its price: ``ratios``, the budget search's choices, ``grid(model)``, those worth pricing on a
  dense model (each distinct keep count once), and
  ``priced_fragment(model, ratio)``, the fragment of a compacted architecture at that ratio;
  ``executes`` says whether its savings run (structured) or only count (unstructured zeros, priced
  by ``zero_priced``, which zeroes what it masks);
- its report label and colour, and what training needs for it (``unused_parameters``: DDP must
  expect parameters without gradients, e.g. a layer LayerDrop skipped).

:mod:`gtsp.sparsify.registry` lists the dimensions; nothing else in gtsp names one.
"""
from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from gtsp.errors import GtspError
from gtsp.typed_values import coerce, finite_number

STRUCTURAL_GRID = (0.0, 0.25, 0.5, 0.75)  # ratios a budget tries in a structured dimension


@dataclass(frozen=True)
class RatioOptions:
    """What every dimension's options start with: ``ratio``, the fraction REMOVED, in [0, 1).

    A subclass names its dimension in ``dimension_name`` (a ``ClassVar``) for its messages.
    """

    ratio: float = 0.0

    def __post_init__(self) -> None:
        name = getattr(self, "dimension_name", "prune")
        if finite_number(self.ratio) is None:
            raise GtspError(f"--prune {name}={self.ratio!r} is not a number: give the fraction to REMOVE, e.g. 0.5")
        if not 0.0 <= self.ratio < 1.0:
            raise GtspError(f"--prune {name}={self.ratio} is outside [0, 1): give the fraction to REMOVE, "
                            "e.g. 0.5 keeps half")


def check_choice(dimension: str, name: str, value: Any, allowed: tuple) -> None:
    """Refuse ``value`` of option ``name`` unless it is one of ``allowed``."""
    if value not in allowed:
        raise GtspError(f"unknown {dimension} pruning {name} {value!r}: choose {' or '.join(map(str, allowed))}")


def check_range(dimension: str, name: str, value: float, low: float, high: float | None = None,
                high_open: bool = True) -> None:
    """Refuse option ``name`` outside ``[low, high)`` (``[low, high]`` unless ``high_open``)."""
    above = high is not None and (value >= high if high_open else value > high)
    if value < low or above:
        allowed = f"[{low}, {high}{')' if high_open else ']'}" if high is not None else f">= {low}"
        raise GtspError(f"{dimension} pruning {name}={value} is outside {allowed}: choose a value in it")


class Fragment:
    """Base of a dimension's plan fragment (a dataclass): JSON in and out, ``apply(model)`` in subclasses."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Fragment:
        allowed = {f.name for f in dataclasses.fields(cls)}
        if not isinstance(values, dict) or set(values) - allowed:
            raise GtspError(f"compaction plan entry {values!r} does not fit {cls.__name__} ({', '.join(allowed)}): "
                            "was it written by a newer gtsp?")
        return cls(**values)

    @classmethod
    def from_legacy(cls, value: Any) -> Fragment:
        """The fragment from this dimension's entry in an earlier model file's flat plan."""
        return cls.from_dict(value)

    def apply(self, model: nn.Module) -> None:
        raise NotImplementedError


def distinct_ratios(count: Callable[[float], int], allowed: Callable[[int], bool],
                    grid: tuple[float, ...] = STRUCTURAL_GRID) -> list[float]:
    """The ratios of ``grid`` whose kept (or removed) ``count`` is allowed, each distinct count once."""
    ratios, seen = [], set()
    for ratio in grid:
        kept = count(ratio)
        if allowed(kept) and kept not in seen:
            seen.add(kept)
            ratios.append(ratio)
    return ratios


@dataclass(frozen=True)
class Dimension:
    """One pruning dimension (see the module docstring for each field's role)."""

    name: str
    options: type
    sparsifier: type
    fragment: type
    label: str
    colour: str
    executes: bool = True
    ratios: tuple[float, ...] = STRUCTURAL_GRID
    grid: Callable[[nn.Module], list[float]] | None = None
    priced_fragment: Callable[[nn.Module, float], Any] | None = None
    zero_priced: Callable[[nn.Module], None] | None = None
    budget_options: dict[str, Any] = field(default_factory=dict)
    unused_parameters: bool = False
    removes_blocks: bool = False  # its fragment removes whole blocks, so it applies after those indexing them
    legacy_key: str | None = None  # its entry in the flat plans of earlier model files

    @property
    def priced(self) -> bool:
        """Whether a budget can price this dimension (a compacted architecture, or zeros to count)."""
        return self.priced_fragment is not None or self.zero_priced is not None

    def grid_for(self, model: nn.Module) -> list[float]:
        """The ratios worth pricing on ``model`` (``grid``, else every one of ``ratios``)."""
        return self.grid(model) if self.grid is not None else list(self.ratios)

    def fields(self) -> dict[str, tuple[type, Any, bool]]:
        """``{option: (type, default, None allowed)}`` in declaration order, ``ratio`` first."""
        hints = typing.get_type_hints(self.options)
        declared = {}
        for f in dataclasses.fields(self.options):
            args = typing.get_args(hints[f.name])
            kinds = [a for a in args if a is not type(None)]
            declared[f.name] = (kinds[0] if kinds else hints[f.name], f.default, len(kinds) < len(args))
        return declared

    def parse(self, ratio: Any, values: dict[str, Any] | None = None, seed: int | None = None) -> Any:
        """The checked options of ``--prune NAME=ratio`` with ``values`` (YAML or ``--prune-arg``);
        ``seed`` fills a ``seed`` option the user left out."""
        declared = self.fields()
        values = dict(values or {})
        unknown = sorted(set(values) - set(declared) - {"ratio"})
        if unknown:
            raise GtspError(f"unknown {self.name} pruning option(s) {unknown}: choose from "
                            f"{', '.join(n for n in declared if n != 'ratio')}")
        if seed is not None and "seed" in declared:
            values.setdefault("seed", seed)
        checked = {"ratio": self._coerce("ratio", ratio, declared["ratio"])}
        checked.update({name: self._coerce(name, v, declared[name]) for name, v in values.items() if name != "ratio"})
        return self.options(**checked)

    def _coerce(self, name: str, value: Any, spec: tuple[type, Any, bool]) -> Any:
        kind, _, optional = spec
        try:
            return coerce(value, kind, optional)
        except ValueError:
            if name == "ratio":
                raise GtspError(f"prune.{self.name}={value!r} is not a number: give the fraction to REMOVE in "
                                f"[0, 1), e.g. --prune {self.name}=0.5") from None
            raise GtspError(f"prune_args.{self.name}.{name}={value!r} is not of type {kind.__name__}: give one, "
                            f"e.g. --prune-arg {self.name}.{name}=VALUE") from None

    def build(self, options: Any) -> Any:
        """The sparsifier these (checked) options describe."""
        return self.sparsifier(**dataclasses.asdict(options))

    def help(self) -> str:
        """``name (option=default, ...)`` for the command line's help."""
        options = [f"{n}={d}" for n, (_, d, _) in self.fields().items() if n != "ratio"]
        return f"{self.name} ({', '.join(options)})" if options else self.name
