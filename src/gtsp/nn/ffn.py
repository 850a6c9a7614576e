"""Position-wise feed-forward block (also the MLP inside GIN): ``Linear(C, hidden) -> activation -> dropout -> Linear(hidden, C)``.

Shared by the transformer layers of every backbone. ``hidden_transform`` is the slot where a
sparsifier may attach a module applied to the hidden activations (neuron pruning puts its gate
there); :meth:`FeedForward.prune_neurons` keeps a subset of hidden neurons, which is what
structured pruning compacts into (a narrower dense layer that really runs faster).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from gtsp.errors import GtspError
from gtsp.nn.capabilities import NEURONS
from gtsp.nn.slicing import slice_linear


ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU}


class FeedForward(nn.Module):
    """Two-layer MLP applied to every token.

    Args:
        dim: input and output width.
        hidden: hidden width (``2 * dim`` in GraphGPS, ``4 * dim`` in most transformers).
        dropout: dropout after the activation and after the second layer.
        activation: ``"gelu"`` (transformers) or ``"relu"`` (GraphGPS, GIN).
        out_dim: output width; defaults to ``dim``.
    """

    capabilities = frozenset({NEURONS})

    def __init__(self, dim: int, hidden: int, dropout: float = 0.0, activation: str = "gelu",
                 out_dim: int | None = None) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise GtspError(f"unknown activation {activation!r}: choose one of {sorted(ACTIVATIONS)}")
        self.fc1 = nn.Linear(dim, hidden)
        self.act = ACTIVATIONS[activation]()
        self.fc2 = nn.Linear(hidden, out_dim or dim)
        self.drop = nn.Dropout(dropout)
        self.hidden_transform: nn.Module | None = None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.fc1.reset_parameters()
        self.fc2.reset_parameters()

    def forward(self, x: Tensor) -> Tensor:
        hidden = self.act(self.fc1(x))
        if self.hidden_transform is not None:
            hidden = self.hidden_transform(hidden)
        return self.drop(self.fc2(self.drop(hidden)))

    @property
    def hidden(self) -> int:
        """Hidden width (number of neurons)."""
        return self.fc1.out_features

    @torch.no_grad()
    def prune_neurons(self, keep: Tensor, scale: Tensor | None = None) -> None:
        """Keep only the hidden neurons in ``keep`` (indices); ``scale`` (one factor per kept neuron,
        e.g. a gate's values) is folded into ``fc2``."""
        keep = torch.as_tensor(keep, dtype=torch.long).sort().values
        if keep.numel() == 0:
            raise GtspError("pruning would remove every neuron of a feed-forward block: lower the ratio")
        self.fc1 = slice_linear(self.fc1, rows=keep)
        self.fc2 = slice_linear(self.fc2, cols=keep)
        if scale is not None:
            self.scale_neurons(scale)

    def linears(self) -> list[tuple[str, nn.Linear]]:
        """The Linear layers a weight sparsifier may mask: both of them."""
        return [("fc1", self.fc1), ("fc2", self.fc2)]

    @torch.no_grad()
    def scale_neurons(self, scale: Tensor) -> None:
        """Multiply each hidden neuron's output by ``scale`` (one factor per neuron), folded into ``fc2``'s
        columns: how a neuron gate becomes plain weights (a factor 0 silences the neuron)."""
        self.fc2.weight.mul_(scale.to(self.fc2.weight).unsqueeze(0))
