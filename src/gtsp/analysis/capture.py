"""What a model computes on one batch, observed through the backbone contract only.

Forward pre-hooks on every attention module the backbone declares
(:meth:`~gtsp.models.base.GraphTransformer.attention_modules`) record its inputs
``(x, mask, bias, prefix)``; a forward hook on an attention's token selector records the slots
it kept; forward hooks on each entry of ``model.layers`` record the layer's output and which of
its rows are real tokens (``ctx.token_weights``). After the pass, each attention's own
:meth:`~gtsp.nn.attention.MultiHeadSelfAttention.probabilities` turns the recorded inputs into
``[B, H, L, L]`` maps; where a selector decided, over the kept tokens only, as the model attends.

Two ways to run the layers:

- ``same_input=False``: the model's own forward pass (each layer sees the previous one's output);
- ``same_input=True``: every layer applied to the same input, the encoded batch that enters the
  first layer. Two layers that compute the same function then give identical records, whatever
  their depth; this separates layers that do the same thing from representations that drift.

In every backbone a graph's tokens sit at the ``ctx.prefix`` slots after its special tokens, in
node order (:class:`gtsp.nn.sequences.Sequences`), so token ``p`` of graph ``b`` is its node ``p - prefix``.
"""
from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import torch
from torch import Tensor, nn
from torch_geometric.data import Batch

from gtsp.nn.attention import gather_pairs

_LAYER_NAME = re.compile(r"^layers\.(\d+)\.")


@dataclass
class AttentionRecord:
    """One attention module's maps on a batch.

    Attributes:
        name: qualified module name.
        layer: index of the ``model.layers`` entry holding it.
        probs: ``[B, H, L, L]`` probabilities; zero at padding and at tokens a selector dropped.
        mask: ``[B, L]`` True at real tokens (prefix included).
        kept: ``[B, L]`` True at the tokens that took part in attention (all real ones without a selector).
        prefix: special tokens in front of each graph's nodes.
    """

    name: str
    layer: int
    probs: Tensor
    mask: Tensor
    kept: Tensor
    prefix: int

    def node_kept(self, graph: int, num_nodes: int) -> Tensor:
        """``[num_nodes]`` True at the nodes of ``graph`` the selector kept."""
        return self.kept[graph, self.prefix:self.prefix + num_nodes]


@dataclass
class Capture:
    """Attention maps and layer outputs of one pass.

    Attributes:
        attentions: one record per attention module, in model order.
        layer_outputs: per ``model.layers`` entry, its ``[rows, C]`` output at the real-token rows
            (the same rows in the same order for every layer of one pass).
    """

    attentions: list[AttentionRecord] = field(default_factory=list)
    layer_outputs: list[Tensor] = field(default_factory=list)


def layer_index(name: str, fallback: int) -> int:
    """The ``model.layers`` index in a qualified module name (``fallback`` outside the layers)."""
    match = _LAYER_NAME.match(name)
    return int(match.group(1)) if match else fallback


@torch.no_grad()
def capture(model: nn.Module, batch: Batch, same_input: bool = False) -> Capture:
    """Run ``model`` (eval mode, no gradients) on ``batch`` and record what the module docstring says."""
    inputs: dict[str, dict[str, Any]] = {}
    selections: dict[str, tuple[Tensor, Tensor, Tensor]] = {}
    outputs: dict[int, Tensor] = {}
    attentions = model.attention_modules()
    handles = []
    for name, attention in attentions:
        handles.append(attention.register_forward_pre_hook(partial(_record_inputs, inputs, name), with_kwargs=True))
        if attention.token_selector is not None:
            handles.append(attention.token_selector.register_forward_hook(partial(_record_selection, selections, name)))
    for index, layer in enumerate(model.layers):
        handles.append(layer.register_forward_hook(partial(_record_output, outputs, index)))
    was_training = model.training
    model.eval()
    try:
        if same_input:
            x, ctx = model.encode(batch)
            for layer in model.layers:
                layer(x, ctx)
        else:
            model(batch)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    records = [_attention_record(name, position, attention, inputs[name], selections.get(name))
               for position, (name, attention) in enumerate(attentions) if name in inputs]
    return Capture(records, [outputs[i] for i in sorted(outputs)])


def _record_inputs(store: dict, name: str, module: nn.Module, args: tuple, kwargs: dict) -> None:
    bound = inspect.signature(module.forward).bind(*args, **kwargs)
    bound.apply_defaults()
    store[name] = dict(bound.arguments)


def _record_selection(store: dict, name: str, module: nn.Module, args: tuple, output: tuple) -> None:
    store[name] = tuple(t.detach() for t in output)


def _record_output(store: dict, index: int, module: nn.Module, args: tuple, output: Tensor) -> None:
    ctx = args[1]
    rows = ctx.token_weights(output) > 0
    store[index] = output.detach().float().flatten(0, -2)[rows]


def _attention_record(name: str, position: int, attention: nn.Module, inputs: dict[str, Any],
                      selection: tuple[Tensor, Tensor, Tensor] | None) -> AttentionRecord:
    x, mask, bias, prefix = inputs["x"], inputs["mask"], inputs["bias"], int(inputs["prefix"])
    batch, length, _ = x.shape
    real = mask if mask is not None else torch.ones(batch, length, dtype=torch.bool, device=x.device)
    if selection is None:
        probs, kept = attention.probabilities(x, mask, bias), real
    else:
        probs, kept = _selected_probabilities(attention, x, bias, selection)
    return AttentionRecord(name, layer_index(name, position), probs.float().cpu(), real.cpu(), kept.cpu(), prefix)


def _selected_probabilities(attention: nn.Module, x: Tensor, bias: Tensor | None,
                            selection: tuple[Tensor, Tensor, Tensor]) -> tuple[Tensor, Tensor]:
    """Maps among the kept tokens (as the attention gathers them), scattered back to ``[B, H, L, L]``."""
    index, kept_slots, _ = selection
    batch, length, width = x.shape
    picked = x.gather(1, index.unsqueeze(-1).expand(-1, -1, width))
    kept_bias = None if bias is None else gather_pairs(bias, index)
    probs = attention.probabilities(picked, kept_slots, kept_bias)
    heads, slots = probs.size(1), index.size(1)
    pairs = (index.unsqueeze(2) * length + index.unsqueeze(1)).view(batch, 1, slots * slots)
    full = probs.new_zeros(batch, heads, length * length)
    full.scatter_(2, pairs.expand(-1, heads, -1), probs.reshape(batch, heads, slots * slots))
    kept = torch.zeros(batch, length, dtype=torch.bool, device=x.device)
    kept.scatter_(1, index, kept_slots)
    return full.view(batch, heads, length, length), kept
