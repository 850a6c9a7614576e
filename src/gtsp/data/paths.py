"""Where datasets come from and where processed copies go.

The *data root* holds original files (read-only, e.g. ``../shared/data``):
``TUDataset/NAME/raw/`` and ``moleculenet/*.csv``. It comes from ``--data-root``
or the ``GTSP_DATA`` environment variable. The *cache root* is writable and
holds every processed copy (PyG ``processed/`` folders, OGB layouts built from
CSV files); it comes from ``GTSP_CACHE`` or defaults to ``~/.cache/gtsp``.
"""
from __future__ import annotations

import os
from pathlib import Path

EMBEDDED_ROOT = Path(__file__).parent / "embedded"


def data_root(explicit: str | os.PathLike | None = None) -> Path | None:
    """The read-only data root: the explicit argument, else ``$GTSP_DATA``, else None."""
    value = explicit if explicit else os.environ.get("GTSP_DATA")
    return Path(value).expanduser().resolve() if value else None


def cache_root(explicit: str | os.PathLike | None = None) -> Path:
    """The writable cache root: the explicit argument, else ``$GTSP_CACHE``, else ``~/.cache/gtsp``."""
    value = explicit if explicit else os.environ.get("GTSP_CACHE", "~/.cache/gtsp")
    path = Path(value).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path
