"""Graphormer's structural attention bias and the attention layer that reads it
(Ying et al., NeurIPS 2021, "Do Transformers Really Perform Bad for Graph Representation?").

For node tokens ``i, j`` of one graph and head ``h`` the additive attention logit is

    b[h, i, j] = spatial[h, phi(i, j)] + (1/N) * sum_{n=1..N} proj_n(edge feature of e_n)[h]

- spatial encoding: one learned scalar per head and hop distance ``phi(i, j)`` in
  ``0..max_dist`` (longer distances share the ``max_dist`` entry), plus one entry
  for unreachable pairs;
- edge encoding: ``e_1..e_N`` are the first ``N = min(phi(i, j), max_path)`` edges of
  ONE shortest path from ``i`` to ``j`` (see :mod:`gtsp.data.shortest_paths`) and
  ``proj_n`` is a learned projection per path position, as in the paper;
- the virtual graph token [VNode] in position 0 gets one learned scalar per head
  for its attention to and from every token (the paper's special distance).

Design: the bias is computed ONCE per forward and shared by every layer, as in
Graphormer. Its tables therefore have heads of their own, and each attention
layer (:class:`SharedBiasAttention`) keeps a ``head_index`` buffer saying which
bias head feeds each of its heads. Pruning the heads of one layer slices only
that layer's ``head_index``, so layers can keep different heads without
conflict; :meth:`GraphormerBias.prune_heads` (called by
``Graphormer.compact_shared``) drops bias heads that no layer reads any more.

Everything is vectorised over the batch: the ``n * n`` pair block of every graph
is scattered into the padded ``[B, 1 + L, 1 + L]`` layout of :class:`Sequences`.
The only matrix product is ``edge_proj`` (an ``nn.Linear`` over the batch's
edges); the rest are embedding look-ups, gathers and the path mean
(``pairs * max_path * heads`` multiply-adds by the 0/1 validity mask, then a sum).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from gtsp.data.shortest_paths import UNREACHABLE
from gtsp.errors import GtspError
from gtsp.nn.attention import MultiHeadSelfAttention
from gtsp.nn.sequences import Sequences
from gtsp.nn.slicing import slice_linear

SPATIAL_INITS = ("normal", "distance")


class GraphormerBias(nn.Module):
    """Spatial + edge + virtual-token attention bias, ``[B, H, 1 + L, 1 + L]``.

    Args:
        num_heads: bias heads ``H`` (the attention heads of the unpruned model).
        max_dist: largest hop distance with its own spatial entry.
        max_path: number of path edges the edge encoding averages (0 disables it).
        edge_dim: width of the encoded edge features (0: no edge encoding).
        spatial_init: ``"normal"`` (Graphormer: N(0, 0.02)) or ``"distance"``: head ``h`` starts at
            ``-slope_h * d`` with slopes 0, 0.5, 1, 2, ... (ALiBi's idea, Press et al. 2022), so
            some heads attend near the node from the first step instead of averaging the whole
            graph; on NCI1 the normal start left the model unable to fit its training set.
    """

    def __init__(self, num_heads: int, max_dist: int = 20, max_path: int = 5, edge_dim: int = 0,
                 spatial_init: str = "normal") -> None:
        super().__init__()
        if max_dist < 1 or max_dist >= UNREACHABLE:
            raise GtspError(f"max_dist must be in 1..{UNREACHABLE - 1}, got {max_dist}")
        if spatial_init not in SPATIAL_INITS:
            raise GtspError(f"spatial_init must be one of {', '.join(SPATIAL_INITS)}, got {spatial_init!r}")
        self.num_heads, self.max_dist, self.spatial_init = num_heads, max_dist, spatial_init
        self.max_path = max_path if edge_dim > 0 else 0
        # Entries 0..max_dist are distances; entry max_dist + 1 is "no path".
        self.spatial = nn.Embedding(max_dist + 2, num_heads)
        self.virtual = nn.Parameter(torch.zeros(num_heads))
        # Rows ordered [path position, head]: one projection per position, as the paper's w_n.
        self.edge_proj = nn.Linear(edge_dim, self.max_path * num_heads, bias=False) if self.max_path else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # Graphormer initialises its embeddings and projections with N(0, 0.02).
        nn.init.normal_(self.spatial.weight, std=0.02)
        if self.spatial_init == "distance":
            with torch.no_grad():
                slopes = torch.tensor([0.0] + [0.5 * 2.0 ** h for h in range(self.num_heads - 1)])
                distance = torch.arange(self.spatial.num_embeddings, dtype=torch.float32)  # last row: no path
                self.spatial.weight.copy_(-distance.unsqueeze(1) * slopes.unsqueeze(0))
        nn.init.normal_(self.virtual, std=0.02)
        if self.edge_proj is not None:
            nn.init.normal_(self.edge_proj.weight, std=0.02)

    def forward(self, spd: Tensor, path_edge: Tensor, edge_index: Tensor, edge_feat: Tensor | None,
                batch: Tensor, seq: Sequences) -> Tensor:
        """The bias for a batch.

        Args:
            spd: ``[P]`` concatenated per-graph hop distances (``P = sum n_g^2``).
            path_edge: ``[P]`` graph-local id of the first edge of the stored shortest path, -1 if none.
            edge_index: ``[2, E]`` batched edge index (nodes already offset by PyG).
            edge_feat: ``[E, edge_dim]`` encoded edge features, or None.
            batch: ``[N]`` graph of each node (PyG's ``batch`` vector).
            seq: the batch's token layout; its first ``seq.prefix`` slots are special tokens.
        Returns:
            ``[B, H, L, L]`` additive logits; zero at padding (the key mask hides it).
        """
        pairs = PairLayout.build(seq, batch, spd.numel())
        dist = spd.long()
        bucket = torch.where(dist == UNREACHABLE, self.max_dist + 1, dist.clamp(max=self.max_dist))
        pair_bias = self.spatial(bucket)
        if self.edge_proj is not None and edge_feat is not None and edge_feat.size(0) > 0:
            path = path_edges(path_edge.long(), edge_index, pairs, self.max_path)
            pair_bias = pair_bias + self._edge_encoding(path, edge_feat)

        num_graphs, length, prefix = seq.batch_size, seq.max_len, seq.prefix
        dense = pair_bias.new_zeros(num_graphs * length * length, self.num_heads)
        dense = dense.index_copy(0, pairs.dense_index(length, prefix), pair_bias)
        dense = dense.view(num_graphs, length, length, self.num_heads)
        if prefix:
            # Virtual token (slot 0) to every token and every token to it: one scalar per head.
            slot = torch.arange(length, device=dense.device)
            special = (slot[:, None] == 0) | (slot[None, :] == 0)
            dense = dense + special[..., None] * self.virtual
        return dense.permute(0, 3, 1, 2).contiguous()

    def _edge_encoding(self, path: Tensor, edge_feat: Tensor) -> Tensor:
        """``[P, H]``: mean over each pair's path edges of the projection for the edge's position."""
        num_edges, positions = edge_feat.size(0), self.max_path
        proj = self.edge_proj(edge_feat).view(num_edges * positions, self.num_heads)
        valid = path >= 0
        # Row (edge, position) of the projections; one gather for all pairs and positions.
        rows = path.clamp(min=0) * positions + torch.arange(positions, device=path.device)
        terms = proj.index_select(0, rows.view(-1)).view(*path.shape, self.num_heads)
        terms = terms * valid.unsqueeze(-1)
        return terms.sum(1) / valid.sum(1, keepdim=True).clamp(min=1)

    @torch.no_grad()
    def prune_heads(self, keep: Tensor) -> None:
        """Keep only bias heads ``keep`` (indices), slicing every per-head table."""
        keep = torch.as_tensor(keep, dtype=torch.long, device=self.virtual.device).sort().values
        if keep.numel() == 0:
            raise GtspError("pruning would remove every bias head of Graphormer: lower the head ratio")
        spatial = nn.Embedding(self.spatial.num_embeddings, keep.numel(),
                               device=self.spatial.weight.device, dtype=self.spatial.weight.dtype)
        spatial.weight.copy_(self.spatial.weight[:, keep])
        self.spatial = spatial
        self.virtual = nn.Parameter(self.virtual[keep].clone())
        if self.edge_proj is not None:
            rows = (torch.arange(self.max_path, device=keep.device)[:, None] * self.num_heads + keep).flatten()
            self.edge_proj = slice_linear(self.edge_proj, rows=rows)
        self.num_heads = keep.numel()


def path_edges(first_edge: Tensor, edge_index: Tensor, pairs: "PairLayout", max_path: int) -> Tensor:
    """``[P, max_path]`` batch ids of the first ``max_path`` edges of each pair's stored path (-1 pads).

    Follows the next-hop table: after edge ``e`` of the path ``i -> j``, the next edge is the
    first edge of ``dst(e) -> j``. Integer work only, no gradients.
    """
    edge_graph = pairs.node_graph[edge_index[0]]
    edge_count = torch.bincount(edge_graph, minlength=pairs.num_graphs)
    edge_start = (torch.cumsum(edge_count, 0) - edge_count)[pairs.graph]
    local_dst = edge_index[1] - pairs.node_start[edge_graph]
    column_start = pairs.start[pairs.graph] + pairs.col  # flat pair id of (0, j) in j's graph
    nodes = pairs.size[pairs.graph]
    last = first_edge.numel() - 1
    steps, local = [], first_edge
    for _ in range(max_path):
        valid = local >= 0
        edge = torch.where(valid, local + edge_start, -1)
        steps.append(edge)
        # Finished pairs look up an arbitrary (clamped) entry that torch.where discards.
        hop = local_dst[edge.clamp(min=0)]
        local = torch.where(valid, first_edge[(column_start + hop * nodes).clamp(0, last)], -1)
    return torch.stack(steps, dim=1)


class PairLayout:
    """Where each concatenated node pair ``(g, i, j)`` of a batch lives (all vectorised).

    Attributes:
        graph, row, col: ``[P]`` graph of each pair and its graph-local node ids ``i, j``.
        size, start: ``[B]`` nodes per graph and first pair of each graph in the flat pair list.
        node_graph, node_start: ``[N]`` graph of each node and ``[B]`` first node of each graph.
    """

    def __init__(self, graph: Tensor, row: Tensor, col: Tensor, size: Tensor, start: Tensor,
                 node_graph: Tensor, node_start: Tensor) -> None:
        self.graph, self.row, self.col = graph, row, col
        self.size, self.start = size, start
        self.node_graph, self.node_start = node_graph, node_start

    @property
    def num_graphs(self) -> int:
        return self.size.numel()

    @classmethod
    def build(cls, seq: Sequences, batch: Tensor, num_pairs: int) -> "PairLayout":
        size = seq.lengths - seq.prefix
        squares = size * size
        if int(squares.sum()) != num_pairs:
            raise GtspError("shortest-path features do not match the graphs' node counts: compute them with the "
                            "'spd' pre-transform (gtsp.data.transforms) after any change to the nodes")
        start = torch.cumsum(squares, 0) - squares
        graph = torch.repeat_interleave(torch.arange(size.numel(), device=size.device), squares,
                                        output_size=num_pairs)
        within = torch.arange(num_pairs, device=size.device) - start[graph]
        n = size[graph]
        row = torch.div(within, n, rounding_mode="floor")
        col = within - row * n
        node_start = torch.cumsum(size, 0) - size
        return cls(graph, row, col, size, start, batch, node_start)

    def dense_index(self, length: int, prefix: int) -> Tensor:
        """Position of each pair in the flattened ``[B, L, L]`` token-pair layout."""
        return (self.graph * length + self.row + prefix) * length + self.col + prefix


class SharedBiasAttention(MultiHeadSelfAttention):
    """:class:`MultiHeadSelfAttention` whose heads read chosen heads of a shared bias.

    ``head_index[h]`` is the bias head that attention head ``h`` adds to its logits.
    :meth:`prune_heads` slices it together with the projections, so generic head
    compaction (which only calls ``prune_heads``) keeps every remaining head paired
    with its own bias head.
    """

    def __init__(self, dim: int, num_heads: int, dropout: float = 0.0, head_dim: int | None = None) -> None:
        super().__init__(dim, num_heads, dropout, head_dim)
        self.register_buffer("head_index", torch.arange(num_heads))

    def forward(self, x: Tensor, mask: Tensor | None = None, bias: Tensor | None = None,
                prefix: int = 0) -> Tensor:
        return super().forward(x, mask, self.own_bias(bias), prefix)

    def own_bias(self, bias: Tensor | None) -> Tensor | None:
        """The heads of the shared bias this layer reads, in its head order."""
        # head_index is sorted and unique, so equal counts mean it is the identity.
        if bias is not None and bias.size(1) != self.head_index.numel():
            bias = bias.index_select(1, self.head_index)
        return bias

    @torch.no_grad()
    def probabilities(self, x: Tensor, mask: Tensor | None = None, bias: Tensor | None = None) -> Tensor:
        return super().probabilities(x, mask, self.own_bias(bias))

    @torch.no_grad()
    def prune_heads(self, keep: Tensor, scale: Tensor | None = None) -> None:
        keep = torch.as_tensor(keep, dtype=torch.long).sort().values
        super().prune_heads(keep, scale)
        self.head_index = self.head_index[keep.to(self.head_index.device)]
