"""gtsp's GPS layer and attention compute what PyG's own GPSConv computes, given the same weights.

The speed study (``studies/speed/speed.py``) compares gtsp against ``studies/speed/pyg_reference.py``;
these tests show the comparison is between two implementations of one function:

- attention block: gtsp's ``MultiHeadSelfAttention`` on ``Sequences`` layouts (padded with a
  mask, or full size buckets without one) == ``nn.MultiheadAttention`` with ``key_padding_mask``;
- one layer: ``GPSLayer`` == ``GPSConv`` (same residual/norm order, see the reference's docstring),
  in eval mode and in training mode (batch statistics; dropout 0), gradients included;
- the whole model: ``GPS`` == ``PygGPS`` built by ``reference_from_gtsp``, with GIN and with GINE
  (edge features, as on ogbg-molhiv).
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch import nn
from torch_geometric.data import Batch
from torch_geometric.utils import to_dense_batch

from gtsp.data.info import DatasetInfo
from gtsp.models import build_model
from gtsp.models.base import GraphContext
from gtsp.nn.attention import MultiHeadSelfAttention
from gtsp.nn.sequences import Sequences
from gtsp.sparsify.head import HeadSparsifier
from tests.conftest import random_graph

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "studies" / "speed"))
from pyg_reference import copy_layer_weights, reference_from_gtsp  # noqa: E402

SIZES = [1, 3, 17, 64, 2, 111, 30]  # very different sizes in one batch (NCI1 ranges from 3 to 111 nodes)
ATOL = 1e-5


@pytest.fixture
def info() -> DatasetInfo:
    return DatasetInfo("tiny", 7, 0, False, "multiclass", 2, "accuracy", True)


@pytest.fixture
def mixed_batch() -> Batch:
    graphs = [random_graph(n, edge_features=1, seed=i) for i, n in enumerate(SIZES)]
    for g in graphs:
        g.edge_attr = None
    return Batch.from_data_list(graphs)


def _mha_like(attn: MultiHeadSelfAttention) -> nn.MultiheadAttention:
    mha = nn.MultiheadAttention(attn.dim, attn.num_heads, batch_first=True)
    with torch.no_grad():
        mha.in_proj_weight.copy_(attn.qkv.weight)  # [q; k; v] rows, each [heads, head_dim]
        mha.in_proj_bias.copy_(attn.qkv.bias)
        mha.out_proj.load_state_dict(attn.out.state_dict())
    return mha


@pytest.mark.parametrize("grad", [True, False], ids=["autograd", "no_grad"])
def test_attention_on_padded_sequences_matches_multihead_attention(mixed_batch, grad):
    torch.manual_seed(0)
    attn = MultiHeadSelfAttention(32, 4).eval()
    mha = _mha_like(attn).eval()
    x = torch.randn(mixed_batch.num_nodes, 32)
    seq = Sequences.from_batch(mixed_batch.batch, mixed_batch.num_graphs)
    with torch.set_grad_enabled(grad):
        ours = seq.to_flat(attn(seq.to_dense(x), seq.mask))
        dense, mask = to_dense_batch(x, mixed_batch.batch)  # what GPSConv does
        theirs = mha(dense, dense, dense, key_padding_mask=~mask, need_weights=False)[0][mask]
    assert torch.allclose(ours, theirs, atol=ATOL)


def test_attention_on_a_full_bucket_needs_no_mask():
    """Graphs of one size (a full bucket): gtsp skips the mask; PyG still passes an all-False one."""
    torch.manual_seed(0)
    attn = MultiHeadSelfAttention(32, 4).eval()
    mha = _mha_like(attn).eval()
    batch = torch.arange(5).repeat_interleave(23)
    seq = Sequences.from_batch(batch, 5)
    assert seq.is_full
    x = torch.randn(batch.numel(), 32)
    ours = seq.to_flat(attn(seq.to_dense(x), None))
    dense, mask = to_dense_batch(x, batch)
    theirs = mha(dense, dense, dense, key_padding_mask=~mask, need_weights=False)[0][mask]
    assert torch.allclose(ours, theirs, atol=ATOL)


def _layer_pair(info):
    torch.manual_seed(0)
    model = build_model("gps", info, hidden=32, layers=1, heads=4, local="gin", attn_dropout=0.0, rwse_steps=20)
    ref = reference_from_gtsp(model, info, attn_dropout=0.0)
    return model, ref


def _randomise_norms(*modules):
    """Non-trivial BN affine parameters and running statistics, copied identically where shared."""
    gen = torch.Generator().manual_seed(1)
    for module in modules:
        for bn in (m for m in module.modules() if isinstance(m, nn.BatchNorm1d)):
            with torch.no_grad():
                bn.weight.copy_(1 + 0.5 * torch.randn(bn.num_features, generator=gen))
                bn.bias.copy_(0.5 * torch.randn(bn.num_features, generator=gen))
                bn.running_mean.copy_(torch.randn(bn.num_features, generator=gen))
                bn.running_var.copy_(0.5 + torch.rand(bn.num_features, generator=gen))


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_gps_layer_matches_gpsconv(info, mixed_batch, mode):
    model, _ = _layer_pair(info)
    _randomise_norms(model)
    layer = model.layers[0]
    ref = reference_from_gtsp(model, info, attn_dropout=0.0)
    conv = ref.layers[0]
    with torch.no_grad():
        layer.local.conv.eps.fill_(0.3)  # a trained epsilon, mapped too
    copy_layer_weights(layer, conv)
    layer.train(mode == "train")
    conv.train(mode == "train")
    x = torch.randn(mixed_batch.num_nodes, 32, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_(True)
    ctx = GraphContext(batch=mixed_batch.batch, num_graphs=mixed_batch.num_graphs,
                       edge_index=mixed_batch.edge_index, edge_attr=None,
                       seq=Sequences.from_batch(mixed_batch.batch, mixed_batch.num_graphs))
    ours = layer(x, ctx)
    theirs = conv(x_ref, mixed_batch.edge_index, mixed_batch.batch)
    assert torch.allclose(ours, theirs, atol=ATOL)
    weights = torch.randn_like(ours)
    (ours * weights).sum().backward()
    (theirs * weights).sum().backward()
    assert torch.allclose(x.grad, x_ref.grad, atol=1e-4)
    assert torch.allclose(layer.attention.qkv.weight.grad, conv.attn.in_proj_weight.grad, atol=1e-4)
    assert torch.allclose(layer.ffn.fc1.weight.grad, conv.mlp[0].weight.grad, atol=1e-4)


def test_whole_model_matches_pyg_reference(info, mixed_batch):
    torch.manual_seed(0)
    model = build_model("gps", info, hidden=64, layers=4, heads=4, local="gin", attn_dropout=0.5, pool="sum",
                        rwse_steps=20)
    _randomise_norms(model)
    model.eval()
    ref = reference_from_gtsp(model, info).eval()
    with torch.no_grad():
        ours, theirs = model(mixed_batch), ref(mixed_batch)
    assert ours.shape == (len(SIZES), 2)
    assert torch.allclose(ours, theirs, atol=ATOL)
    # attention dropout is the only train-time difference (different random draws); the counts agree
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in ref.parameters())


def test_whole_model_with_edge_features_matches_pyg_reference():
    """GINE local model on encoded edge features (the ogbg-molhiv setting) maps onto GPSConv(GINEConv)."""
    info = DatasetInfo("tiny-edges", 7, 4, False, "multiclass", 2, "accuracy", True)
    batch = Batch.from_data_list([random_graph(n, edge_features=4, seed=i) for i, n in enumerate(SIZES)])
    torch.manual_seed(0)
    model = build_model("gps", info, hidden=32, layers=2, heads=4, local="gine", pool="mean", rwse_steps=20)
    _randomise_norms(model)
    model.eval()
    ref = reference_from_gtsp(model, info).eval()
    assert ref.edge_encoder is not None
    with torch.no_grad():
        ours, theirs = model(batch), ref(batch)
    assert torch.allclose(ours, theirs, atol=ATOL)
    batch.edge_attr = batch.edge_attr + 1.0  # the edge features reach both models' local MPNNs
    with torch.no_grad():
        shifted, shifted_ref = model(batch), ref(batch)
    assert not torch.allclose(shifted, ours, atol=1e-3)
    assert torch.allclose(shifted, shifted_ref, atol=ATOL)
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in ref.parameters())


def test_gated_layers_are_refused(info):
    model, ref = _layer_pair(info)
    HeadSparsifier(ratio=0.5).prepare(model)  # installs head gates, which GPSConv cannot hold
    with pytest.raises(ValueError, match="gates"):
        copy_layer_weights(model.layers[0], ref.layers[0])
