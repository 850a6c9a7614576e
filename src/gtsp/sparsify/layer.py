"""Layer pruning: train with LayerDrop, then remove the most redundant whole layers
(GTSP, Liu et al., Neural Networks 2024).

Training follows LayerDrop (Fan et al., ICLR 2020, "Reducing Transformer Depth on Demand
with Structured Dropout"): each training batch skips each layer with probability
``drop_prob``. The skip is of the WHOLE layer (``x -> x``), exactly what removing it
later does, so the trained model is used to running without any of its layers. Once the
chosen layers are removed (``prune_epoch``), the kept ones train on without LayerDrop by
default (``finetune_drop_prob``). Every backbone runs ``x = layer(x, ctx)`` over
``model.layers`` (its declared contract), so a wrapper around each entry works for all of them.

Which layers go: the ones whose output is most like their input. While training, each
layer that runs measures, on the real tokens of the batch and without gradients,

- the mean cosine similarity between each token's input and output representation;
- optionally linear CKA (Kornblith et al., ICML 2019) between the layer's input and
  output token matrices (``criterion="cka"``; it costs a ``C x C`` product per batch).

Which rows of a layer's input are real tokens (not padding) the batch's context says
(``ctx.token_weights``), whatever the backbone's token layout. The score of the most recent
epoch is kept in the sparsifier's state, so a resumed run removes the same layers.
Compaction plans the ``round(ratio * L)`` highest-scoring layers away and unwraps the
others; :meth:`LayerSparsifier.mask` instead skips them in place, the "masked" model, which
computes exactly what the compacted one does.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from gtsp.errors import GtspError
from gtsp.nn.capabilities import SKIPPABLE, has
from gtsp.sparsify.base import Sparsifier, check_contract
from gtsp.sparsify.dimension import Dimension, Fragment, RatioOptions, check_choice, check_range, distinct_ratios
from gtsp.sparsify.plan import CompactionPlan, check_count
from gtsp.sparsify.sync import sum_across_ranks

log = logging.getLogger("gtsp.sparsify")

CRITERIA = ("cosine", "cka")


@dataclass(frozen=True)
class LayerOptions(RatioOptions):
    """Options of layer pruning (see :class:`LayerSparsifier`)."""

    dimension_name: ClassVar[str] = "layer"
    drop_prob: float | None = None
    criterion: str = "cosine"
    prune_epoch: int | None = None
    finetune_drop_prob: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("drop_prob", "finetune_drop_prob"):
            if getattr(self, name) is not None:
                check_range("layer", name, getattr(self, name), 0.0, 1.0)
        check_choice("layer", "criterion", self.criterion, CRITERIA)


@dataclass
class LayerFragment(Fragment):
    """The indices of ``model.layers`` kept."""

    kept: list[int]

    @classmethod
    def from_legacy(cls, value: Any) -> LayerFragment:
        return cls(value)

    def apply(self, model: nn.Module) -> None:
        check_count("layers", max(self.kept, default=-1) + 1, len(model.layers), at_most=True)
        model.layers = nn.ModuleList(model.layers[i] for i in self.kept)


class SkippableLayer(nn.Module):
    """Wraps a backbone layer ``layer(x, ctx) -> x``: LayerDrop in training, a fixed skip when masked,
    and the input/output similarity of the batches it runs on.

    Args:
        layer: the wrapped layer.
        drop_prob: probability of skipping it on a training batch.
        track_cka: also accumulate linear CKA (costs more than the cosine).
        generator: where the skips are drawn from; one seeded generator shared by all layers makes
            every data-parallel rank skip the same layers on the same step (default: torch's global one).
    """

    def __init__(self, layer: nn.Module, drop_prob: float, track_cka: bool = False,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.layer, self.drop_prob, self.track_cka = layer, float(drop_prob), track_cka
        self.generator = generator
        self.skip = False            # set by LayerSparsifier.mask: the layer is pruned
        self.measure_in_eval = False  # set by LayerSparsifier: measure_redundancy, or a layer never run
        device = next(layer.parameters(), torch.zeros(())).device
        for name in ("cosine_sum", "cka_sum", "batches"):
            self.register_buffer(name, torch.zeros((), device=device), persistent=False)

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob}, skip={self.skip}"

    def forward(self, x: Tensor, ctx: Any) -> Tensor:
        if self.skip or (self.training and self.drop_prob > 0
                         and float(torch.rand((), generator=self.generator)) < self.drop_prob):
            return x
        out = self.layer(x, ctx)
        if self.training or self.measure_in_eval:
            self._measure(x, out, ctx)
        return out

    @torch.no_grad()
    def _measure(self, x: Tensor, out: Tensor, ctx: Any) -> None:
        weight = ctx.token_weights(x)
        x, out = x.detach().float().flatten(0, -2), out.detach().float().flatten(0, -2)
        self.cosine_sum += (torch.cosine_similarity(x, out, dim=-1) * weight).sum() / weight.sum().clamp(min=1)
        if self.track_cka:
            self.cka_sum += linear_cka(x, out, weight)
        self.batches += 1

    def reset_measurements(self) -> None:
        for buffer in (self.cosine_sum, self.cka_sum, self.batches):
            buffer.zero_()


def linear_cka(x: Tensor, y: Tensor, weight: Tensor) -> Tensor:
    """Linear CKA of two ``[n, C]`` token matrices over the rows with weight 1 (Kornblith et al. 2019)."""
    count = weight.sum().clamp(min=1)
    w = weight.unsqueeze(1)
    x = (x - (x * w).sum(0) / count) * w
    y = (y - (y * w).sum(0) / count) * w
    cross = (y.T @ x).square().sum()
    norm = torch.linalg.matrix_norm(x.T @ x) * torch.linalg.matrix_norm(y.T @ y)
    return cross / norm.clamp(min=torch.finfo(norm.dtype).tiny)


def unwrap_layer(module: nn.Module) -> nn.Module:
    """The backbone layer inside a :class:`SkippableLayer`, or the module itself."""
    return module.layer if isinstance(module, SkippableLayer) else module


def layers_to_remove(ratio: float, num_layers: int) -> int:
    return round(ratio * num_layers)


class LayerSparsifier(Sparsifier):
    """LayerDrop during training; removes the ``round(ratio * L)`` most redundant layers at compaction.

    Args:
        ratio: fraction of ``model.layers`` REMOVED, ``0 <= ratio < 1``.
        drop_prob: LayerDrop probability per layer and training batch (default: ``ratio``).
        criterion: ``"cosine"`` (input/output cosine similarity) or ``"cka"`` (linear CKA).
        prune_epoch: after this epoch the most redundant layers are chosen and skipped for the rest
            of training (default: a quarter of the epochs given to ``schedule``), so the remaining
            epochs adapt to their absence and model selection sees the pruned model.
        finetune_drop_prob: LayerDrop probability of the kept layers once the others are removed
            (default 0: LayerDrop is there to make removal safe; after it, it only regularises a
            model that is already smaller, and the fine-tuning under-fitted with it).
        seed: seeds the LayerDrop draws (one generator for all layers, saved in checkpoints), so
            every data-parallel rank drops the same layers, whatever the number of ranks.

    ``compact(model)`` returns a copy without the chosen layers (the others unwrapped), and its plan.
    """

    dimension = "layer"

    def __init__(self, ratio: float, drop_prob: float | None = None, criterion: str = "cosine",
                 prune_epoch: int | None = None, finetune_drop_prob: float = 0.0, seed: int = 0) -> None:
        super().__init__(LayerOptions(ratio, drop_prob, criterion, prune_epoch, finetune_drop_prob, seed))
        self.generator = torch.Generator().manual_seed(int(seed))
        self.prune_epoch = prune_epoch
        self.drop_prob = self.ratio if drop_prob is None else float(drop_prob)
        self.finetune_drop_prob = float(finetune_drop_prob)
        self.criterion = criterion
        self.scores: dict[str, list[float | None]] = {}
        self.removed: list[int] | None = None
        self.eval_scored: list[int] = []  # layers LayerDrop never ran, scored in evaluation instead

    # ---- life cycle ------------------------------------------------------------------------------
    def prepare(self, model: nn.Module) -> nn.Module:
        layers = self._layers(check_contract(model, self.dimension))
        if any(isinstance(layer, SkippableLayer) for layer in layers):
            raise GtspError("this model's layers are already wrapped for layer pruning: prepare it only once")
        fixed = sorted({type(layer).__name__ for layer in layers if not has(layer, SKIPPABLE)})
        if fixed:
            raise GtspError(f"layer pruning skips whole layers, but {', '.join(fixed)} does not declare the "
                            "'skippable' capability (its output may not be shaped like its input)")
        count = len(layers)
        if layers_to_remove(self.ratio, count) >= count:
            raise GtspError(f"--prune layer={self.ratio} removes round({self.ratio} x {count}) = "
                            f"{layers_to_remove(self.ratio, count)} of the {count} layers, i.e. all of them: "
                            f"lower the ratio below {(count - 0.5) / count:.3f} or use more layers")
        for i, layer in enumerate(layers):
            layers[i] = SkippableLayer(layer, self.drop_prob, track_cka=self.criterion == "cka",
                                       generator=self.generator)
        if not self.scores:
            self.scores = {"cosine": [None] * count, "cka": [None] * count}
        self.model = model
        return model

    def schedule(self, epochs: int, steps_per_epoch: int) -> None:
        super().schedule(epochs, steps_per_epoch)
        if self.prune_epoch is None:
            self.prune_epoch = max(1, epochs // 4)

    def on_epoch_end(self, epoch: int) -> None:
        self._collect(self.model)
        if self.prune_epoch is None or epoch < self.prune_epoch or self.removed is not None:
            return
        unscored = [i for i, score in enumerate(self.scores[self.criterion]) if score is None]
        if unscored:  # LayerDrop skipped them in every batch so far (few batches per epoch)
            log.info("layer pruning: layers %s have not run in training yet; they are scored in the next "
                     "evaluation, which runs every layer, and the layers are chosen after it", unscored)
            self.eval_scored = unscored
            self._score_in_eval()
            return
        self.eval_scored = []
        self._score_in_eval()
        self.mask(self.model)

    def _score_in_eval(self) -> None:
        for i, wrapper in enumerate(self._wrappers(self.model)):
            wrapper.measure_in_eval = i in self.eval_scored

    def selectable(self, epoch: int) -> bool:
        # Only a model evaluated with the chosen layers skipped is the model compaction yields.
        return self.prune_epoch is None or self.removed is not None

    def state_dict(self) -> dict[str, Any]:
        return {"drop_prob": self.drop_prob, "finetune_drop_prob": self.finetune_drop_prob,
                "criterion": self.criterion, "scores": {k: list(v) for k, v in self.scores.items()},
                "removed": self.removed, "generator": self.generator.get_state(), "eval_scored": self.eval_scored}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.scores = {k: list(v) for k, v in state["scores"].items()}
        self.removed = None if state.get("removed") is None else list(state["removed"])
        if "generator" in state:  # checkpoints of earlier versions drew LayerDrop from torch's global generator
            self.generator.set_state(state["generator"].cpu())
        self.eval_scored = list(state.get("eval_scored", []))
        if self.model is not None:
            self._score_in_eval()
        if self.removed is not None and self.model is not None:
            self.mask(self.model)  # skip flags are plain attributes, not in the model's state dict

    def plan(self, model: nn.Module) -> CompactionPlan:
        count = len(self._layers(model))
        removed = set(self.choose(count))
        return CompactionPlan({self.dimension: LayerFragment([i for i in range(count) if i not in removed])})

    def strip(self, model: nn.Module) -> None:
        """Unwrap every layer (the plan removes the chosen ones)."""
        model.layers = nn.ModuleList(unwrap_layer(layer) for layer in self._layers(model))

    def summary(self) -> dict[str, Any]:
        count = len(self.scores.get("cosine", []))
        removed = self.removed if self.removed is not None else []
        return {"ratio": self.ratio, "drop_prob": self.drop_prob, "finetune_drop_prob": self.finetune_drop_prob,
                "prune_epoch": self.prune_epoch, "criterion": self.criterion,
                "layers": count, "kept_layers": count - len(removed), "removed": removed,
                "redundancy": self.layer_redundancy()}

    # ---- redundancy ------------------------------------------------------------------------------
    def layer_redundancy(self) -> dict[str, list[float | None]]:
        """Per layer (in the original order): input/output cosine similarity and linear CKA of the last
        epoch that measured them (None where never measured, CKA only with ``criterion="cka"``)."""
        return {k: list(v) for k, v in self.scores.items()}

    @torch.no_grad()
    def measure_redundancy(self, batches: Iterable, device: torch.device | str | None = None) -> dict:
        """Score the layers on ``batches`` in eval mode (no LayerDrop, both criteria), replacing the
        training-time scores; for analysis, or to compact a model that was not trained here."""
        model = self.model
        wrappers = self._wrappers(model)
        was_training = model.training
        model.eval()
        for wrapper in wrappers:
            wrapper.reset_measurements()
            wrapper.measure_in_eval, wrapper.track_cka = True, True
        try:
            for batch in batches:
                model(batch.to(device) if device is not None else batch)
        finally:
            for wrapper in wrappers:
                wrapper.track_cka = self.criterion == "cka"
            self._score_in_eval()
            model.train(was_training)
        self._collect(model, cka=True)
        return self.layer_redundancy()

    def choose(self, num_layers: int | None = None) -> list[int]:
        """Indices (original order) of the layers to remove: the highest redundancy scores."""
        if self.removed is not None:
            return list(self.removed)
        scores = self.scores.get(self.criterion, [])
        if num_layers is not None and num_layers != len(scores):
            raise GtspError(f"layer pruning was prepared on {len(scores)} layers but the model has {num_layers}")
        if any(score is None for score in scores):
            raise GtspError("layer pruning has no redundancy score for every layer yet: train at least one "
                            "epoch, or call measure_redundancy(batches) before compacting")
        order = torch.argsort(-torch.tensor(scores, dtype=torch.float64), stable=True)
        self.removed = sorted(order[:layers_to_remove(self.ratio, len(scores))].tolist())
        return list(self.removed)

    def mask(self, model: nn.Module) -> list[int]:
        """Skip the chosen layers in place (the masked model) and switch the kept ones to
        ``finetune_drop_prob``; returns the removed indices."""
        removed = set(self.choose(len(self._layers(model))))
        for i, wrapper in enumerate(self._wrappers(model)):
            wrapper.skip, wrapper.drop_prob = i in removed, self.finetune_drop_prob
        return sorted(removed)

    def unmask(self, model: nn.Module) -> None:
        """Run every layer again, the chosen ones included (the training-time choice is kept)."""
        for wrapper in self._wrappers(model):
            wrapper.skip = False

    def _collect(self, model: nn.Module | None, cka: bool | None = None) -> None:
        """Move the wrappers' per-batch sums into per-layer epoch means (layers that never ran keep theirs)."""
        if model is None:
            return
        cka = self.criterion == "cka" if cka is None else cka
        for i, wrapper in enumerate(self._wrappers(model)):
            for measured in (wrapper.cosine_sum, wrapper.cka_sum, wrapper.batches):
                sum_across_ranks(measured)
            batches = float(wrapper.batches)
            if batches:
                self.scores["cosine"][i] = float(wrapper.cosine_sum) / batches
                if cka:
                    self.scores["cka"][i] = float(wrapper.cka_sum) / batches
            wrapper.reset_measurements()

    @staticmethod
    def _layers(model: nn.Module) -> nn.ModuleList:
        layers = getattr(model, "layers", None)
        if not isinstance(layers, nn.ModuleList) or len(layers) == 0:
            raise GtspError("layer pruning needs a model with a non-empty `layers` list (every gtsp backbone has one)")
        return layers

    def _wrappers(self, model: nn.Module) -> list[SkippableLayer]:
        layers = list(self._layers(model))
        if not all(isinstance(layer, SkippableLayer) for layer in layers):
            raise GtspError("this model's layers are not prepared for layer pruning: call prepare() on it first")
        return layers


def _grid(model: nn.Module) -> list[float]:
    count = len(model.layers)
    return distinct_ratios(lambda r: layers_to_remove(r, count), lambda removed: removed < count)


def _priced(model: nn.Module, ratio: float) -> LayerFragment:
    """The first ``L - round(ratio * L)`` layers (which ones does not change the cost)."""
    return LayerFragment(list(range(len(model.layers) - layers_to_remove(ratio, len(model.layers)))))


DIMENSION = Dimension(name="layer", options=LayerOptions, sparsifier=LayerSparsifier, fragment=LayerFragment,
                      label="layers", colour="tab:green", grid=_grid, priced_fragment=_priced,
                      unused_parameters=True, removes_blocks=True, legacy_key="kept_layers")
