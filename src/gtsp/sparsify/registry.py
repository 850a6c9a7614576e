"""The registry of pruning dimensions, in the order they are prepared, stripped and applied.

Each built-in dimension lives in one module that defines ``DIMENSION`` (a
:class:`~gtsp.sparsify.dimension.Dimension`). The order below is the order of every joint
step: members are prepared and called in it, strip their attachments in it (weight masks first,
so slicing copies plain tensors; layer wrappers after the gates inside them), and a compaction
plan applies its fragments in it (heads and neurons are indexed on the model before layers go).
:func:`register` adds a dimension defined elsewhere, placed just before the first dimension that
removes whole blocks (``removes_blocks``), since every fragment indexes the model before blocks go.
"""
from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager

from gtsp.errors import GtspError
from gtsp.sparsify.dimension import Dimension

BUILTIN_MODULES = ("gtsp.sparsify.weight", "gtsp.sparsify.head", "gtsp.sparsify.neuron", "gtsp.sparsify.layer",
                   "gtsp.sparsify.token")

_added: list[Dimension] = []


def dimensions() -> tuple[Dimension, ...]:
    """Every registered dimension, in registry order."""
    builtin = [importlib.import_module(m).DIMENSION for m in BUILTIN_MODULES]
    cut = next((i for i, d in enumerate(builtin) if d.removes_blocks), len(builtin))
    return (*builtin[:cut], *_added, *builtin[cut:])


def names() -> tuple[str, ...]:
    return tuple(d.name for d in dimensions())


def dimension(name: str) -> Dimension:
    """The dimension called ``name``, or a clear error listing the known ones."""
    for found in dimensions():
        if found.name == name:
            return found
    raise GtspError(f"unknown pruning dimension(s) {[name]}: choose from {', '.join(names())}")


def order(name: str) -> int:
    """Position of ``name`` in the registry (the order of every joint step)."""
    return names().index(name)


def register(new: Dimension) -> Dimension:
    """Add ``new`` to the registry (before the dimensions that remove blocks); a name may be registered once."""
    if new.name in names() or new.name == "joint":
        raise GtspError(f"a pruning dimension called {new.name!r} is already registered: choose another name")
    _added.append(new)
    return new


@contextmanager
def registered(new: Dimension) -> Iterator[Dimension]:
    """``new`` registered for the duration of a ``with`` block (e.g. a test's own dimension)."""
    register(new)
    try:
        yield new
    finally:
        _added.remove(new)
