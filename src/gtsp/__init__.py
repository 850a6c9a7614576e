"""gtsp: train graph transformers and make them cheap (GTSP, Liu et al. 2024).

The Python API (:mod:`gtsp.api`: ``gtsp.fit``, ``gtsp.prune``, ``gtsp.load_model``, ...) is
reachable from here and imported on first use, so ``import gtsp`` itself stays light.
"""
import importlib
from typing import Any

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """A public name of :mod:`gtsp.api`, imported on first use."""
    api = importlib.import_module("gtsp.api")
    if name not in api.WHERE:
        raise AttributeError(f"module 'gtsp' has no attribute {name!r}")
    return getattr(api, name)


def __dir__() -> list[str]:
    api = importlib.import_module("gtsp.api")
    return sorted([*globals(), *api.WHERE])
