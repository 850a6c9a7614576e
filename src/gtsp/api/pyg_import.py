"""``gtsp.from_pyg``: a PyG GraphGPS model (``GPSConv`` layers) as gtsp's GraphGPS, same weights.

Layer by layer the computations are the same: ``GPSConv``'s local branch
``norm1(x + conv(x))``, attention branch ``norm2(x + attn(x))`` and ``norm3(h + mlp(h))`` are
gtsp's ``norm_local``, ``norm_attn`` and ``norm_out``; ``MultiheadAttention``'s packed
``in_proj`` is gtsp's ``qkv`` (same q/k/v and head order). The example's concatenation of
node and positional encodings is two padded ``Linear`` maps summed, which is what gtsp's node
encoder computes. Which parts are read: :mod:`gtsp.api.pyg_parts`.
"""
from __future__ import annotations

import torch
from ogb.graphproppred.mol_encoder import AtomEncoder
from torch import nn
from torch_geometric.nn.norm import BatchNorm as PygBatchNorm

from gtsp.api.model_files import SavedModel
from gtsp.api.pyg_parts import PygParts, encoder_width, find_parts, hyperparameters
from gtsp.data.info import DatasetInfo
from gtsp.data.registry import GraphDataset
from gtsp.errors import GtspError
from gtsp.models import build_model
from gtsp.models.files import model_spec


def from_pyg(model: nn.Module, data: str | DatasetInfo | GraphDataset, *, pool: str = "sum",
             node_encoder: str = "node_emb", pe_norm: str = "pe_norm", pe_encoder: str = "pe_lin",
             edge_encoder: str = "edge_emb", layers: str = "convs", readout: str = "mlp") -> SavedModel:
    """gtsp's GraphGPS computing what a PyG model built from ``GPSConv`` computes, with its weights.

    Args:
        model: the PyG model (see :mod:`gtsp.api.pyg_parts` for the parts it may have).
        data: the dataset the model reads (a name, a loaded dataset or its :class:`DatasetInfo`): its
            feature widths and outputs.
        pool: the graph pooling the model's forward uses before the readout (``"sum"``, as in
            PyG's example, or ``"mean"``).
        node_encoder, pe_norm, pe_encoder, edge_encoder, layers, readout: the model's attribute names
            of its parts (defaults: those of PyG's ``examples/graph_gps.py``).

    The converted model reads the random-walk encoding as ``batch.rwse`` (``gtsp.load_dataset``
    computes it; PyG's example calls it ``pe``). It can be saved, pruned (:func:`gtsp.prune`),
    compacted and exported like a model gtsp trained.

    Example:
        >>> import gtsp, torch
        >>> from torch import nn
        >>> from torch_geometric.nn import GINEConv, GPSConv
        >>> class PygGPS(nn.Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.node_emb, self.edge_emb = nn.Linear(7, 16), nn.Linear(4, 16)
        ...         mlp = lambda: nn.Sequential(nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 16))
        ...         self.convs = nn.ModuleList(GPSConv(16, GINEConv(mlp()), heads=2) for _ in range(2))
        ...         self.mlp = nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 2))
        >>> data = gtsp.load_dataset("MUTAG", model_args={"rwse_steps": 0})
        >>> converted = gtsp.from_pyg(PygGPS(), data)
        >>> converted.spec["hparams"]["local"], converted.spec["hparams"]["head_shrink"]
        ('gine', 2)
    """
    if isinstance(data, str):
        from gtsp.api.graphs import load_dataset

        data = load_dataset(data)
    if not isinstance(data, (DatasetInfo, GraphDataset)):
        raise GtspError(f"from_pyg needs the dataset the model reads: a name, gtsp.load_dataset(...) or its .info, "
                        f"not {type(data).__name__}")
    info = data.info if isinstance(data, GraphDataset) else data
    names = {"node_encoder": node_encoder, "pe_norm": pe_norm, "pe_encoder": pe_encoder,
             "edge_encoder": edge_encoder, "layers": layers, "readout": readout}
    parts = find_parts(model, names)
    hparams = hyperparameters(parts, pool)
    _check_encoders(parts, hparams, info)
    converted = build_model("gps", info, **hparams)
    with torch.no_grad():
        _copy_encoders(parts, converted, hparams["hidden"])
        for conv, layer in zip(parts.layers, converted.layers):
            _copy_layer(conv, layer)
        _copy_readout(parts.readout, converted.head)
    spec = model_spec(converted, info, dataset=info.name, extra={"config": None, "imported_from": "pyg"})
    return SavedModel(converted.eval(), spec)


