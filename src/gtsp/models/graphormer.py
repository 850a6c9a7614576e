"""Graphormer backbone (Ying et al., NeurIPS 2021, "Do Transformers Really Perform Bad
for Graph Representation?").

A plain pre-LN transformer over each graph's nodes plus one virtual graph token,
made graph-aware by three encodings:

- centrality encoding: a learned embedding of each node's degree (capped at
  ``max_degree``) added to its input features;
- spatial and edge encodings: additive per-head attention biases from shortest
  paths, built once per batch by :class:`GraphormerBias` and shared by all layers;
- [VNode]: a learned token in front of every graph with its own per-head bias;
  the graph representation is its final state (after a final LayerNorm).

Shortest paths come precomputed with the dataset (feature ``"spd"``).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.data import Batch
from torch_geometric.utils import degree

from gtsp.data.info import DatasetInfo
from gtsp.errors import GtspError
from gtsp.models.base import GraphContext, GraphTransformer
from gtsp.models.encoders import NodeEncoder, edge_encoder
from gtsp.models.graphormer_bias import GraphormerBias, SharedBiasAttention
from gtsp.nn.ffn import FeedForward
from gtsp.nn.sequences import Sequences
from gtsp.nn.transformer_layer import TransformerLayer


class GraphormerLayer(TransformerLayer):
    """Pre-LN transformer layer whose attention adds (its heads of) the shared Graphormer bias."""

    def __init__(self, dim: int, num_heads: int, ffn_hidden: int, dropout: float = 0.0,
                 attn_dropout: float = 0.0) -> None:
        super().__init__(dim, num_heads, ffn_hidden, dropout, attn_dropout)
        self.attention = SharedBiasAttention(dim, num_heads, attn_dropout)

    def forward(self, x: Tensor, ctx: GraphContext) -> Tensor:
        return super().forward(x, ctx.attn_mask, ctx.attn_bias)


class Graphormer(GraphTransformer):
    """Graphormer for graph-level prediction.

    Args:
        info: the dataset's shape and task.
        hidden: token width ``C``.
        layers: transformer layers.
        heads: attention heads per layer (also the number of bias heads).
        dropout: dropout on the input tokens and the residual branches.
        attn_dropout: dropout on attention probabilities.
        ffn_ratio: FFN hidden width as a multiple of ``hidden`` (Graphormer uses 1).
        max_degree: degrees above it share the last centrality embedding.
        max_dist: largest hop distance with its own spatial bias.
        max_path: path edges the edge encoding averages (the paper's multi-hop cap; 0 disables).
        rwse_steps: random-walk structural encoding length (0 to disable).
        spatial_init: start of the spatial-bias table, ``"normal"`` (the paper) or ``"distance"``
            (bias falling with hop distance at head-specific slopes; see :class:`GraphormerBias`).
    """

    name = "graphormer"
    features = ("spd",)

    @classmethod
    def required_features(cls, hparams: dict) -> tuple[str, ...]:
        return cls.features + (("rwse",) if hparams.get("rwse_steps", 0) else ())

    def __init__(self, info: DatasetInfo, hidden: int = 64, layers: int = 4, heads: int = 4,
                 dropout: float = 0.0, attn_dropout: float = 0.1, ffn_ratio: int = 1,
                 max_degree: int = 64, max_dist: int = 20, max_path: int = 5, rwse_steps: int = 0,
                 spatial_init: str = "normal") -> None:
        super().__init__()
        if max_degree < 1:
            raise GtspError(f"max_degree must be at least 1, got {max_degree}")
        self.max_degree = max_degree
        self.node_encoder = NodeEncoder(info, hidden, rwse_steps)
        # The graphs are undirected, so in-degree equals out-degree: the paper's two tables
        # (z-_deg-, z+_deg+) would always be summed at the same index, which one table expresses.
        self.degree_encoder = nn.Embedding(max_degree + 1, hidden)
        # Edge features are encoded to one number per head (d_E = H, as in the authors' design),
        # then projected per path position inside the bias module.
        self.edge_encoder = edge_encoder(info, heads) if max_path > 0 else None
        edge_dim = heads if self.edge_encoder is not None else 0
        self.bias = GraphormerBias(heads, max_dist, max_path, edge_dim, spatial_init)
        self.vnode = nn.Parameter(torch.zeros(1, 1, hidden))
        self.input_drop = nn.Dropout(dropout)
        self.layers = nn.ModuleList(
            GraphormerLayer(hidden, heads, ffn_ratio * hidden, dropout, attn_dropout) for _ in range(layers))
        self.final_norm = nn.LayerNorm(hidden)
        self.head = FeedForward(hidden, hidden, activation="relu", out_dim=info.num_outputs)
        self.reset_parameters()

        nn.init.normal_(self.degree_encoder.weight, std=0.02)
        nn.init.normal_(self.vnode, std=0.02)

    def encode(self, data: Batch) -> tuple[Tensor, GraphContext]:
        if getattr(data, "spd", None) is None or getattr(data, "path_edge", None) is None:
            raise GtspError("graphormer needs shortest paths: load the data with the 'spd' precomputed feature")
        seq = Sequences.from_batch(data.batch, data.num_graphs, prefix=1)
        deg = degree(data.edge_index[0], data.num_nodes, dtype=torch.long).clamp(max=self.max_degree)
        x = self.node_encoder(data) + self.degree_encoder(deg)
        x = self.input_drop(seq.to_dense(x, prefix_tokens=self.vnode))
        edge_feat = self.edge_encoder(data.edge_attr) if self.edge_encoder is not None else None
        ctx = GraphContext(batch=data.batch, num_graphs=data.num_graphs, edge_index=data.edge_index,
                           edge_attr=edge_feat, seq=seq)
        ctx.attn_bias = self.bias(data.spd, data.path_edge, data.edge_index, edge_feat, data.batch, seq)
        return x, ctx

    def readout(self, x: Tensor, ctx: GraphContext) -> Tensor:
        # LayerNorm acts per token, so normalising only the [VNode] slot is the same as the whole sequence.
        return self.head(self.final_norm(x[:, 0]))

    @torch.no_grad()
    def compact_bias(self) -> None:
        """Drop bias heads that no attention layer reads any more (call after head compaction)."""
        attentions = [m for m in self.layers.modules() if isinstance(m, SharedBiasAttention)]
        if not attentions:
            return
        used = torch.unique(torch.cat([a.head_index for a in attentions]))
        if used.numel() == self.bias.num_heads:
            return
        self.bias.prune_heads(used)
        for attention in attentions:
            attention.head_index = torch.searchsorted(used, attention.head_index)
