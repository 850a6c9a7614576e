"""Backbones by name. Each composes the shared blocks of :mod:`gtsp.nn` and declares its typed
hyper-parameters (a dataclass) and the contract of :class:`GraphTransformer`."""
from __future__ import annotations

from typing import Any

from gtsp.data.info import DatasetInfo
from gtsp.errors import GtspError
from gtsp.models.base import GraphContext, GraphTransformer
from gtsp.models.gps import GPS
from gtsp.models.graphormer import Graphormer
from gtsp.models.graphtrans import GraphTrans
from gtsp.models.params import coerce

MODELS: dict[str, type[GraphTransformer]] = {"gps": GPS, "graphtrans": GraphTrans, "graphormer": Graphormer}


def backbone(name: str) -> type[GraphTransformer]:
    """The backbone class called ``name``, or a clear error."""
    if name not in MODELS:
        raise GtspError(f"unknown model {name!r}: choose one of {', '.join(sorted(MODELS))}")
    return MODELS[name]


def check_hparams(name: str, hparams: dict[str, Any]) -> Any:
    """Backbone ``name``'s typed hyper-parameters from ``hparams`` (each value and range checked)."""
    cls = backbone(name)
    return coerce(name, cls.Params, hparams)


def build_model(name: str, info: DatasetInfo, **hparams: Any) -> GraphTransformer:
    """Instantiate backbone ``name`` for ``info`` with keyword hyper-parameters."""
    return backbone(name)(info, check_hparams(name, hparams))


__all__ = ["MODELS", "GraphContext", "GraphTransformer", "backbone", "build_model", "check_hparams"]
