"""What every backbone shares and declares: the per-batch graph context, the layer loop, and the
contract between backbones and sparsifiers.

A backbone encodes a PyG batch into token features plus a :class:`GraphContext`,
runs ``self.layers`` one after another (each ``layer(x, ctx) -> x``), then reads
out one prediction per graph. Keeping the loop here, with one signature for
every layer, is what lets layer pruning wrap or remove layers of any backbone.

The contract (what a sparsifier, an accounting tool or an analysis may touch, and nothing else):

- :meth:`GraphTransformer.blocks`: the module containers that hold the prunable blocks, in
  forward order (``layers``; GraphTrans adds its GNN stack ``gnn``);
- :meth:`~GraphTransformer.attention_modules`, :meth:`~GraphTransformer.feedforwards`,
  :meth:`~GraphTransformer.message_passing`: the blocks by role, with qualified names, in model
  order; :meth:`~GraphTransformer.prunable_linears`: the weight matrices a weight sparsifier may mask;
- ``layers``: the layer list (layer pruning wraps or removes its entries);
- the sequence layout: each layer passes ``ctx.prefix`` (its [CLS] / virtual-token slots) to its
  attention, and :meth:`GraphContext.token_weights` says which rows of a layer's input are real tokens;
- :meth:`~GraphTransformer.compact_shared`: called after heads are pruned, so state shared across
  layers (Graphormer's bias heads) can shrink; a no-op by default.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from ogb.graphproppred.mol_encoder import AtomEncoder, BondEncoder
from torch import Tensor, nn
from torch_geometric.data import Batch
from torch_geometric.nn import MessagePassing
from torch_geometric.nn.dense.linear import Linear as PygLinear

from gtsp.nn.attention import MultiHeadSelfAttention
from gtsp.nn.capabilities import HEADS, NEURONS, has
from gtsp.nn.ffn import FeedForward
from gtsp.nn.sequences import Sequences


@dataclass
class GraphContext:
    """Everything about a batch's structure that layers need, computed once per forward.

    ``sequence_tokens`` says how the layers see tokens: True for padded ``[B, L, C]`` sequences
    (GraphTrans, Graphormer), False for PyG's flat ``[N, C]`` nodes (GraphGPS).
    """

    batch: Tensor
    num_graphs: int
    edge_index: Tensor
    edge_attr: Tensor | None
    seq: Sequences
    attn_bias: Tensor | None = None
    sequence_tokens: bool = False

    @property
    def attn_mask(self) -> Tensor | None:
        """Key padding mask for attention, or None when the batch has no padding."""
        return None if self.seq.is_full else self.seq.mask

    @property
    def prefix(self) -> int:
        """Special tokens ([CLS], virtual node) in front of each graph's nodes."""
        return self.seq.prefix

    def token_weights(self, x: Tensor) -> Tensor:
        """1 at the rows of ``x`` (flattened to ``[rows, C]``) that are real tokens, 0 at padding."""
        if self.sequence_tokens:
            return self.seq.mask.flatten().to(torch.float32)
        return x.new_ones(x.size(0), dtype=torch.float32)


