"""Shared fixtures: the data root beside the repo, a private cache, and tiny in-memory graphs."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from torch_geometric.data import Batch, Data
from torch_geometric.utils import to_undirected

from gtsp.data.info import DatasetInfo


def _find_data_root() -> Path | None:
    beside = Path(__file__).resolve().parents[1].parent / "shared" / "data"
    if beside.is_dir():
        return beside
    env = os.environ.get("GTSP_DATA")
    return Path(env) if env else None


DATA_ROOT = _find_data_root()


@pytest.fixture(scope="session")
def data_root() -> Path:
    if DATA_ROOT is None:
        pytest.skip("no shared data root (set GTSP_DATA)")
    return DATA_ROOT


@pytest.fixture(scope="session")
def cache_root(tmp_path_factory) -> Path:
    """One processed-data cache for the whole session (processing NCI1 once is enough)."""
    return tmp_path_factory.mktemp("gtsp-cache")


def random_graph(num_nodes: int, node_features: int = 7, edge_features: int = 4, seed: int = 0,
                 rwse: bool = True) -> Data:
    gen = torch.Generator().manual_seed(seed)
    edges = torch.randint(0, num_nodes, (2, 2 * num_nodes), generator=gen)
    edges = edges[:, edges[0] != edges[1]]
    edge_index = to_undirected(edges, num_nodes=num_nodes)
    data = Data(x=torch.randn(num_nodes, node_features, generator=gen), edge_index=edge_index,
                edge_attr=torch.randn(edge_index.size(1), edge_features, generator=gen),
                y=torch.tensor([seed % 2]), num_nodes=num_nodes)
    if rwse:
        from gtsp.data.transforms import FEATURES
        data = FEATURES["rwse"]()(data)
    return data


@pytest.fixture
def tiny_info() -> DatasetInfo:
    return DatasetInfo("tiny", 7, 4, False, "multiclass", 2, "accuracy", True)


@pytest.fixture
def tiny_batch() -> Batch:
    return Batch.from_data_list([random_graph(n, seed=i) for i, n in enumerate([5, 9, 3, 12])])
