"""What every backbone shares: the per-batch graph context and the layer loop.

A backbone encodes a PyG batch into token features plus a :class:`GraphContext`,
runs ``self.layers`` one after another (each ``layer(x, ctx) -> x``), then reads
out one prediction per graph. Keeping the loop here, with one signature for
every layer, is what lets layer pruning wrap or remove layers of any backbone.
"""
from __future__ import annotations

from dataclasses import dataclass

from ogb.graphproppred.mol_encoder import AtomEncoder, BondEncoder
from torch import Tensor, nn
from torch_geometric.data import Batch

from gtsp.nn.sequences import Sequences


@dataclass
class GraphContext:
    """Everything about a batch's structure that layers need, computed once per forward."""

    batch: Tensor
    num_graphs: int
    edge_index: Tensor
    edge_attr: Tensor | None
    seq: Sequences
    attn_bias: Tensor | None = None

    @property
    def attn_mask(self) -> Tensor | None:
        """Key padding mask for attention, or None when the batch has no padding."""
        return None if self.seq.is_full else self.seq.mask


class GraphTransformer(nn.Module):
    """Base class: ``forward(batch) = readout(layers(encode(batch)))``."""

    layers: nn.ModuleList
    name: str = ""
    # Precomputed encodings every model of this backbone reads, whatever its hyper-parameters.
    features: tuple[str, ...] = ()

    @classmethod
    def required_features(cls, hparams: dict) -> tuple[str, ...]:
        """Precomputed encodings (names in :data:`gtsp.data.transforms.FEATURES`) this backbone needs."""
        return cls.features

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
