"""GraphTrans reads the graph from its [CLS] token; every backbone (GPS, GraphTrans,
Graphormer) is invariant to node order and gives the same per-graph output alone or batched."""
from __future__ import annotations

import pytest
import torch
from torch_geometric.data import Batch, Data
from torch_geometric.utils import to_undirected

from gtsp.data.info import DatasetInfo
from gtsp.data.transforms import pre_transform_for
from gtsp.models import MODELS, build_model
from gtsp.models.graphtrans import GraphTrans

INFO = DatasetInfo(name="toy", num_node_features=5, num_edge_features=3, molecular=False,
                   task="multiclass", num_outputs=2, metric="accuracy", higher_is_better=True)
SMALL = dict(hidden=16, layers=2, heads=4)

# (backbone, hyper-parameters, graph shape). Graphormer's edge encoding follows ONE shortest
# path per pair, chosen by node order when several exist, so with edge features it is
# order-invariant only where shortest paths are unique (trees); without it on any graph.
CASES = [
    ("gps", dict(SMALL), "cyclic"),
    ("graphtrans", dict(SMALL, gnn_layers=2), "cyclic"),
    ("graphtrans", dict(SMALL, gnn_layers=2, gnn="gcn"), "cyclic"),
    ("graphormer", dict(SMALL), "tree"),
    ("graphormer", dict(SMALL, max_path=0), "cyclic"),
]
IDS = [f"{name}-{'-'.join(f'{k}{v}' for k, v in hp.items() if k not in SMALL)}-{shape}"
       for name, hp, shape in CASES]


def random_graph(n: int, seed: int, shape: str) -> Data:
    gen = torch.Generator().manual_seed(seed)
    if shape == "tree":
        pairs = [[int(torch.randint(0, i, (1,), generator=gen)), i] for i in range(1, n)]
    else:
        pairs = torch.randint(0, n, (2 * n, 2), generator=gen).tolist()
        pairs = [p for p in pairs if p[0] != p[1]]
    edge_index = torch.tensor(pairs, dtype=torch.long).t().reshape(2, -1)
    edge_attr = torch.randn(edge_index.size(1), 3, generator=gen)
    edge_index, edge_attr = to_undirected(edge_index, edge_attr, num_nodes=n)
    return Data(x=torch.randn(n, 5, generator=gen), edge_index=edge_index, edge_attr=edge_attr, num_nodes=n)


def prepared(graphs: list[Data], name: str, hparams: dict) -> list[Data]:
    """Apply the pre-transform the backbone asks for, as the dataset loader does."""
    transform, _ = pre_transform_for(MODELS[name].required_features(hparams))
    return [transform(g) if transform is not None else g for g in graphs]


def trained_model(name: str, hparams: dict, graphs: list[Data]):
    """A model with non-trivial batch-norm statistics, in eval mode."""
    torch.manual_seed(0)
    net = build_model(name, INFO, **hparams)
    with torch.no_grad():
        net.train()
        net(Batch.from_data_list(graphs))  # moves batch-norm running statistics off their init
    return net.eval()


def permuted(data: Data, seed: int) -> Data:
    """The same graph with its nodes renumbered and its edges reordered."""
    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(data.num_nodes, generator=gen)  # new node k is old node perm[k]
    inverse = torch.empty_like(perm)
    inverse[perm] = torch.arange(data.num_nodes)
    edge_order = torch.randperm(data.num_edges, generator=gen)
    return Data(x=data.x[perm], edge_index=inverse[data.edge_index][:, edge_order],
                edge_attr=data.edge_attr[edge_order], num_nodes=data.num_nodes)


@pytest.mark.parametrize(("name", "hparams", "shape"), CASES, ids=IDS)
@torch.no_grad()
def test_invariant_to_node_order(name: str, hparams: dict, shape: str) -> None:
    graphs = [random_graph(n, seed, shape) for seed, n in enumerate((9, 12))]
    net = trained_model(name, hparams, prepared(graphs, name, hparams))
    for seed, graph in enumerate(graphs):
        original, renumbered = prepared([graph, permuted(graph, seed + 10)], name, hparams)
        out = net(Batch.from_data_list([original]))
        assert torch.allclose(net(Batch.from_data_list([renumbered])), out, atol=1e-5)


@pytest.mark.parametrize(("name", "hparams", "shape"), CASES, ids=IDS)
@torch.no_grad()
def test_batched_equals_alone(name: str, hparams: dict, shape: str) -> None:
    sizes = (1, 4, 11, 7, 2)  # includes a single node without edges and padding of every amount
    graphs = prepared([random_graph(n, seed, shape) for seed, n in enumerate(sizes)], name, hparams)
    net = trained_model(name, hparams, graphs)
    together = net(Batch.from_data_list(graphs))
    alone = torch.cat([net(Batch.from_data_list([g])) for g in graphs])
    assert torch.allclose(together, alone, atol=1e-5)
    # Layer pruning removes entries of ``layers``; what remains must still run.
    del net.layers[0]
    assert torch.allclose(net(Batch.from_data_list(graphs)),
                          torch.cat([net(Batch.from_data_list([g])) for g in graphs]), atol=1e-5)


@torch.no_grad()
def test_prediction_reads_only_the_cls_token() -> None:
    graphs = [random_graph(n, seed, "cyclic") for seed, n in enumerate((5, 8, 3))]
    net = trained_model("graphtrans", dict(SMALL, gnn_layers=2), graphs)
    batch = Batch.from_data_list(graphs)
    before = net(batch)
    noise = {}

    def perturb(module, inputs, output):
        return output + noise["mask"][None, :, None] * torch.randn_like(output)

    handle = net.layers[-1].register_forward_hook(perturb)
    length = net.encode(batch)[0].size(1)
    noise["mask"] = (torch.arange(length) > 0).float()  # every token but [CLS]
    assert torch.equal(net(batch), before)
    noise["mask"] = (torch.arange(length) == 0).float()  # [CLS] only
    assert not torch.allclose(net(batch), before)
    handle.remove()


@torch.no_grad()
def test_gnn_runs_in_encode_before_the_transformer() -> None:
    graphs = [random_graph(n, seed, "cyclic") for seed, n in enumerate((5, 8))]
    net = trained_model("graphtrans", dict(SMALL, gnn_layers=3, layers=2), graphs)
    assert len(net.gnn) == 3 and len(net.layers) == 2
    tokens, ctx = net.encode(Batch.from_data_list(graphs))
    assert tokens.shape == (2, 1 + 8, 16) and ctx.seq.prefix == 1
    assert torch.equal(tokens[:, 0], net.cls[0].expand(2, -1))  # [CLS] enters the transformer untouched
    # Without transformer layers the model is GNN + [CLS] readout and still predicts.
    net.layers = torch.nn.ModuleList()
    assert net(Batch.from_data_list(graphs)).shape == (2, 2)


def test_required_features_and_gin_fallback() -> None:
    assert GraphTrans.required_features({}) == ()
    assert GraphTrans.required_features({"rwse_steps": 20}) == ("rwse",)
    assert MODELS["gps"].required_features({}) == ("rwse",)
    plain = DatasetInfo(name="plain", num_node_features=5, num_edge_features=0, molecular=False,
                        task="multiclass", num_outputs=2, metric="accuracy", higher_is_better=True)
    net = build_model("graphtrans", plain, **SMALL)
    assert net.edge_encoder is None and not net.gnn[0].mpnn.uses_edge_attr
    graph = random_graph(6, 0, "cyclic")
    del graph.edge_attr
    assert net(Batch.from_data_list([graph])).shape == (1, 2)
