"""Backbones by name. Each composes the shared blocks of :mod:`gtsp.nn`."""
from __future__ import annotations

import inspect

from gtsp.data.info import DatasetInfo
from gtsp.errors import GtspError
from gtsp.models.base import GraphContext, GraphTransformer
from gtsp.models.gps import GPS
from gtsp.models.graphormer import Graphormer
from gtsp.models.graphtrans import GraphTrans

MODELS: dict[str, type[GraphTransformer]] = {"gps": GPS, "graphtrans": GraphTrans, "graphormer": Graphormer}


def build_model(name: str, info: DatasetInfo, **hparams) -> GraphTransformer:
    """Instantiate backbone ``name`` for ``info`` with keyword hyper-parameters."""
    if name not in MODELS:
        raise GtspError(f"unknown model {name!r}: choose one of {', '.join(sorted(MODELS))}")
    accepted = [p for p in inspect.signature(MODELS[name].__init__).parameters if p not in ("self", "info")]
    unknown = sorted(set(hparams) - set(accepted))
    if unknown:
        raise GtspError(f"{name} has no hyper-parameter {', '.join(unknown)}: its hyper-parameters are "
                        f"{', '.join(accepted)}")
    return MODELS[name](info, **hparams)


__all__ = ["MODELS", "GraphContext", "GraphTransformer", "build_model"]
