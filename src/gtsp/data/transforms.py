"""Precomputed per-graph encodings, run once as a PyG ``pre_transform`` and cached
with the processed dataset (never per forward pass).

Each backbone asks for the encodings it needs by name (see ``FEATURES``); the
dataset loader composes them and keys its processed folder by the names, so
different choices never share a cache.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

from torch_geometric.transforms import AddRandomWalkPE, Compose

from gtsp.data.shortest_paths import ShortestPaths
from gtsp.errors import GtspError

RWSE_STEPS = 20

# name -> factory of a pre_transform
FEATURES: dict[str, Callable[[], Callable]] = {
    "rwse": lambda: AddRandomWalkPE(walk_length=RWSE_STEPS, attr_name="rwse"),
    "spd": ShortestPaths,  # all-pairs hop distances + next-hop edges (Graphormer)
}


def pre_transform_for(names: Sequence[str]) -> tuple[Callable | None, str]:
    """The composed pre-transform for ``names`` and the cache tag that identifies it."""
    unknown = [n for n in names if n not in FEATURES]
    if unknown:
        raise GtspError(f"unknown precomputed feature(s) {unknown}: known are {sorted(FEATURES)}")
    names = sorted(set(names))
    if not names:
        return None, "plain"
    return Compose([FEATURES[n]() for n in names]), "_".join(names)
