"""A PyG GraphGPS model (GPSConv layers, PyG's example layout) converted into gtsp's GraphGPS."""
from __future__ import annotations

import copy

import pytest
import torch
from ogb.graphproppred.mol_encoder import AtomEncoder, BondEncoder
from torch import nn
from torch_geometric.data import Batch
from torch_geometric.nn import GINConv, GINEConv, GPSConv, global_add_pool, global_mean_pool
from torch_geometric.nn.norm import BatchNorm

import gtsp
from gtsp.data.batching import eval_batches
from gtsp.data.info import DatasetInfo
from gtsp.errors import GtspError
from gtsp.train.trainer import predict

# drug-like molecules for an ogbg-molhiv-like batch (OGB featurisation, one binary task)
SMILES = ["CCO", "c1ccccc1O", "CC(=O)Nc1ccc(O)cc1", "CN1CCC[C@H]1c1cccnc1", "O=C(O)c1ccccc1OC(C)=O",
          "CC(C)Cc1ccc(C(C)C(=O)O)cc1", "Clc1ccc(Cl)cc1", "NCCc1ccc(O)c(O)c1", "C1CCNCC1", "OCC(O)CO",
          "c1ccc2ccccc2c1", "CC(C)NCC(O)COc1cccc2ccccc12"]


