"""Reading a PyG GraphGPS model: which parts it has and the gtsp hyper-parameters they amount to.

A model built as PyG's ``examples/graph_gps.py`` builds one has, as attributes:

- ``node_emb``: ``Linear`` on the node features (or OGB's ``AtomEncoder`` for molecules), whose
  output is concatenated with ``pe_lin(pe_norm(rwse))`` when the model has ``pe_norm``
  (``BatchNorm1d`` over the random-walk encoding) and ``pe_lin`` (``Linear``);
- ``edge_emb``: ``Linear`` on the edge features (or OGB's ``BondEncoder``), with GINE layers;
- ``convs``: a ``ModuleList`` of ``GPSConv`` (multi-head attention, GIN or GINE local
  convolution with the MLP ``Linear -> ReLU -> Linear``, batch norm, ReLU);
- ``mlp``: the readout after sum (or mean) pooling, ``Linear`` layers with ``ReLU`` between them.

Other attribute names are given to :func:`gtsp.from_pyg`. Anything else is refused by name.
"""
from __future__ import annotations

from dataclasses import dataclass

from ogb.graphproppred.mol_encoder import AtomEncoder, BondEncoder
from torch import nn
from torch_geometric.nn import GINConv, GINEConv, GPSConv
from torch_geometric.nn.norm import BatchNorm as PygBatchNorm

from gtsp.data.transforms import RWSE_STEPS
from gtsp.errors import GtspError

# gtsp's part -> the attribute of PyG's example that holds it
DEFAULT_NAMES = {"node_encoder": "node_emb", "pe_norm": "pe_norm", "pe_encoder": "pe_lin",
                 "edge_encoder": "edge_emb", "layers": "convs", "readout": "mlp"}


@dataclass
class PygParts:
    """The parts of a PyG GraphGPS model (None where it has none)."""

    node_encoder: nn.Module
    pe_norm: nn.BatchNorm1d | None
    pe_encoder: nn.Linear | None
    edge_encoder: nn.Module | None
    layers: list[GPSConv]
    readout: list[nn.Linear]


def find_parts(model: nn.Module, names: dict[str, str]) -> PygParts:
    """The parts of ``model`` under ``names`` (see :data:`DEFAULT_NAMES`); any other child is refused."""
    children = dict(model.named_children())
    extra = sorted(set(children) - set(names.values()))
    if extra:
        found = ", ".join(f"{n} ({type(children[n]).__name__})" for n in extra)
        raise GtspError(f"from_pyg: the model has part(s) {found} "
                        f"that gtsp's GraphGPS has no place for; it converts the parts {', '.join(DEFAULT_NAMES)}: "
                        "name a part's attribute with from_pyg(..., node_encoder='...') or --part node_encoder=...")
    for part in ("node_encoder", "layers", "readout"):
        if names[part] not in children:
            raise GtspError(f"from_pyg: the model has no {part} attribute {names[part]!r}: pass {part}='<attribute>'")
    layers = children[names["layers"]]
    if not isinstance(layers, nn.ModuleList) or not all(isinstance(c, GPSConv) for c in layers) or not len(layers):
        raise GtspError(f"from_pyg: {names['layers']!r} must be a ModuleList of torch_geometric.nn.GPSConv, "
                        f"found {type(layers).__name__}")
    pe_norm, pe_encoder = children.get(names["pe_norm"]), children.get(names["pe_encoder"])
    if (pe_norm is None) != (pe_encoder is None):
        raise GtspError(f"from_pyg: a positional encoding needs both {names['pe_norm']!r} (BatchNorm1d) and "
                        f"{names['pe_encoder']!r} (Linear); the model has only one of them")
    if pe_norm is not None:
        pe_norm = pe_norm.module if isinstance(pe_norm, PygBatchNorm) else pe_norm
        if not isinstance(pe_norm, nn.BatchNorm1d) or not isinstance(pe_encoder, nn.Linear) \
                or pe_encoder.bias is None:
            raise GtspError(f"from_pyg: the positional encoding must be BatchNorm1d ({names['pe_norm']!r}) then "
                            f"Linear with bias ({names['pe_encoder']!r}); found {type(pe_norm).__name__}, "
                            f"{type(pe_encoder).__name__}")
    return PygParts(children[names["node_encoder"]], pe_norm, pe_encoder, children.get(names["edge_encoder"]),
                    list(layers), readout_linears(children[names["readout"]]))


def readout_linears(readout: nn.Module) -> list[nn.Linear]:
    """The Linear layers of a readout ``Sequential(Linear, ReLU, Linear, ..., Linear)``."""
    items = list(readout) if isinstance(readout, nn.Sequential) else [readout]
    expected = [nn.Linear if i % 2 == 0 else nn.ReLU for i in range(len(items))]
    if not items or len(items) % 2 == 0 or any(type(m) is not kind for m, kind in zip(items, expected)):
        raise GtspError(f"from_pyg: the readout must be Sequential(Linear, ReLU, ..., Linear); found "
                        f"{', '.join(type(m).__name__ for m in items)}")
    return items[::2]


