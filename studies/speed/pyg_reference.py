"""GraphGPS built the usual PyG way, from ``torch_geometric.nn.GPSConv``: the speed reference for gtsp's ``GPS``.

Each layer is PyG's own ``GPSConv`` (local ``GINConv(Sequential(Linear, ReLU, Linear))``, or
``GINEConv`` on encoded edge features, ``attn_type="multihead"``, i.e.
``torch.nn.MultiheadAttention`` over ``to_dense_batch`` padded sequences with a key padding
mask, batch norm). Node and edge encoders, pooling and prediction head are gtsp's very
modules, so the two models differ only in the layers.

The math of one layer is the same as gtsp's ``GPSLayer`` (see ``tests/test_speed_reference.py``):

    GPSConv:   h1 = BN1(conv(x) + x);  h2 = BN2(MHA(x) + x);  out = BN3((h1 + h2) + MLP(h1 + h2))
    GPSLayer:  h1 = BN(x + GIN(x));    h2 = BN(x + Attn(x));  out = BN(h + FFN(h)),  h = h1 + h2

(dropout on the branches at the same places). The GIN MLP here is ``Linear-ReLU-Linear``,
gtsp's is ``FeedForward`` (``Linear-ReLU-Dropout(0)-Linear-Dropout(0)``): the same function.
``train_eps=True`` by default, as gtsp's GIN has a trainable epsilon (pass ``False`` for
PyG's default; at epsilon 0 both compute the same).

This file lives in the speed study (``studies/speed``) rather than in ``src/gtsp``: it is a
yardstick for measurements and tests, not something gtsp's training or pruning ever uses,
and it must not become part of the package API that sparsifiers are written against.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.data import Batch
from torch_geometric.nn import GINConv, GINEConv, GPSConv, global_add_pool, global_mean_pool

from gtsp.data.info import DatasetInfo
from gtsp.models.encoders import EdgeEncoder, NodeEncoder
from gtsp.nn.ffn import FeedForward

POOLS = {"sum": global_add_pool, "mean": global_mean_pool}
LOCALS = {"gin": GINConv, "gine": GINEConv}


class PygGPS(nn.Module):
    """A stack of PyG ``GPSConv`` layers between gtsp's node encoder and readout head.

    Args:
        info: the dataset's shape and task.
        hidden, layers, heads: width, depth and attention heads.
        dropout: ``GPSConv``'s dropout (residual branches and MLP).
        attn_dropout: dropout on attention probabilities (``MultiheadAttention(dropout=...)``).
        pool: ``"sum"`` or ``"mean"``.
        rwse_steps: random-walk structural encoding length (0 to disable).
        train_eps: GIN's trainable epsilon.
        local: ``"gin"`` or ``"gine"`` (GIN on node states plus encoded edge features).
    """

    def __init__(self, info: DatasetInfo, hidden: int = 64, layers: int = 4, heads: int = 4,
                 dropout: float = 0.0, attn_dropout: float = 0.5, pool: str = "sum", rwse_steps: int = 20,
                 train_eps: bool = True, local: str = "gin") -> None:
        super().__init__()
        if local not in LOCALS:
            raise ValueError(f"local must be one of {sorted(LOCALS)}, not {local!r}")
        self.node_encoder = NodeEncoder(info, hidden, rwse_steps)
        self.edge_encoder = EdgeEncoder(info, hidden) if local == "gine" else None
        self.layers = nn.ModuleList()
        for _ in range(layers):
            mlp = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, hidden))
            conv = LOCALS[local](mlp, train_eps=train_eps)
            self.layers.append(GPSConv(hidden, conv, heads=heads, dropout=dropout,
                                       attn_type="multihead", attn_kwargs={"dropout": attn_dropout},
                                       norm="batch_norm"))
        self.pool = POOLS[pool]
        self.head = FeedForward(hidden, hidden, activation="relu", out_dim=info.num_outputs)

    def forward(self, data: Batch) -> Tensor:
        x = self.node_encoder(data)
        edges = {} if self.edge_encoder is None else {"edge_attr": self.edge_encoder(data.edge_attr)}
        for layer in self.layers:
            x = layer(x, data.edge_index, data.batch, **edges)
        return self.head(self.pool(x, data.batch, size=data.num_graphs))


def build_reference(info: DatasetInfo, **hparams) -> PygGPS:
    """A :class:`PygGPS` with the given hyper-parameters (same names as gtsp's ``GPS``)."""
    return PygGPS(info, **hparams)


@torch.no_grad()
def copy_layer_weights(gtsp_layer: nn.Module, conv: GPSConv) -> None:
    """Load gtsp ``GPSLayer`` weights into a PyG ``GPSConv`` so both compute the same function.

    ``MultiheadAttention.in_proj_weight`` stacks ``[q; k; v]`` rows, each ``[heads, head_dim]``:
    exactly gtsp's ``qkv`` row order ``[3, heads, head_dim]``. Requires a GIN or GINE local model
    of the same kind as ``conv``'s and no sparsifier gates (an unpruned gtsp layer).
    """
    local = gtsp_layer.local
    if local is None or type(local.conv) is not type(conv.conv) or gtsp_layer.attention is None:
        raise ValueError("only a GIN/GINE + attention GPSLayer maps onto a GPSConv with the same local model")
    attn, ffn, gin = gtsp_layer.attention, gtsp_layer.ffn, local.conv
    if any(slot is not None for slot in (attn.head_transform, attn.token_selector, ffn.hidden_transform,
                                         gin.nn.hidden_transform)):
        raise ValueError("gtsp layer carries sparsifier gates or a token selector: GPSConv has no gates")
    conv.conv.nn[0].load_state_dict(gin.nn.fc1.state_dict())
    conv.conv.nn[2].load_state_dict(gin.nn.fc2.state_dict())
    conv.conv.eps.copy_(gin.eps)
    conv.attn.in_proj_weight.copy_(attn.qkv.weight)
    conv.attn.in_proj_bias.copy_(attn.qkv.bias)
    conv.attn.out_proj.load_state_dict(attn.out.state_dict())
    conv.norm1.module.load_state_dict(gtsp_layer.norm_local.state_dict())
    conv.norm2.module.load_state_dict(gtsp_layer.norm_attn.state_dict())
    conv.norm3.module.load_state_dict(gtsp_layer.norm_out.state_dict())
    conv.mlp[0].load_state_dict(ffn.fc1.state_dict())
    conv.mlp[3].load_state_dict(ffn.fc2.state_dict())


@torch.no_grad()
def reference_from_gtsp(model: nn.Module, info: DatasetInfo, attn_dropout: float | None = None) -> PygGPS:
    """A :class:`PygGPS` holding a (GIN- or GINE-local, unpruned) gtsp ``GPS`` model's exact weights."""
    first = model.layers[0]
    attn = first.attention
    hidden = attn.dim
    rwse_steps = model.node_encoder.rwse[1].in_features if model.node_encoder.rwse is not None else 0
    pool = "sum" if model.pool is global_add_pool else "mean"
    ref = PygGPS(info, hidden=hidden, layers=len(model.layers), heads=attn.num_heads,
                 dropout=first.drop.p, attn_dropout=attn.dropout if attn_dropout is None else attn_dropout,
                 pool=pool, rwse_steps=rwse_steps, train_eps=True,
                 local="gine" if model.edge_encoder is not None else "gin")
    ref.node_encoder.load_state_dict(model.node_encoder.state_dict())
    if model.edge_encoder is not None:
        ref.edge_encoder.load_state_dict(model.edge_encoder.state_dict())
    ref.head.load_state_dict(model.head.state_dict())
    for layer, conv in zip(model.layers, ref.layers):
        copy_layer_weights(layer, conv)
    return ref.train(model.training)
