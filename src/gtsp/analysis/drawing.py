"""Graph drawings for the analyses (networkx layout, matplotlib), for graphs without a molecule drawing."""
from __future__ import annotations

from collections.abc import Sequence

import networkx as nx
from matplotlib.axes import Axes
from torch_geometric.data import Data
from torch_geometric.utils import to_networkx

from gtsp.analysis.figures import MARK_COLOUR

LAYOUT_SEED = 0


def layout(graph: Data) -> dict[int, tuple[float, float]]:
    """A fixed (seeded) Kamada-Kawai layout, so every panel of one graph looks the same."""
    nx_graph = to_networkx(graph, to_undirected=True)
    if nx_graph.number_of_nodes() <= 2 or not nx.is_connected(nx_graph):
        return nx.spring_layout(nx_graph, seed=LAYOUT_SEED)
    return nx.kamada_kawai_layout(nx_graph)


def draw_graph(ax: Axes, graph: Data, title: str, values: Sequence[float] | None = None,
               marked: Sequence[bool] | None = None, labels: dict[int, str] | None = None,
               positions: dict | None = None, cmap: str = "viridis", vmax: float | None = None):
    """Draw ``graph``: nodes coloured by ``values`` (when given), ``marked`` nodes ringed in red,
    the rest grey when only ``marked`` is given. Returns the node collection (for a colour bar)."""
    nx_graph = to_networkx(graph, to_undirected=True)
    positions = positions or layout(graph)
    nx.draw_networkx_edges(nx_graph, positions, ax=ax, width=0.8, edge_color="0.55")
    if values is not None:
        colours, options = list(values), {"cmap": cmap, "vmin": 0.0, "vmax": vmax}
    elif marked is not None:
        colours, options = [MARK_COLOUR if m else "0.85" for m in marked], {}
    else:
        colours, options = "tab:blue", {}
    nodes = nx.draw_networkx_nodes(nx_graph, positions, ax=ax, node_size=60, node_color=colours,
                                   edgecolors="0.3", linewidths=0.5, **options)
    if values is not None and marked is not None:
        ringed = [n for n, m in zip(nx_graph.nodes, marked) if m]
        nx.draw_networkx_nodes(nx_graph, positions, nodelist=ringed, ax=ax, node_size=110, node_color="none",
                               edgecolors=MARK_COLOUR, linewidths=1.2)
    if labels:
        nx.draw_networkx_labels(nx_graph, positions, labels=labels, ax=ax, font_size=5)
    ax.set_title(title, fontsize=8)
    ax.set_axis_off()
    return nodes
