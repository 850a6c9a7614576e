"""Token pruning: fewer tokens in every global attention (GTSP, Liu et al., Neural Networks 2024).

``prepare`` installs a :class:`gtsp.nn.token_selector.TokenSelector` (a learned scorer with
a Gumbel-Softmax top-k, Jang et al. 2017) as ``attention.token_selector`` on every
:class:`gtsp.nn.attention.MultiHeadSelfAttention` of the model, whatever the backbone.
The attention then gathers only the kept tokens into a shorter sequence, so the pruning
saves compute during training already, unlike the paper's code, which multiplies dropped
tokens by zero.

Special tokens ([CLS] in GraphTrans, [VNode] in Graphormer) are never pruned. The only
place that knows how many there are is the batch layout the backbone builds
(``ctx.seq.prefix``), so a forward pre-hook on each entry of ``model.layers`` (every
backbone calls ``layer(x, ctx)``) copies it into that layer's selectors: no backbone
needs to declare it, and it can never disagree with the layout.

Compaction has nothing to fold: the selectors already shrink attention. The compacted
model keeps them; in eval mode they are a ``Linear(C, 1)`` and a top-k, nothing more.
"""
from __future__ import annotations

from typing import Any

from torch import nn

from gtsp.errors import GtspError
from gtsp.nn.attention import MultiHeadSelfAttention
from gtsp.nn.token_selector import TokenSelector
from gtsp.sparsify.base import Sparsifier
from gtsp.sparsify.layer import unwrap_layer


def _sync_prefix(layer: nn.Module, args: tuple) -> None:
    """Forward pre-hook on a backbone layer: its selectors keep the layout's prefix slots."""
    ctx = args[1] if len(args) > 1 else None
    seq = getattr(ctx, "seq", None)
    if seq is None:
        return
    for module in layer.modules():
        if isinstance(module, TokenSelector):
            module.always_keep = seq.prefix


def install_prefix_hooks(model: nn.Module) -> None:
    """Hook every layer of ``model.layers`` (idempotent; looks through layer-drop wrappers)."""
    for entry in getattr(model, "layers", ()):
        layer = unwrap_layer(entry)
        if _sync_prefix not in layer._forward_pre_hooks.values():
            layer.register_forward_pre_hook(_sync_prefix)


def selectors(model: nn.Module) -> list[TokenSelector]:
    return [m for m in model.modules() if isinstance(m, TokenSelector)]


class TokenSparsifier(Sparsifier):
    """Keeps ``1 - ratio`` of each graph's node tokens in every attention layer.

    Args:
        ratio: fraction of node tokens REMOVED per graph and layer, ``0 <= ratio < 1``.
        tau: Gumbel-Softmax temperature of the training-time sample.

    ``compact(model)`` returns ``model`` itself with its selectors (nothing to fold).
    """

    dimension = "token"

    def __init__(self, ratio: float, tau: float = 1.0) -> None:
        super().__init__(ratio)
        if not tau > 0:
            raise GtspError(f"token pruning temperature tau={tau} must be positive, e.g. 1.0")
        self.tau = float(tau)
        self.kept_token_fraction: float | None = None

    def prepare(self, model: nn.Module) -> nn.Module:
        attentions = [m for m in model.modules() if isinstance(m, MultiHeadSelfAttention)]
        if not attentions:
            raise GtspError("token pruning needs global attention; this model has none "
                            "(e.g. GPS with --heads 0): give the model attention heads or drop --prune token")
        for attention in attentions:
            if attention.token_selector is not None:
                raise GtspError("this model already has token selectors: prepare token pruning only once")
            weight = attention.qkv.weight
            attention.token_selector = TokenSelector(attention.dim, self.ratio, self.tau).to(
                device=weight.device, dtype=weight.dtype)
        install_prefix_hooks(model)
        self.model = model
        return model

    def on_epoch_end(self, epoch: int) -> None:
        # The trainer evaluates before this hook, so the counts cover this epoch's eval passes.
        measured = self._read_counts(self.model)
        if measured is not None:
            self.kept_token_fraction = measured

    def state_dict(self) -> dict[str, Any]:
        # The scorers are submodules of the model, so the model's own checkpoint carries them.
        return {"ratio": self.ratio, "tau": self.tau, "kept_token_fraction": self.kept_token_fraction}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.kept_token_fraction = state.get("kept_token_fraction")

    def compact(self, model: nn.Module) -> nn.Module:
        if not selectors(model):
            raise GtspError("token compaction got a model without token selectors: call prepare() on it first")
        # Layer compaction may have unwrapped the layers that carried the hooks.
        install_prefix_hooks(model)
        return model

    def summary(self) -> dict[str, Any]:
        measured = self._read_counts(self.model, reset=False) if self.model is not None else None
        return {"ratio": self.ratio, "kept": 1.0 - self.ratio, "tau": self.tau,
                "attention_layers": len(selectors(self.model)) if self.model is not None else 0,
                "kept_token_fraction": measured if measured is not None else self.kept_token_fraction}

    @staticmethod
    def _read_counts(model: nn.Module | None, reset: bool = True) -> float | None:
        """Fraction of node tokens kept over the eval passes counted so far (None if none ran)."""
        if model is None:
            return None
        kept = seen = 0.0
        for selector in selectors(model):
            kept += float(selector.kept_tokens)
            seen += float(selector.seen_tokens)
            if reset:
                selector.reset_counts()
        return kept / seen if seen else None