class GraphTransformer(nn.Module):
    """Base class: ``forward(batch) = readout(layers(encode(batch)))``.

    Subclasses set ``name``, ``Params`` (their typed hyper-parameters, a dataclass) and
    ``features`` and take ``(info, params)`` in their constructor.
    """

    layers: nn.ModuleList
    name: str = ""
    Params: type = object
    # Precomputed encodings every model of this backbone reads, whatever its hyper-parameters.
    features: tuple[str, ...] = ()

    @classmethod
    def required_features(cls, hparams: dict) -> tuple[str, ...]:
        """Precomputed encodings (names in :data:`gtsp.data.transforms.FEATURES`) this backbone needs."""
        return cls.features

    def hparams(self) -> dict[str, Any]:
        """The hyper-parameters this model was built with (JSON-ready)."""
        return asdict(self.params)

    def encode(self, data: Batch) -> tuple[Tensor, GraphContext]:
        raise NotImplementedError

    def readout(self, x: Tensor, ctx: GraphContext) -> Tensor:
        raise NotImplementedError

    def reset_parameters(self) -> None:
        reset_children(self)

    def forward(self, data: Batch) -> Tensor:
        x, ctx = self.encode(data)
        for layer in self.layers:
            x = layer(x, ctx)
        return self.readout(x, ctx)

    # ---- the contract with sparsifiers ----------------------------------------------------------
    def blocks(self) -> list[tuple[str, nn.Module]]:
        """``(attribute, container)`` of the prunable blocks, in forward order."""
        return [("layers", self.layers)]

    def modules_by_role(self) -> list[tuple[str, str, nn.Module]]:
        """``(role, qualified name, module)`` for every attention (``"attention"``), feed-forward block
        (``"ffn"``, GIN MLPs included) and message-passing convolution (``"message_passing"``) inside
        :meth:`blocks`, in model order."""
        found: dict[int, tuple[str, str, nn.Module]] = {}
        for prefix, block in self.blocks():
            for name, module in block.named_modules(prefix=prefix):
                role = _role(module)
                if role is not None:
                    found.setdefault(id(module), (role, name, module))
        return list(found.values())

    def attention_modules(self) -> list[tuple[str, MultiHeadSelfAttention]]:
        return [(name, m) for role, name, m in self.modules_by_role() if role == "attention"]

    def feedforwards(self) -> list[tuple[str, FeedForward]]:
        return [(name, m) for role, name, m in self.modules_by_role() if role == "ffn"]

    def message_passing(self) -> list[tuple[str, nn.Module]]:
        return [(name, m) for role, name, m in self.modules_by_role() if role == "message_passing"]

    def prunable_linears(self) -> list[tuple[str, nn.Module]]:
        """The Linear layers whose weights a weight sparsifier may mask, with qualified names, in model
        order: ``qkv`` and ``out`` of every attention, ``fc1`` and ``fc2`` of every feed-forward block,
        and the Linear children of message-passing convolutions (GCN's ``lin``). Never: encoders,
        embeddings, Graphormer's bias tables, projections between stages, the prediction head, and
        modules sparsifiers attach (a token scorer is neither ``qkv`` nor ``out``)."""
        chosen: dict[int, tuple[str, nn.Module]] = {}
        for role, name, module in self.modules_by_role():
            for child_name, child in _role_linears(role, module):
                chosen.setdefault(id(child), (f"{name}.{child_name}", child))
        return list(chosen.values())

    def compact_shared(self) -> None:
        """Shrink state shared across layers after their heads were pruned (default: none)."""


def _role(module: nn.Module) -> str | None:
    """A block's role from the capabilities it declares (PyG's convolutions, which declare none, by class)."""
    if has(module, HEADS):
        return "attention"
    if has(module, NEURONS):
        return "ffn"
    if isinstance(module, MessagePassing):
        return "message_passing"
    return None


def _role_linears(role: str, module: nn.Module):
    """The maskable Linear layers of a block: those it lists itself, or a convolution's Linear children."""
    if role in ("attention", "ffn"):
        yield from module.linears()
        return
    for name, child in module.named_children():
        if isinstance(child, (nn.Linear, PygLinear)):
            yield name, child


def reset_children(module: nn.Module) -> None:
    """Re-initialise every submodule once, as its constructor did.

    A module with its own ``reset_parameters`` owns its whole subtree (so e.g. the
    attention's xavier init is not overwritten by ``nn.Linear``'s default); OGB's
    atom/bond encoders have none and initialise their embeddings with xavier.
    """
    for child in module.children():
        if isinstance(child, (AtomEncoder, BondEncoder)):
            for embedding in child.modules():
                if isinstance(embedding, nn.Embedding):
                    nn.init.xavier_uniform_(embedding.weight)
        elif hasattr(child, "reset_parameters"):
            child.reset_parameters()
        else:
            reset_children(child)
