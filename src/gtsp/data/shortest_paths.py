"""All-pairs shortest paths of each graph, for Graphormer's spatial and edge encodings
(Ying et al., NeurIPS 2021, "Do Transformers Really Perform Bad for Graph Representation?").

Run once per graph as a PyG ``pre_transform`` and cached with the processed
dataset. For a graph with ``n`` nodes it stores two flat tensors over the
``n * n`` ordered node pairs ``(i, j)`` at position ``i * n + j``:

- ``spd``  (uint8): hop distance from ``i`` to ``j``; distances above 254 are
  stored as 254 and :data:`UNREACHABLE` (255) marks pairs with no path.
- ``path_edge`` (int16): the graph-local id (position in ``edge_index``) of the
  FIRST edge of one shortest path from ``i`` to ``j``; -1 when ``i == j`` or ``j``
  is unreachable.

``path_edge`` is a next-hop table: all first edges towards a fixed target ``j``
come from one shortest-path tree rooted at ``j``, so following
``i -> dst(path_edge[i, j]) -> dst(path_edge[that node, j]) -> ...`` walks ONE
consistent shortest path to ``j``. The model walks it for as many edges as its
edge encoding looks at, so the stored data does not fix that cap. This costs
3 bytes per node pair (a stored ``[n*n, k]`` list of path edges would cost
``1 + 2k``). Both tensors concatenate along dim 0 when PyG batches graphs and
are never offset (their names contain neither "index" nor "batch"): the model
adds each graph's node-pair and edge offsets itself.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from scipy.sparse.csgraph import shortest_path
from torch_geometric.data import Data
from torch_geometric.transforms import BaseTransform

from gtsp.errors import GtspError

UNREACHABLE = 255
MAX_STORED_DISTANCE = 254
_MAX_EDGES = torch.iinfo(torch.int16).max  # local edge ids must fit int16


class ShortestPaths(BaseTransform):
    """Adds ``spd`` and ``path_edge`` (see the module docstring) to a :class:`Data`."""

    def forward(self, data: Data) -> Data:
        n = int(data.num_nodes)
        edge_index = data.edge_index.cpu().numpy()
        if edge_index.shape[1] > _MAX_EDGES:
            raise GtspError(f"a graph has {edge_index.shape[1]} edges; shortest-path features support at most "
                            f"{_MAX_EDGES}: use a backbone without shortest-path encodings (gps, graphtrans)")
        dist, next_hop = all_pairs_next_hop(edge_index, n)
        # Local edge id of every (u, v); with duplicate edges any one of them is a valid choice.
        edge_id = np.full((n, n), -1, dtype=np.int64)
        edge_id[edge_index[0], edge_index[1]] = np.arange(edge_index.shape[1])
        rows = np.broadcast_to(np.arange(n)[:, None], (n, n))
        has_hop = next_hop >= 0
        first = np.full((n, n), -1, dtype=np.int64)
        first[has_hop] = edge_id[rows[has_hop], next_hop[has_hop]]

        spd = np.where(np.isinf(dist), UNREACHABLE, np.minimum(dist, MAX_STORED_DISTANCE))
        data.spd = torch.from_numpy(spd.astype(np.uint8).reshape(-1))
        data.path_edge = torch.from_numpy(first.astype(np.int16).reshape(-1))
        return data


def all_pairs_next_hop(edge_index: np.ndarray, num_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Hop distances ``dist[i, j]`` (inf when unreachable) and next hops ``next_hop[i, j]``.

    ``next_hop[i, j]`` is the node after ``i`` on a shortest path from ``i`` to ``j``
    (-1 when ``i == j`` or unreachable). It comes from BFS on the REVERSED graph from
    every target ``j``: the predecessor of ``i`` in the reversed tree rooted at ``j`` is
    ``i``'s successor towards ``j`` in the original graph, so this holds for directed
    edges too.
    """
    if num_nodes == 0:
        return np.zeros((0, 0)), np.zeros((0, 0), dtype=np.int64)
    ones = np.ones(edge_index.shape[1])
    reversed_adj = sp.csr_matrix((ones, (edge_index[1], edge_index[0])), shape=(num_nodes, num_nodes))
    dist_from_target, pred = shortest_path(reversed_adj, method="D", directed=True, unweighted=True,
                                           return_predecessors=True)
    next_hop = pred.T.astype(np.int64)
    next_hop[next_hop < 0] = -1  # scipy marks "no predecessor" with -9999
    return dist_from_target.T, next_hop
