"""The 'spd' pre-transform: hop distances match networkx and next-hop edges walk real shortest paths."""
from __future__ import annotations

import networkx as nx
import pytest
import torch
from torch_geometric.data import Batch, Data
from torch_geometric.utils import to_undirected

from gtsp.data.shortest_paths import UNREACHABLE, ShortestPaths
from gtsp.data.transforms import FEATURES, pre_transform_for


def random_graph(n: int, m: int, seed: int, directed: bool = False) -> Data:
    gen = torch.Generator().manual_seed(seed)
    edge_index = torch.randint(0, n, (2, m), generator=gen)
    edge_index = edge_index[:, edge_index[0] != edge_index[1]]
    if not directed:
        edge_index = to_undirected(edge_index, num_nodes=n)
    return Data(edge_index=edge_index, num_nodes=n)


def to_networkx(data: Data, directed: bool) -> nx.Graph:
    graph = nx.DiGraph() if directed else nx.Graph()
    graph.add_nodes_from(range(data.num_nodes))
    graph.add_edges_from(data.edge_index.t().tolist())
    return graph


@pytest.mark.parametrize("directed", [False, True])
@pytest.mark.parametrize("seed", range(4))
def test_distances_match_networkx(seed: int, directed: bool) -> None:
    n = 14
    data = ShortestPaths()(random_graph(n, 12, seed, directed))  # sparse: several components
    spd = data.spd.view(n, n)
    lengths = dict(nx.all_pairs_shortest_path_length(to_networkx(data, directed)))
    unreachable = 0
    for i in range(n):
        for j in range(n):
            expected = lengths[i].get(j, UNREACHABLE)
            unreachable += expected == UNREACHABLE
            assert int(spd[i, j]) == expected, (i, j)
    assert unreachable > 0  # the test really covers disconnected pairs


@pytest.mark.parametrize("directed", [False, True])
@pytest.mark.parametrize("seed", range(3))
def test_path_edges_walk_one_shortest_path(seed: int, directed: bool) -> None:
    n = 12
    data = ShortestPaths()(random_graph(n, 20, seed, directed))
    spd, first = data.spd.view(n, n), data.path_edge.view(n, n).long()
    src, dst = data.edge_index
    for i in range(n):
        for j in range(n):
            if i == j or int(spd[i, j]) == UNREACHABLE:
                assert first[i, j] == -1
                continue
            node, hops = i, 0
            while node != j:
                edge = int(first[node, j])
                assert edge >= 0 and int(src[edge]) == node
                node, hops = int(dst[edge]), hops + 1
                assert hops <= int(spd[i, j])
            assert hops == int(spd[i, j])


def test_storage_is_compact_and_batches_without_offsets() -> None:
    graphs = [ShortestPaths()(random_graph(n, 2 * n, n)) for n in (3, 5, 8)]
    for g in graphs:
        assert g.spd.dtype == torch.uint8 and g.path_edge.dtype == torch.int16
        assert g.spd.shape == g.path_edge.shape == (g.num_nodes ** 2,)
    batch = Batch.from_data_list(graphs)
    assert batch.spd.numel() == sum(g.num_nodes ** 2 for g in graphs)
    # Edge ids stay graph-local: the model adds the offsets.
    assert torch.equal(batch.path_edge, torch.cat([g.path_edge for g in graphs]))


def test_isolated_nodes_and_empty_graphs() -> None:
    data = ShortestPaths()(Data(edge_index=torch.tensor([[0, 1], [1, 0]]), num_nodes=3))
    assert data.spd.view(3, 3).tolist() == [[0, 1, 255], [1, 0, 255], [255, 255, 0]]
    assert data.path_edge.view(3, 3).tolist() == [[-1, 0, -1], [1, -1, -1], [-1, -1, -1]]
    single = ShortestPaths()(Data(edge_index=torch.zeros(2, 0, dtype=torch.long), num_nodes=1))
    assert single.spd.tolist() == [0] and single.path_edge.tolist() == [-1]


def test_registered_as_precomputed_feature() -> None:
    assert "spd" in FEATURES
    transform, tag = pre_transform_for(["spd"])
    assert tag == "spd"
    assert transform(random_graph(5, 6, 0)).spd.numel() == 25