class PygGPS(nn.Module):
    """PyG's examples/graph_gps.py model, for one-hot features (Linear) or molecules (OGB encoders);
    ``variant`` swaps in PyG's BatchNorm on the encoding, mean pooling and a one-layer readout."""

    def __init__(self, info: DatasetInfo, channels: int = 32, pe_dim: int = 8, layers: int = 2,
                 variant: bool = False) -> None:
        super().__init__()
        self.pool = global_mean_pool if variant else global_add_pool
        if info.molecular:
            self.node_emb, self.edge_emb = AtomEncoder(channels - pe_dim), BondEncoder(channels)
        else:
            self.node_emb = nn.Linear(info.num_node_features, channels - pe_dim)
            if info.num_edge_features:
                self.edge_emb = nn.Linear(info.num_edge_features, channels)
        self.pe_lin, self.pe_norm = nn.Linear(20, pe_dim), BatchNorm(20) if variant else nn.BatchNorm1d(20)
        self.convs = nn.ModuleList()
        for _ in range(layers):
            mlp = nn.Sequential(nn.Linear(channels, channels), nn.ReLU(), nn.Linear(channels, channels))
            local = GINEConv(mlp) if hasattr(self, "edge_emb") else GINConv(mlp)
            self.convs.append(GPSConv(channels, local, heads=4, attn_kwargs={"dropout": 0.5}))
        self.mlp = nn.Sequential(nn.Linear(channels, channels // 2), nn.ReLU(), nn.Linear(channels // 2, channels // 4),
                                 nn.ReLU(), nn.Linear(channels // 4, info.num_outputs))
        if variant:
            self.mlp = nn.Sequential(nn.Linear(channels, info.num_outputs))

    def forward(self, batch: Batch) -> torch.Tensor:
        x = torch.cat((self.node_emb(batch.x if isinstance(self.node_emb, AtomEncoder) else batch.x.float()),
                       self.pe_lin(self.pe_norm(batch.rwse))), 1)
        extra = {"edge_attr": self.edge_emb(batch.edge_attr)} if hasattr(self, "edge_emb") else {}
        for conv in self.convs:
            x = conv(x, batch.edge_index, batch.batch, **extra)
        return self.mlp(self.pool(x, batch.batch))


def trained(info: DatasetInfo, graphs: list, steps: int = 6, variant: bool = False) -> PygGPS:
    """A PyG model after a few optimiser steps (weights and batch-norm statistics away from their init)."""
    torch.manual_seed(0)
    model = PygGPS(info, variant=variant)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    for step in range(steps):
        batch = Batch.from_data_list(graphs[(step * 16) % len(graphs):][:16])
        logits = model(batch)
        if info.task == "multiclass":
            loss = nn.functional.cross_entropy(logits, batch.y.view(-1))
        else:
            loss = nn.functional.binary_cross_entropy_with_logits(logits, batch.y.float())
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return model.eval()


def assert_same_logits(pyg: nn.Module, converted: nn.Module, graphs: list) -> None:
    """Equal within 1e-5 in float32; for molecules (integer features, which gtsp's encoders do not cast to
    float32) also equal to float64 rounding in float64: the same function, not merely close numbers."""
    with torch.no_grad():
        for batch in (Batch.from_data_list(graphs[:32]), Batch.from_data_list(graphs[-7:])):
            expected = pyg(batch)
            assert expected.abs().max() > 0.1  # not a degenerate model
            assert (converted(batch) - expected).abs().max() < 1e-5
            if not torch.is_floating_point(batch.x):
                wide = batch.clone()
                wide.rwse = wide.rwse.double()
                difference = copy.deepcopy(converted).double()(wide) - copy.deepcopy(pyg).double()(wide)
                assert difference.abs().max() < 1e-10


@pytest.fixture(scope="module")
def datasets(data_root, cache_root):
    """MUTAG and NCI1 with GraphGPS's random-walk encoding, loaded once for the module."""
    return {name: gtsp.load_dataset(name, data_root=str(data_root), cache_root=str(cache_root))
            for name in ("MUTAG", "NCI1")}


@pytest.mark.parametrize("name,variant", [("MUTAG", False), ("NCI1", False), ("NCI1", True)])
def test_converted_model_computes_the_same_logits(name, variant, datasets):
    data = datasets[name]
    pyg = trained(data.info, data.train, variant=variant)
    converted = gtsp.from_pyg(pyg, data, pool="mean" if variant else "sum")
    assert converted.spec["hparams"]["head_layers"] == (1 if variant else 3)
    assert converted.spec["hparams"]["local"] == ("gine" if name == "MUTAG" else "gin")
    assert_same_logits(pyg, converted.model, data.test)


def test_converted_molecule_model_computes_the_same_logits():
    from gtsp.data.featurize import featurize_smiles

    graphs, invalid = featurize_smiles(SMILES, ("rwse",))
    assert not invalid
    for k, graph in enumerate(graphs):
        graph.y = torch.tensor([[float(k % 2)]])
    info = DatasetInfo("molecules", 9, 3, True, "binary", 1, "rocauc", True)
    pyg = trained(info, graphs, steps=4)
    assert_same_logits(pyg, gtsp.from_pyg(pyg, info).model, graphs)


def test_converted_model_prunes_and_compacts_exactly(cache_root, tmp_path):
    data = gtsp.load_dataset("MUTAG", cache_root=str(cache_root))
    converted = gtsp.from_pyg(trained(data.info, data.train), data)
    path = gtsp.save_model(converted, tmp_path / "converted.safetensors")
    assert_same_logits(trained(data.info, data.train), gtsp.load_model(path).model, data.test)
    result = gtsp.prune(converted, prune={"head": 0.5, "layer": 0.5, "neuron": 0.5}, finetune_epochs=3,
                        batch_size=32, cache_root=str(cache_root))
    batches = eval_batches(data.test, 32)
    masked, _ = predict(result.model, batches, torch.device("cpu"))
    compacted, _ = predict(result.compacted, batches, torch.device("cpu"))
    assert (masked - compacted).abs().max() < 1e-5
    assert len(result.compacted.layers) == 1 and result.results["start_weights"]["source"] == "in memory"


def test_unsupported_parts_are_refused_by_name(cache_root):
    data = gtsp.load_dataset("MUTAG", cache_root=str(cache_root))
    performer = PygGPS(data.info)
    performer.convs[0] = GPSConv(32, GINEConv(nn.Sequential(nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 32))),
                                 heads=4, attn_type="performer")
    with pytest.raises(GtspError, match="attention 'performer' is not supported"):
        gtsp.from_pyg(performer, data)
    extra = PygGPS(data.info)
    extra.virtual_node = nn.Embedding(1, 32)
    with pytest.raises(GtspError, match=r"virtual_node \(Embedding\)"):
        gtsp.from_pyg(extra, data)
    embedded = PygGPS(data.info)
    embedded.node_emb = nn.Embedding(7, 24)
    with pytest.raises(GtspError, match="node encoder Embedding is not supported"):
        gtsp.from_pyg(embedded, data)
    layer_norm = PygGPS(data.info)
    layer_norm.convs[1] = GPSConv(32, GINEConv(nn.Sequential(nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 32))),
                                  heads=4, norm="layer_norm")
    with pytest.raises(GtspError, match="layer 1: normalisation LayerNorm"):
        gtsp.from_pyg(layer_norm, data)


BUILDER = '''
from torch import nn
from torch_geometric.nn import GINEConv, GPSConv


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed, self.edge_emb = nn.Linear(7, 16), nn.Linear(4, 16)
        mlp = lambda: nn.Sequential(nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 16))
        self.convs = nn.ModuleList(GPSConv(16, GINEConv(mlp()), heads=2) for _ in range(2))
        self.mlp = nn.Sequential(nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 2))

    def forward(self, batch):
        x, edge_attr = self.embed(batch.x), self.edge_emb(batch.edge_attr)
        for conv in self.convs:
            x = conv(x, batch.edge_index, batch.batch, edge_attr=edge_attr)
        return self.mlp(x.new_zeros(batch.num_graphs, x.size(1)).index_add_(0, batch.batch, x))


def build():
    return Model()
'''


def test_import_pyg_command_writes_a_model_file(cache_root, tmp_path, capsys):
    from gtsp.cli import main

    (tmp_path / "builder.py").write_text(BUILDER)
    namespace: dict = {}
    exec(compile(BUILDER, "builder", "exec"), namespace)
    torch.manual_seed(1)
    pyg = namespace["build"]()
    for conv in pyg.convs:  # batch-norm statistics away from their init, as after training
        conv.norm1.module.running_mean.uniform_(-0.5, 0.5)
        conv.norm3.module.running_var.uniform_(0.5, 2.0)
    torch.save(pyg.state_dict(), tmp_path / "weights.pt")
    out = tmp_path / "converted.safetensors"
    argv = ["import-pyg", f"{tmp_path / 'builder.py'}:build", "--weights", str(tmp_path / "weights.pt"),
            "--dataset", "MUTAG", "--part", "node_encoder=embed", "--cache-root", str(cache_root), "--out", str(out)]
    assert main(argv) == 0 and str(out) in capsys.readouterr().out
    data = gtsp.load_dataset("MUTAG", cache_root=str(cache_root))
    assert_same_logits(pyg.eval(), gtsp.load_model(out).model, data.test)
    without_part = [a for a in argv if a not in ("--part", "node_encoder=embed")]
    assert main([*without_part[:-1], str(tmp_path / "x.safetensors")]) == 2
    assert "part(s) embed (Linear)" in capsys.readouterr().err
