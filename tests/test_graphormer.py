"""Graphormer: the attention bias is exactly the paper's spatial + edge + virtual-token encoding,
it reaches the attention, and head pruning keeps each head paired with its bias head."""
from __future__ import annotations

import pytest
import torch
from torch_geometric.data import Batch, Data
from torch_geometric.utils import to_undirected

from gtsp.data.info import DatasetInfo
from gtsp.data.shortest_paths import ShortestPaths
from gtsp.models import build_model
from gtsp.models.graphormer import Graphormer
from gtsp.models.graphormer_bias import SharedBiasAttention
from gtsp.sparsify.head import HeadGate

INFO = DatasetInfo(name="toy", num_node_features=5, num_edge_features=3, molecular=False,
                   task="multiclass", num_outputs=2, metric="accuracy", higher_is_better=True)
HEADS = 4


def make_graph(n: int, pairs: list[tuple[int, int]], seed: int = 0) -> Data:
    """Undirected graph on ``n`` nodes with the given edges, random features, shortest paths added."""
    gen = torch.Generator().manual_seed(seed)
    edge_index = torch.tensor(pairs, dtype=torch.long).t().reshape(2, -1)
    edge_attr = torch.randn(edge_index.size(1), 3, generator=gen)
    edge_index, edge_attr = to_undirected(edge_index, edge_attr, num_nodes=n)
    data = Data(x=torch.randn(n, 5, generator=gen), edge_index=edge_index, edge_attr=edge_attr, num_nodes=n)
    return ShortestPaths()(data)


def path_graph(n: int, seed: int = 0) -> Data:
    return make_graph(n, [(i, i + 1) for i in range(n - 1)], seed)


def model(**hparams) -> Graphormer:
    torch.manual_seed(0)
    args = dict(hidden=16, layers=2, heads=HEADS, attn_dropout=0.0) | hparams
    return build_model("graphormer", INFO, **args).eval()


def bias_of(net: Graphormer, graphs: list[Data]) -> torch.Tensor:
    return net.encode(Batch.from_data_list(graphs))[1].attn_bias


def edge_id(data: Data, u: int, v: int) -> int:
    return int(((data.edge_index[0] == u) & (data.edge_index[1] == v)).nonzero())


def test_required_features() -> None:
    assert Graphormer.required_features({}) == ("spd",)
    assert set(Graphormer.required_features({"rwse_steps": 20})) == {"spd", "rwse"}


@torch.no_grad()
def test_bias_is_spatial_table_and_virtual_token() -> None:
    net = model(max_path=0)  # spatial encoding only
    graph = make_graph(7, [(0, 1), (1, 2), (2, 3), (4, 5)])  # two components and an isolated node
    bias = bias_of(net, [graph])[0]
    spd = graph.spd.view(7, 7).long()
    spd[spd == 255] = net.bias.max_dist + 1
    table = net.bias.spatial.weight  # [distances, heads]
    assert torch.equal(bias[:, 1:, 1:], table[spd].permute(2, 0, 1))
    virtual = net.bias.virtual.view(HEADS, 1)
    assert torch.equal(bias[:, 0, :], virtual.expand(-1, 8))
    assert torch.equal(bias[:, 1:, 0], virtual.expand(-1, 7))


@torch.no_grad()
def test_spatial_table_entries_act_only_where_their_distance_occurs() -> None:
    net = model()
    connected = path_graph(5)  # distances 0..4
    disconnected = make_graph(5, [(0, 1), (2, 3)])
    before = [net(Batch.from_data_list([g])) for g in (connected, disconnected)]

    def outputs_after(distance: int) -> list[torch.Tensor]:
        saved = net.bias.spatial.weight[distance].clone()
        net.bias.spatial.weight[distance] += 1.0
        after = [net(Batch.from_data_list([g])) for g in (connected, disconnected)]
        net.bias.spatial.weight[distance] = saved
        return after

    after = outputs_after(2)  # occurs in the path graph only
    assert not torch.allclose(after[0], before[0]) and torch.equal(after[1], before[1])
    after = outputs_after(15)  # occurs nowhere
    assert torch.equal(after[0], before[0]) and torch.equal(after[1], before[1])
    after = outputs_after(net.bias.max_dist + 1)  # the unreachable bucket
    assert torch.equal(after[0], before[0]) and not torch.allclose(after[1], before[1])