def _check_encoders(parts: PygParts, hparams: dict, info: DatasetInfo) -> None:
    """The encoders fit the dataset and together fill the layer width."""
    width = hparams["hidden"]
    pe = parts.pe_encoder.out_features if parts.pe_encoder is not None else 0
    node = encoder_width(parts.node_encoder, "node encoder")
    if node + pe != width:
        raise GtspError(f"from_pyg: node encoder width {node} + positional encoding width {pe} is not the layer "
                        f"width {width}: the example concatenates the two into the layer width")
    if isinstance(parts.node_encoder, AtomEncoder) != info.molecular:
        raise GtspError(f"from_pyg: {info.name} is {'' if info.molecular else 'not '}a molecular dataset; use "
                        f"{'AtomEncoder' if info.molecular else 'Linear'} as the node encoder")
    if isinstance(parts.node_encoder, nn.Linear) and parts.node_encoder.in_features != info.num_node_features:
        raise GtspError(f"from_pyg: the node encoder reads {parts.node_encoder.in_features} features, "
                        f"{info.name} has {info.num_node_features}")
    wants_edges = hparams["local"] == "gine"
    if wants_edges != (parts.edge_encoder is not None) or (wants_edges and info.num_edge_features == 0):
        raise GtspError("from_pyg: GINE layers need an edge encoder and edge features, GIN layers use neither: "
                        f"this model has {'an' if parts.edge_encoder is not None else 'no'} edge encoder, "
                        f"{hparams['local'].upper()} layers, and {info.name} has {info.num_edge_features} edge "
                        "features")
    if wants_edges:
        edge = encoder_width(parts.edge_encoder, "edge encoder")
        reads = getattr(parts.edge_encoder, "in_features", info.num_edge_features)
        if edge != width or reads != info.num_edge_features:
            raise GtspError(f"from_pyg: the edge encoder maps {reads} features to {edge}; {info.name} has "
                            f"{info.num_edge_features} edge features and the layers are {width} wide")


def _copy_encoders(parts: PygParts, converted: nn.Module, width: int) -> None:
    """Node encoder rows first, positional-encoding rows after (the example's concatenation)."""
    node = encoder_width(parts.node_encoder, "node encoder")
    target = converted.node_encoder
    if isinstance(parts.node_encoder, AtomEncoder):
        for mine, theirs in zip(target.features.atom_embedding_list, parts.node_encoder.atom_embedding_list):
            mine.weight.zero_()[:, :node] = theirs.weight
    else:
        _padded_linear(target.features, parts.node_encoder, 0)
    if parts.pe_encoder is not None:
        target.rwse[0].load_state_dict(parts.pe_norm.state_dict())
        _padded_linear(target.rwse[1], parts.pe_encoder, node)
    if parts.edge_encoder is not None:
        converted.edge_encoder.features.load_state_dict(parts.edge_encoder.state_dict())


def _padded_linear(mine: nn.Linear, theirs: nn.Linear, start: int) -> None:
    """``mine`` computes ``theirs`` in output rows ``start..`` and zeros elsewhere."""
    rows = slice(start, start + theirs.out_features)
    mine.weight.zero_()[rows] = theirs.weight
    mine.bias.zero_()[rows] = theirs.bias


def _copy_layer(conv: nn.Module, layer: nn.Module) -> None:
    """One ``GPSConv`` into one gtsp ``GPSLayer``."""
    if conv.conv is not None:
        gin = layer.local.conv
        gin.eps.copy_(conv.conv.eps)
        gin.nn.fc1.load_state_dict(conv.conv.nn[0].state_dict())
        gin.nn.fc2.load_state_dict(conv.conv.nn[2].state_dict())
        layer.norm_local.load_state_dict(_batch_norm(conv.norm1).state_dict())
    attention = layer.attention
    attention.qkv.weight.copy_(conv.attn.in_proj_weight)
    attention.qkv.bias.copy_(conv.attn.in_proj_bias)
    attention.out.load_state_dict(conv.attn.out_proj.state_dict())
    layer.norm_attn.load_state_dict(_batch_norm(conv.norm2).state_dict())
    layer.ffn.fc1.load_state_dict(conv.mlp[0].state_dict())
    layer.ffn.fc2.load_state_dict(conv.mlp[3].state_dict())
    layer.norm_out.load_state_dict(_batch_norm(conv.norm3).state_dict())


def _batch_norm(norm: nn.Module) -> nn.BatchNorm1d:
    return norm.module if isinstance(norm, PygBatchNorm) else norm


def _copy_readout(linears: list[nn.Linear], head: nn.Module) -> None:
    """The readout's Linear layers into gtsp's head (a FeedForward, or a Sequential of Linear/ReLU)."""
    targets = [head.fc1, head.fc2] if hasattr(head, "fc1") else [m for m in head if isinstance(m, nn.Linear)]
    for mine, theirs in zip(targets, linears, strict=True):
        mine.load_state_dict(theirs.state_dict())
