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
connection, the OGB GNN block GraphTrans builds on. With ``attention=False`` the
transformer layers keep only their FFN sub-layer and the readout averages the node tokens
(a [CLS] token that attends to nothing carries nothing): the attention-free baseline.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.data import Batch

from gtsp.data.info import DatasetInfo
from gtsp.models.base import GraphContext, GraphTransformer
from gtsp.models.encoders import NodeEncoder, edge_encoder
from gtsp.models.local_mpnn import build_local_mpnn, resolve_local_kind
from gtsp.models.params import attends, check_common, check_range
from gtsp.nn.ffn import FeedForward
from gtsp.nn.sequences import Sequences
from gtsp.nn.transformer_layer import TransformerLayer

GNNS = ("gine", "gin", "gcn")


@dataclass(frozen=True)
class GraphTransParams:
    """GraphTrans hyper-parameters.

    Attributes:
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
        attention: False removes every attention block (the attention-free baseline).
    """

    hidden: int = 128
    gnn_layers: int = 4
    layers: int = 4
    heads: int = 4
    dropout: float = 0.1
    attn_dropout: float = 0.1
    gnn: str = "gine"
    ffn_ratio: int = 4
    rwse_steps: int = 0
    gnn_hidden: int | None = None
    attention: bool = True

    def __post_init__(self) -> None:
        check_common("graphtrans", self)
        resolve_local_kind(self.gnn, True, GNNS)
        for name in ("gnn_layers", "rwse_steps"):
            check_range("graphtrans", name, getattr(self, name), 0)
        check_range("graphtrans", "ffn_ratio", self.ffn_ratio, 1)
        if self.gnn_hidden is not None:
            check_range("graphtrans", "gnn_hidden", self.gnn_hidden, 1)


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
        self.activate, self.residual = activate, residual
        self.mpnn = build_local_mpnn(kind, dim, 2 * dim)
        self.norm = nn.BatchNorm1d(dim)
        self.drop = nn.Dropout(dropout)

    def reset_parameters(self) -> None:
        self.mpnn.reset_parameters()
        self.norm.reset_parameters()

    def forward(self, x: Tensor, edge_index: Tensor, edge_attr: Tensor | None) -> Tensor:
        h = self.norm(self.mpnn(x, edge_index, edge_attr))
        if self.activate:
            h = F.relu(h)
        h = self.drop(h)
        return x + h if self.residual else h


class GraphTransLayer(TransformerLayer):
    """Pre-LN transformer layer with the backbone signature ``layer(x, ctx) -> x``."""

    def forward(self, x: Tensor, ctx: GraphContext) -> Tensor:
        return super().forward(x, ctx.attn_mask, ctx.attn_bias, ctx.prefix)


class GraphTrans(GraphTransformer):
    """GraphTrans for graph-level prediction (hyper-parameters: :class:`GraphTransParams`)."""

    name = "graphtrans"
    Params = GraphTransParams

    @classmethod
    def required_features(cls, hparams: dict) -> tuple[str, ...]:
        return ("rwse",) if hparams.get("rwse_steps", 0) else ()

    def __init__(self, info: DatasetInfo, params: GraphTransParams | None = None) -> None:
        super().__init__()
        p = self.params = params or GraphTransParams()
        gnn = resolve_local_kind(p.gnn, info.num_edge_features > 0, GNNS)
        gnn_hidden = p.gnn_hidden or p.hidden
        heads = p.heads if attends(p) else 0
        self.node_encoder = NodeEncoder(info, gnn_hidden, p.rwse_steps)
        self.edge_encoder = edge_encoder(info, gnn_hidden) if gnn == "gine" else None
        self.gnn = nn.ModuleList(
            GNNLayer(gnn_hidden, gnn, p.dropout, activate=i < p.gnn_layers - 1) for i in range(p.gnn_layers))
        self.gnn_to_transformer = nn.Linear(gnn_hidden, p.hidden)
        self.cls = nn.Parameter(torch.zeros(1, 1, p.hidden))
        self.layers = nn.ModuleList(
            GraphTransLayer(p.hidden, heads, p.ffn_ratio * p.hidden, p.dropout, p.attn_dropout)
            for _ in range(p.layers))
        # Pre-LN layers leave their output unnormalised, hence one LayerNorm before the head.
        self.final_norm = nn.LayerNorm(p.hidden)
        self.head = FeedForward(p.hidden, p.hidden, activation="relu", out_dim=info.num_outputs)
        self.reset_parameters()

        nn.init.normal_(self.cls, std=0.02)

    def blocks(self) -> list[tuple[str, nn.Module]]:
        # The GNN stack runs in encode(), before the transformer layers.
        return [("gnn", self.gnn), ("layers", self.layers)]

    def encode(self, data: Batch) -> tuple[Tensor, GraphContext]:
        edge_attr = self.edge_encoder(data.edge_attr) if self.edge_encoder is not None else None
        h = self.node_encoder(data)
        for gnn_layer in self.gnn:
            h = gnn_layer(h, data.edge_index, edge_attr)
        seq = Sequences.from_batch(data.batch, data.num_graphs, prefix=1)
        ctx = GraphContext(batch=data.batch, num_graphs=data.num_graphs, edge_index=data.edge_index,
                           edge_attr=edge_attr, seq=seq, sequence_tokens=True)
        return seq.to_dense(self.gnn_to_transformer(h), prefix_tokens=self.cls), ctx

    def readout(self, x: Tensor, ctx: GraphContext) -> Tensor:
        if not attends(self.params):
            return self.head(self.final_norm(node_token_mean(x, ctx)))
        # The [CLS] slot alone carries the graph; LayerNorm is per token, so normalising it alone is exact.
        return self.head(self.final_norm(x[:, 0]))


def node_token_mean(x: Tensor, ctx: GraphContext) -> Tensor:
    """``[B, C]`` mean of each graph's node tokens (prefix and padding excluded)."""
    weights = ctx.seq.mask.clone()
    weights[:, :ctx.prefix] = False
    weights = weights.unsqueeze(-1).to(x.dtype)
    return (x * weights).sum(1) / weights.sum(1).clamp(min=1)