@torch.no_grad()
def test_edge_encoding_is_mean_of_position_projections_over_the_path() -> None:
    net = model(max_path=2)
    graph = path_graph(4)  # 0 - 1 - 2 - 3: unique shortest paths
    feat = net.edge_encoder(graph.edge_attr)
    proj = net.bias.edge_proj.weight.view(2, HEADS, -1)  # [position, head, edge_dim]
    spatial = net.bias.spatial.weight

    def expected(path: list[tuple[int, int]], distance: int) -> torch.Tensor:
        terms = [proj[k] @ feat[edge_id(graph, u, v)] for k, (u, v) in enumerate(path[:2])]
        return spatial[distance] + torch.stack(terms).mean(0)

    bias = bias_of(net, [graph])[0]
    assert torch.allclose(bias[:, 1 + 0, 1 + 3], expected([(0, 1), (1, 2), (2, 3)], 3), atol=1e-6)
    assert torch.allclose(bias[:, 1 + 3, 1 + 1], expected([(3, 2), (2, 1)], 2), atol=1e-6)
    assert torch.allclose(bias[:, 1 + 2, 1 + 1], expected([(2, 1)], 1), atol=1e-6)
    assert torch.equal(bias[:, 1 + 2, 1 + 2], spatial[0])

    def changed_pairs(u: int, v: int) -> set[tuple[int, int]]:
        edited = graph.clone()
        for a, b in ((u, v), (v, u)):
            edited.edge_attr[edge_id(graph, a, b)] += 1.0
        diff = (bias_of(net, [edited])[0] - bias).abs().amax(0)[1:, 1:]
        return {tuple(p) for p in (diff > 0).nonzero().tolist()}

    # Edge 1-2 lies on the first two hops of 0 -> 3; edge 2-3 lies beyond the cap of 2 hops.
    assert (0, 3) in changed_pairs(1, 2)
    assert (0, 1) not in changed_pairs(1, 2)
    assert (0, 3) not in changed_pairs(2, 3) and (1, 3) in changed_pairs(2, 3)


def test_bias_tables_receive_gradients() -> None:
    net = model().train()
    graphs = [path_graph(4), make_graph(6, [(0, 1), (1, 2), (2, 0), (3, 4)], seed=1)]
    net(Batch.from_data_list(graphs)).sum().backward()
    for param in (net.bias.spatial.weight, net.bias.virtual, net.bias.edge_proj.weight,
                  net.degree_encoder.weight):
        assert param.grad is not None and param.grad.abs().sum() > 0


@torch.no_grad()
def test_prune_heads_with_zero_gates_keeps_outputs_and_bias_heads() -> None:
    net = model(layers=3)
    batch = Batch.from_data_list([path_graph(5), make_graph(6, [(0, 1), (1, 2), (2, 0), (3, 4)], seed=1)])
    first, second, third = (layer.attention for layer in net.layers)
    assert all(isinstance(a, SharedBiasAttention) for a in (first, second, third))
    for attention, off in ((first, [1, 3]), (second, [0, 1]), (third, [1])):
        attention.head_transform = HeadGate(attention.num_heads)
        attention.head_transform.gate[off] = 0.0
    before = net(batch)
    for attention in (first, second, third):
        attention.head_transform = None
    first.prune_heads(torch.tensor([0, 2]))
    second.prune_heads(torch.tensor([2, 3]))
    third.prune_heads(torch.tensor([0, 2, 3]))
    assert first.head_index.tolist() == [0, 2] and second.head_index.tolist() == [2, 3]
    assert torch.allclose(net(batch), before, atol=1e-6)
    # Head 1 is now read by no layer: the shared tables drop it, each layer's index is remapped.
    net.compact_shared()
    assert net.bias.num_heads == 3 and net.bias.spatial.weight.shape == (net.bias.max_dist + 2, 3)
    assert net.bias.edge_proj.out_features == net.bias.max_path * 3
    assert first.head_index.tolist() == [0, 1] and third.head_index.tolist() == [0, 1, 2]
    assert torch.allclose(net(batch), before, atol=1e-6)


@torch.no_grad()
def test_molecular_features_and_layer_removal() -> None:
    info = DatasetInfo(name="mol", num_node_features=9, num_edge_features=3, molecular=True,
                       task="binary", num_outputs=1, metric="rocauc", higher_is_better=True)
    torch.manual_seed(0)
    net = build_model("graphormer", info, hidden=16, layers=2, heads=HEADS).eval()
    graphs = []
    for n in (3, 6):
        edge_index = to_undirected(torch.tensor([[i, i + 1] for i in range(n - 1)]).t())
        graph = Data(x=torch.randint(0, 2, (n, 9)), edge_index=edge_index,
                     edge_attr=torch.randint(0, 2, (edge_index.size(1), 3)), num_nodes=n)
        graphs.append(ShortestPaths()(graph))
    batch = Batch.from_data_list(graphs)
    assert net(batch).shape == (2, 1)
    del net.layers[0]  # what layer pruning does
    assert torch.isfinite(net(batch)).all()


def test_missing_shortest_paths_is_a_clear_error() -> None:
    graph = path_graph(3)
    del graph.spd
    with pytest.raises(Exception, match="spd"):
        model()(Batch.from_data_list([graph]))


def test_distance_init_starts_heads_local_at_their_own_slopes():
    from gtsp.errors import GtspError
    from gtsp.models.graphormer_bias import GraphormerBias

    bias = GraphormerBias(4, max_dist=5, spatial_init="distance")
    table = bias.spatial.weight.detach()
    distance = torch.arange(7, dtype=torch.float32)
    for head, slope in enumerate([0.0, 0.5, 1.0, 2.0]):
        assert torch.equal(table[:, head], -slope * distance)
    assert not torch.equal(GraphormerBias(4, max_dist=5).spatial.weight[:, 1], -0.5 * distance)
    with pytest.raises(GtspError, match="spatial_init"):
        GraphormerBias(4, spatial_init="alibi")
