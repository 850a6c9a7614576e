"""GraphGPS backbone (Rampasek et al., NeurIPS 2022, "Recipe for a General, Powerful,
Scalable Graph Transformer").

Each layer runs a local message-passing block and global self-attention in
parallel and sums them, then applies a feed-forward block:

    h_local = BN(x + Dropout(MPNN(x)))            GINE with edge features, GIN without
    h_attn  = BN(x + Dropout(Attention(x)))       over each graph's nodes
    x'      = BN(h + FFN(h)),  h = h_local + h_attn

Nodes stay flat (``[N, C]``) between layers; only attention sees per-graph
sequences. Graph readout is sum or mean pooling followed by an MLP. With
``attention=False`` the layers keep only the MPNN + FFN path: the attention-free baseline.
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn
from torch_geometric.data import Batch
from torch_geometric.nn import global_add_pool, global_mean_pool

from gtsp.data.info import DatasetInfo
from gtsp.errors import GtspError
from gtsp.models.base import GraphContext, GraphTransformer
from gtsp.models.encoders import NodeEncoder, edge_encoder
from gtsp.models.local_mpnn import build_local_mpnn, resolve_local_kind
from gtsp.models.params import attends, check_common, check_range
from gtsp.nn.attention import MultiHeadSelfAttention
from gtsp.nn.capabilities import SKIPPABLE
from gtsp.nn.ffn import FeedForward
from gtsp.nn.sequences import Sequences

POOLS = {"sum": global_add_pool, "mean": global_mean_pool}
LOCALS = ("gine", "gin", "gcn", "none")


@dataclass(frozen=True)
class GPSParams:
    """GraphGPS hyper-parameters.

    Attributes:
        hidden: node width ``C``.
        layers: number of GPS layers.
        heads: attention heads per layer.
        dropout, attn_dropout: residual-branch and attention-probability dropout.
        local: local MPNN (``"gine"`` uses edge features; falls back to GIN when the data has none).
        pool: ``"sum"`` or ``"mean"`` graph pooling.
        rwse_steps: random-walk structural encoding length (0 to disable).
        ffn_ratio: FFN hidden width as a multiple of ``hidden``.
        attention: False removes every attention block (the attention-free baseline).
        head_layers: Linear layers of the readout MLP (ReLU between them).
        head_shrink: each hidden readout width is the previous one divided by this (1 keeps ``hidden``;
            2 gives ``hidden -> hidden/2 -> hidden/4 -> outputs``, the readout of PyG's GraphGPS example).
    """

    hidden: int = 64
    layers: int = 4
    heads: int = 4
    dropout: float = 0.0
    attn_dropout: float = 0.5
    local: str = "gine"
    pool: str = "sum"
    rwse_steps: int = 20
    ffn_ratio: int = 2
    attention: bool = True
    head_layers: int = 2
    head_shrink: int = 1

    def __post_init__(self) -> None:
        check_common("gps", self)
        if self.pool not in POOLS:
            raise GtspError(f"unknown pooling {self.pool!r}: choose sum or mean")
        if self.local not in LOCALS:
            raise GtspError(f"unknown local MPNN {self.local!r}: choose one of {', '.join(LOCALS)}")
        check_range("gps", "rwse_steps", self.rwse_steps, 0)
        check_range("gps", "ffn_ratio", self.ffn_ratio, 1)
        check_range("gps", "head_layers", self.head_layers, 1)
        check_range("gps", "head_shrink", self.head_shrink, 1)
        if self.hidden // self.head_shrink ** (self.head_layers - 1) < 1:
            raise GtspError(f"gps readout: hidden={self.hidden} divided by head_shrink={self.head_shrink} "
                            f"{self.head_layers - 1} times leaves no width: use fewer head_layers or a smaller shrink")


class GPSLayer(nn.Module):
    """One GraphGPS layer: ``local MPNN + global attention -> FFN``, batch norm after each.

    Args:
        dim: node width.
        num_heads: attention heads (0 disables global attention: a pure MPNN layer).
        local: ``"gine"``, ``"gin"``, ``"gcn"`` or ``"none"``.
        dropout: dropout on the residual branches.
        attn_dropout: dropout on attention probabilities.
        ffn_ratio: FFN hidden width as a multiple of ``dim`` (2 in GraphGPS).
    """

    capabilities = frozenset({SKIPPABLE})

    def __init__(self, dim: int, num_heads: int, local: str = "gine", dropout: float = 0.0,
                 attn_dropout: float = 0.0, ffn_ratio: int = 2) -> None:
        super().__init__()
        self.local = build_local_mpnn(local, dim, dim)
        self.norm_local = nn.BatchNorm1d(dim) if self.local is not None else None
        self.attention = MultiHeadSelfAttention(dim, num_heads, attn_dropout) if num_heads else None
        self.norm_attn = nn.BatchNorm1d(dim) if self.attention is not None else None
        self.drop = nn.Dropout(dropout)
        self.ffn = FeedForward(dim, ffn_ratio * dim, dropout, activation="relu")
        self.norm_out = nn.BatchNorm1d(dim)

    def reset_parameters(self) -> None:
        for module in self.modules():
            if module is not self and hasattr(module, "reset_parameters"):
                module.reset_parameters()

    def forward(self, x: Tensor, ctx: GraphContext) -> Tensor:
        h = 0
        if self.local is not None:
            h = h + self.norm_local(x + self.drop(self.local(x, ctx.edge_index, ctx.edge_attr)))
        if self.attention is not None:
            attended = ctx.seq.to_flat(self.attention(ctx.seq.to_dense(x), ctx.attn_mask, None, ctx.prefix))
            h = h + self.norm_attn(x + self.drop(attended))
        return self.norm_out(h + self.ffn(h))


def readout_mlp(hidden: int, outputs: int, layers: int, shrink: int) -> nn.Module:
    """The readout MLP: ``layers`` Linear layers with ReLU between them, hidden widths divided by
    ``shrink`` at each layer (the default two layers of width ``hidden`` are a :class:`FeedForward`)."""
    if layers == 2 and shrink == 1:
        return FeedForward(hidden, hidden, activation="relu", out_dim=outputs)
    widths = [hidden // shrink ** i for i in range(layers)] + [outputs]
    parts: list[nn.Module] = []
    for i in range(layers):
        parts += [nn.Linear(widths[i], widths[i + 1])] + ([nn.ReLU()] if i < layers - 1 else [])
    return nn.Sequential(*parts)


class GPS(GraphTransformer):
    """GraphGPS for graph-level prediction (hyper-parameters: :class:`GPSParams`)."""

    name = "gps"
    Params = GPSParams

    def __init__(self, info: DatasetInfo, params: GPSParams | None = None) -> None:
        super().__init__()
        p = self.params = params or GPSParams()
        local = resolve_local_kind(p.local, info.num_edge_features > 0, LOCALS)
        heads = p.heads if attends(p) else 0
        self.node_encoder = NodeEncoder(info, p.hidden, p.rwse_steps)
        self.edge_encoder = edge_encoder(info, p.hidden) if local == "gine" else None
        self.layers = nn.ModuleList(
            GPSLayer(p.hidden, heads, local, p.dropout, p.attn_dropout, p.ffn_ratio) for _ in range(p.layers))
        self.pool = POOLS[p.pool]
        self.head = readout_mlp(p.hidden, info.num_outputs, p.head_layers, p.head_shrink)

    @classmethod
    def required_features(cls, hparams: dict) -> tuple[str, ...]:
        return ("rwse",) if hparams.get("rwse_steps", 20) else ()

    def encode(self, data: Batch) -> tuple[Tensor, GraphContext]:
        edge_attr = self.edge_encoder(data.edge_attr) if self.edge_encoder is not None else None
        ctx = GraphContext(batch=data.batch, num_graphs=data.num_graphs, edge_index=data.edge_index,
                           edge_attr=edge_attr, seq=Sequences.from_batch(data.batch, data.num_graphs))
        return self.node_encoder(data), ctx

    def readout(self, x: Tensor, ctx: GraphContext) -> Tensor:
        return self.head(self.pool(x, ctx.batch, size=ctx.num_graphs))