def local_kind(conv: GPSConv) -> str:
    """``"gine"``, ``"gin"`` or ``"none"`` for a GPSConv's local convolution (GIN MLP checked)."""
    if conv.conv is None:
        return "none"
    if not isinstance(conv.conv, (GINEConv, GINConv)):
        raise GtspError(f"from_pyg: local convolution {type(conv.conv).__name__} is not supported: "
                        "gtsp's GraphGPS converts GINEConv and GINConv")
    if isinstance(conv.conv, GINEConv) and conv.conv.lin is not None:
        raise GtspError("from_pyg: GINEConv with edge_dim (its own edge projection) is not supported: "
                        "encode edges to the layer width before the layers (edge_emb) instead")
    mlp = conv.conv.nn
    items = list(mlp) if isinstance(mlp, nn.Sequential) else [mlp]
    width = conv.channels
    shape_ok = (len(items) == 3 and isinstance(items[0], nn.Linear) and isinstance(items[1], nn.ReLU)
                and isinstance(items[2], nn.Linear) and items[0].in_features == items[0].out_features == width
                and items[2].out_features == width and items[0].bias is not None and items[2].bias is not None)
    if not shape_ok:
        raise GtspError(f"from_pyg: the GIN MLP must be Sequential(Linear({width}, {width}), ReLU(), "
                        f"Linear({width}, {width})); found {mlp}")
    return "gine" if isinstance(conv.conv, GINEConv) else "gin"


def check_layer(index: int, conv: GPSConv) -> None:
    """Refuse what gtsp's GPS layer does not compute: other attention, activation or normalisation."""
    where = f"from_pyg: layer {index}"
    if conv.attn_type != "multihead":
        raise GtspError(f"{where}: attention {conv.attn_type!r} is not supported: gtsp converts attn_type='multihead'")
    attn = conv.attn
    if not attn._qkv_same_embed_dim or attn.in_proj_bias is None or attn.bias_k is not None or attn.add_zero_attn:
        raise GtspError(f"{where}: MultiheadAttention with kdim/vdim, bias=False, add_bias_kv or add_zero_attn "
                        "is not supported")
    if not isinstance(conv.mlp[1], nn.ReLU):
        raise GtspError(f"{where}: activation {type(conv.mlp[1]).__name__} is not supported: gtsp's GPS uses ReLU")
    for name in ("norm1", "norm2", "norm3"):
        norm = getattr(conv, name)
        bn = norm.module if isinstance(norm, PygBatchNorm) else norm
        if not isinstance(bn, nn.BatchNorm1d) or not bn.affine or not bn.track_running_stats or bn.eps != 1e-5:
            raise GtspError(f"{where}: normalisation {type(norm).__name__} is not supported: gtsp's GPS uses "
                            "batch_norm (affine, running statistics, eps 1e-5)")


def encoder_width(module: nn.Module, role: str) -> int:
    """Output width of a node/edge encoder (Linear, or OGB's Atom/BondEncoder); others are refused."""
    if isinstance(module, nn.Linear):
        if module.bias is None:
            raise GtspError(f"from_pyg: the {role} Linear has no bias: gtsp's encoders have one")
        return module.out_features
    if isinstance(module, (AtomEncoder, BondEncoder)):
        return module.atom_embedding_list[0].embedding_dim if isinstance(module, AtomEncoder) \
            else module.bond_embedding_list[0].embedding_dim
    raise GtspError(f"from_pyg: {role} {type(module).__name__} is not supported: use Linear on the features "
                    "(or OGB's AtomEncoder/BondEncoder for molecules); an Embedding of a category index "
                    "equals a Linear on its one-hot features")


def hyperparameters(parts: PygParts, pool: str) -> dict:
    """gtsp GPS hyper-parameters equivalent to ``parts`` (refusing layers that differ from each other)."""
    first = parts.layers[0]
    width = first.channels
    for i, conv in enumerate(parts.layers):
        check_layer(i, conv)
        if (conv.channels, conv.heads, conv.dropout, conv.attn.dropout, local_kind(conv)) != \
                (width, first.heads, first.dropout, first.attn.dropout, local_kind(first)):
            raise GtspError(f"from_pyg: layer {i} differs from layer 0 (width, heads, dropout or local "
                            "convolution): gtsp's GraphGPS has the same layer throughout")
    steps = parts.pe_norm.num_features if parts.pe_norm is not None else 0
    if steps not in (0, RWSE_STEPS):
        raise GtspError(f"from_pyg: the positional encoding has {steps} features; gtsp computes the random-walk "
                        f"encoding with {RWSE_STEPS} steps (AddRandomWalkPE(walk_length={RWSE_STEPS}))")
    shrink = head_shrink(parts.readout, width)
    return {"hidden": width, "layers": len(parts.layers), "heads": first.heads, "dropout": first.dropout,
            "attn_dropout": first.attn.dropout, "local": local_kind(first), "pool": pool, "rwse_steps": steps,
            "ffn_ratio": 2, "attention": True, "head_layers": len(parts.readout), "head_shrink": shrink}


def head_shrink(linears: list[nn.Linear], width: int) -> int:
    """The ``head_shrink`` whose widths ``width, width/s, width/s^2, ...`` the readout's layers have."""
    widths = [lin.in_features for lin in linears]
    shrink = width // widths[1] if len(widths) > 1 and widths[1] else 1
    if shrink < 1 or widths != [width // shrink ** i for i in range(len(widths))]:
        raise GtspError(f"from_pyg: readout widths {widths} are not {width} divided by a constant factor per layer")
    return shrink
