"""Input encoders: node features, edge features and structural encodings -> width ``C``.

Molecules (OGB featurisation) use OGB's ``AtomEncoder``/``BondEncoder`` (Hu et al.
2020); other datasets use a linear map of their (one-hot) features. The
random-walk structural encoding (RWSE, Dwivedi et al. 2022; computed by PyG's
``AddRandomWalkPE`` and cached with the dataset) is normalised and added.
"""
from __future__ import annotations

from ogb.graphproppred.mol_encoder import AtomEncoder, BondEncoder
from torch import Tensor, nn
from torch_geometric.data import Batch

from gtsp.data.info import DatasetInfo


class NodeEncoder(nn.Module):
    """``x`` (+ optional RWSE of length ``rwse_steps``) -> ``[N, dim]``."""

    def __init__(self, info: DatasetInfo, dim: int, rwse_steps: int = 0) -> None:
        super().__init__()
        self.features = AtomEncoder(dim) if info.molecular else nn.Linear(info.num_node_features, dim)
        self.rwse = nn.Sequential(nn.BatchNorm1d(rwse_steps), nn.Linear(rwse_steps, dim)) if rwse_steps else None

    def forward(self, data: Batch) -> Tensor:
        x = self.features(data.x if isinstance(self.features, AtomEncoder) else data.x.float())
        if self.rwse is not None:
            x = x + self.rwse(data.rwse)
        return x


class EdgeEncoder(nn.Module):
    """``edge_attr`` -> ``[E, dim]``."""

    def __init__(self, info: DatasetInfo, dim: int) -> None:
        super().__init__()
        self.features = BondEncoder(dim) if info.molecular else nn.Linear(info.num_edge_features, dim)

    def forward(self, edge_attr: Tensor) -> Tensor:
        return self.features(edge_attr if isinstance(self.features, BondEncoder) else edge_attr.float())


def edge_encoder(info: DatasetInfo, dim: int) -> EdgeEncoder | None:
    """An edge encoder when the dataset has edge features, else None."""
    return EdgeEncoder(info, dim) if info.num_edge_features > 0 else None
