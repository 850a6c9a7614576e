"""Local message passing by name: ``"gine"``, ``"gin"``, ``"gcn"`` (or ``"none"``).

Every backbone that mixes a local MPNN into its layers asks :func:`build_local_mpnn` for one,
so adding a convolution means adding one entry to :data:`LOCAL_MPNNS`, not an ``if`` in each
backbone. Each comes wrapped in :class:`LocalMPNN`, whose call is the same whatever the
convolution: ``mpnn(x, edge_index, edge_attr)`` (edge features are passed only to those that
read them). GIN's MLP is a :class:`gtsp.nn.ffn.FeedForward`, so neuron and weight pruning
apply to it like to any FFN.
"""
from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn
from torch_geometric.nn import GCNConv, GINConv, GINEConv

from gtsp.errors import GtspError
from gtsp.nn.ffn import FeedForward


class LocalMPNN(nn.Module):
    """A PyG convolution with the uniform call ``(x, edge_index, edge_attr)``.

    Args:
        conv: the convolution.
        uses_edge_attr: whether ``conv`` takes edge features.
    """

    def __init__(self, conv: nn.Module, uses_edge_attr: bool) -> None:
        super().__init__()
        self.conv, self.uses_edge_attr = conv, uses_edge_attr

    def reset_parameters(self) -> None:
        self.conv.reset_parameters()

    def forward(self, x: Tensor, edge_index: Tensor, edge_attr: Tensor | None = None) -> Tensor:
        if self.uses_edge_attr:
            return self.conv(x, edge_index, edge_attr)
        return self.conv(x, edge_index)


def _gine(dim: int, mlp_hidden: int) -> LocalMPNN:
    return LocalMPNN(GINEConv(FeedForward(dim, mlp_hidden, activation="relu"), train_eps=True), True)


def _gin(dim: int, mlp_hidden: int) -> LocalMPNN:
    return LocalMPNN(GINConv(FeedForward(dim, mlp_hidden, activation="relu"), train_eps=True), False)


def _gcn(dim: int, mlp_hidden: int) -> LocalMPNN:
    return LocalMPNN(GCNConv(dim, dim), False)


# name -> builder(dim, mlp_hidden); whether a builder reads edge features is in EDGE_AWARE
LOCAL_MPNNS: dict[str, Callable[[int, int], LocalMPNN]] = {"gine": _gine, "gin": _gin, "gcn": _gcn}
EDGE_AWARE = frozenset({"gine"})


def resolve_local_kind(kind: str, has_edge_features: bool, allowed: tuple[str, ...]) -> str:
    """``kind`` checked against ``allowed``; an edge-aware kind falls back to GIN when the data has no edge
    features (GINE without edge features is GIN)."""
    if kind not in allowed:
        raise GtspError(f"unknown local MPNN {kind!r}: choose one of {', '.join(allowed)}")
    return "gin" if kind in EDGE_AWARE and not has_edge_features else kind


def build_local_mpnn(kind: str, dim: int, mlp_hidden: int) -> LocalMPNN | None:
    """The local MPNN ``kind`` of width ``dim`` (GIN MLPs of hidden width ``mlp_hidden``); None for ``"none"``."""
    if kind == "none":
        return None
    if kind not in LOCAL_MPNNS:
        raise GtspError(f"unknown local MPNN {kind!r}: choose one of {', '.join([*LOCAL_MPNNS, 'none'])}")
    return LOCAL_MPNNS[kind](dim, mlp_hidden)
