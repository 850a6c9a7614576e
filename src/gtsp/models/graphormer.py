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

Shortest paths come precomputed with the dataset (feature ``"spd"``). With
``attention=False`` the layers keep only their FFN sub-layer and the readout averages the
node tokens: the attention-free baseline.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch_geometric.data import Batch
from torch_geometric.utils import degree

from gtsp.data.info import DatasetInfo
from gtsp.errors import GtspError
from gtsp.models.base import GraphContext, GraphTransformer
from gtsp.models.encoders import NodeEncoder, edge_encoder
from gtsp.models.graphormer_bias import SPATIAL_INITS, GraphormerBias, SharedBiasAttention
from gtsp.models.graphtrans import node_token_mean
from gtsp.models.params import attends, check_common, check_range
from gtsp.nn.attention import MultiHeadSelfAttention
from gtsp.nn.ffn import FeedForward
from gtsp.nn.sequences import Sequences
from gtsp.nn.transformer_layer import TransformerLayer


@dataclass(frozen=True)
class GraphormerParams:
    """Graphormer hyper-parameters.

    Attributes:
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
        attention: False removes every attention block (the attention-free baseline).
    """

    hidden: int = 64
    layers: int = 4
    heads: int = 4
    dropout: float = 0.0
    attn_dropout: float = 0.1
    ffn_ratio: int = 1
    max_degree: int = 64
    max_dist: int = 20
    max_path: int = 5
    rwse_steps: int = 0
    spatial_init: str = "normal"
    attention: bool = True

    def __post_init__(self) -> None:
        check_common("graphormer", self)
        check_range("graphormer", "max_degree", self.max_degree, 1)
        for name in ("max_path", "rwse_steps"):
            check_range("graphormer", name, getattr(self, name), 0)
        check_range("graphormer", "ffn_ratio", self.ffn_ratio, 1)
        if self.spatial_init not in SPATIAL_INITS:
            raise GtspError(f"spatial_init must be one of {', '.join(SPATIAL_INITS)}, got {self.spatial_init!r}")


class GraphormerLayer(TransformerLayer):
    """Pre-LN transformer layer whose attention adds (its heads of) the shared Graphormer bias."""

    def make_attention(self, dim: int, num_heads: int, attn_dropout: float) -> MultiHeadSelfAttention:
        return SharedBiasAttention(dim, num_heads, attn_dropout)

    def forward(self, x: Tensor, ctx: GraphContext) -> Tensor:
        return super().forward(x, ctx.attn_mask, ctx.attn_bias, ctx.prefix)


class Graphormer(GraphTransformer):
    """Graphormer for graph-level prediction (hyper-parameters: :class:`GraphormerParams`)."""

    name = "graphormer"
    Params = GraphormerParams
    features = ("spd",)

    @classmethod
    def required_features(cls, hparams: dict) -> tuple[str, ...]:
        return cls.features + (("rwse",) if hparams.get("rwse_steps", 0) else ())

    def __init__(self, info: DatasetInfo, params: GraphormerParams | None = None) -> None:
        super().__init__()
        p = self.params = params or GraphormerParams()
        heads = p.heads if attends(p) else 0
        self.max_degree = p.max_degree
        self.node_encoder = NodeEncoder(info, p.hidden, p.rwse_steps)
        # The graphs are undirected, so in-degree equals out-degree: the paper's two tables
        # (z-_deg-, z+_deg+) would always be summed at the same index, which one table expresses.
        self.degree_encoder = nn.Embedding(p.max_degree + 1, p.hidden)
        # Edge features are encoded to one number per head (d_E = H, as in the authors' design),
        # then projected per path position inside the bias module.
        self.edge_encoder = edge_encoder(info, heads) if p.max_path > 0 and heads else None
        edge_dim = heads if self.edge_encoder is not None else 0
        self.bias = GraphormerBias(heads, p.max_dist, p.max_path, edge_dim, p.spatial_init) if heads else None
        self.vnode = nn.Parameter(torch.zeros(1, 1, p.hidden))
        self.input_drop = nn.Dropout(p.dropout)
        self.layers = nn.ModuleList(
            GraphormerLayer(p.hidden, heads, p.ffn_ratio * p.hidden, p.dropout, p.attn_dropout)
            for _ in range(p.layers))
        self.final_norm = nn.LayerNorm(p.hidden)
        self.head = FeedForward(p.hidden, p.hidden, activation="relu", out_dim=info.num_outputs)
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
                           edge_attr=edge_feat, seq=seq, sequence_tokens=True)
        if self.bias is not None:
            ctx.attn_bias = self.bias(data.spd, data.path_edge, data.edge_index, edge_feat, data.batch, seq)
        return x, ctx

    def readout(self, x: Tensor, ctx: GraphContext) -> Tensor:
        if not attends(self.params):
            return self.head(self.final_norm(node_token_mean(x, ctx)))
        # LayerNorm acts per token, so normalising only the [VNode] slot is the same as the whole sequence.
        return self.head(self.final_norm(x[:, 0]))

    @torch.no_grad()
    def compact_shared(self) -> None:
        """Drop bias heads that no attention layer reads any more (called after head compaction)."""
        attentions = [m for _, m in self.attention_modules() if isinstance(m, SharedBiasAttention)]
        if not attentions or self.bias is None:
            return
        used = torch.unique(torch.cat([a.head_index for a in attentions]))
        if used.numel() == self.bias.num_heads:
            return
        self.bias.prune_heads(used)
        for attention in attentions:
            attention.head_index = torch.searchsorted(used, attention.head_index)
