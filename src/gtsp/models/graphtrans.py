"""GraphTrans backbone (Wu et al., NeurIPS 2021, "Representing Long-Range Context for
Graph Neural Networks with Global Attention").

A GNN computes local node embeddings; a transformer then reads all of a graph's
node embeddings at once, with a learnable [CLS] token whose final state is the
graph representation:

    h = GNN_K(... GNN_1(encode(x)))               GINE with edge features, GIN without, or GCN
    tokens = [CLS] ++ Linear(h)                   one sequence per graph
    tokens = TransformerLayer^M(tokens)           pre-LN, no positional encoding
    y = MLP(LayerNorm(tokens[CLS]))

The GNN stack belongs to :meth:`GraphTrans.encode`; ``self.layers`` holds only
the transformer layers, so layer pruning acts on those, as in GTSP. Each GNN layer
is ``conv -> BatchNorm -> ReLU (not after the last) -> dropout`` with a residual
connection, the OGB GNN block GraphTrans builds on.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.data import Batch
from torch_geometric.nn import GCNConv, GINConv, GINEConv

from gtsp.data.info import DatasetInfo
from gtsp.errors import GtspError
from gtsp.models.base import GraphContext, GraphTransformer
from gtsp.models.encoders import NodeEncoder, edge_encoder
from gtsp.nn.ffn import FeedForward
from gtsp.nn.sequences import Sequences
from gtsp.nn.transformer_layer import TransformerLayer

GNNS = ("gine", "gin", "gcn")


class GNNLayer(nn.Module):
    """One GNN block: ``x + Dropout(act(BN(conv(x))))``.

    Args:
        dim: node width.
        kind: ``"gine"`` (uses edge features), ``"gin"`` or ``"gcn"`` (ignores edge features).
        dropout: dropout after the activation.
        activate: apply ReLU (GraphTrans's GNN leaves the last layer linear).
        residual: add the layer's input.
    """

    def __init__(self, dim: int, kind: str, dropout: float = 0.0, activate: bool = True,
                 residual: bool = True) -> None:
        super().__init__()
        self.kind, self.activate, self.residual = kind, activate, residual
        if kind == "gine":
            self.conv = GINEConv(FeedForward(dim, 2 * dim, activation="relu"), train_eps=True)
        elif kind == "gin":
            self.conv = GINConv(FeedForward(dim, 2 * dim, activation="relu"), train_eps=True)
        elif kind == "gcn":
            self.conv = GCNConv(dim, dim)
        else:
            raise GtspError(f"unknown GNN {kind!r}: choose one of {', '.join(GNNS)}")
        self.norm = nn.BatchNorm1d(dim)
        self.drop = nn.Dropout(dropout)

    def reset_parameters(self) -> None:
        self.conv.reset_parameters()
        self.norm.reset_parameters()

    def forward(self, x: Tensor, edge_index: Tensor, edge_attr: Tensor | None) -> Tensor:
        h = self.conv(x, edge_index, edge_attr) if self.kind == "gine" else self.conv(x, edge_index)
        h = self.norm(h)
        if self.activate:
            h = F.relu(h)
        h = self.drop(h)
        return x + h if self.residual else h


class GraphTransLayer(TransformerLayer):
    """Pre-LN transformer layer with the backbone signature ``layer(x, ctx) -> x``."""

    def forward(self, x: Tensor, ctx: GraphContext) -> Tensor:
        return super().forward(x, ctx.attn_mask, ctx.attn_bias)


class GraphTrans(GraphTransformer):
    """GraphTrans for graph-level prediction.

    Args:
        info: the dataset's shape and task.
        hidden: transformer width.
        gnn_layers: GNN layers before the transformer.
        layers: transformer layers.
        heads: attention heads per transformer layer.
        dropout: dropout in the GNN and on the transformer's residual branches.
        attn_dropout: dropout on attention probabilities.
        gnn: ``"gine"`` (falls back to GIN when the data has no edge features), ``"gin"`` or ``"gcn"``.
        ffn_ratio: transformer FFN hidden width as a multiple of ``hidden``.
        rwse_steps: random-walk structural encoding length (0 to disable).
        gnn_hidden: GNN width; defaults to ``hidden`` (GraphTrans maps it to ``hidden`` with a Linear).
    """

    name = "graphtrans"

    @classmethod
    def required_features(cls, hparams: dict) -> tuple[str, ...]:
        return ("rwse",) if hparams.get("rwse_steps", 0) else ()

    def __init__(self, info: DatasetInfo, hidden: int = 128, gnn_layers: int = 4, layers: int = 4,
                 heads: int = 4, dropout: float = 0.1, attn_dropout: float = 0.1, gnn: str = "gine",
                 ffn_ratio: int = 4, rwse_steps: int = 0, gnn_hidden: int | None = None) -> None:
        super().__init__()
        if gnn not in GNNS:
            raise GtspError(f"unknown GNN {gnn!r}: choose one of {', '.join(GNNS)}")
        if gnn == "gine" and info.num_edge_features == 0:
            gnn = "gin"
        gnn_hidden = gnn_hidden or hidden
        self.node_encoder = NodeEncoder(info, gnn_hidden, rwse_steps)
        self.edge_encoder = edge_encoder(info, gnn_hidden) if gnn == "gine" else None
        self.gnn = nn.ModuleList(
            GNNLayer(gnn_hidden, gnn, dropout, activate=i < gnn_layers - 1) for i in range(gnn_layers))
        self.gnn_to_transformer = nn.Linear(gnn_hidden, hidden)
        self.cls = nn.Parameter(torch.zeros(1, 1, hidden))
        self.layers = nn.ModuleList(
            GraphTransLayer(hidden, heads, ffn_ratio * hidden, dropout, attn_dropout) for _ in range(layers))
        # Pre-LN layers leave their output unnormalised, hence one LayerNorm before the head.
        self.final_norm = nn.LayerNorm(hidden)
        self.head = FeedForward(hidden, hidden, activation="relu", out_dim=info.num_outputs)
        self.reset_parameters()

        nn.init.normal_(self.cls, std=0.02)

    def encode(self, data: Batch) -> tuple[Tensor, GraphContext]:
        edge_attr = self.edge_encoder(data.edge_attr) if self.edge_encoder is not None else None
        h = self.node_encoder(data)
        for gnn_layer in self.gnn:
            h = gnn_layer(h, data.edge_index, edge_attr)
        seq = Sequences.from_batch(data.batch, data.num_graphs, prefix=1)
        ctx = GraphContext(batch=data.batch, num_graphs=data.num_graphs, edge_index=data.edge_index,
                           edge_attr=edge_attr, seq=seq)
        return seq.to_dense(self.gnn_to_transformer(h), prefix_tokens=self.cls), ctx

    def readout(self, x: Tensor, ctx: GraphContext) -> Tensor:
        # The [CLS] slot alone carries the graph; LayerNorm is per token, so normalising it alone is exact.
        return self.head(self.final_norm(x[:, 0]))
