"""Pruning a model that is already trained: fine-tune it while each dimension's schedule runs.

The trained dense weights are the starting point; the run is an ordinary ``gtsp train`` run of
``finetune_epochs`` epochs, so every schedule (head gates, LayerDrop and the layer choice,
the token rule, gradual weight and neuron masks) is laid out over those epochs as it would be
over a full run, then the model is compacted, evaluated and written as a model file.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from gtsp.api.model_files import SavedModel, load_model
from gtsp.api.result import Result
from gtsp.api.training import check_features, in_folder, make_config, run_config
from gtsp.config import RunConfig
from gtsp.data.registry import GraphDataset
from gtsp.errors import GtspError

# settings of the trained model's run that fine-tuning keeps unless told otherwise
INHERITED = ("seed", "folds", "fold", "batch_size", "lr", "weight_decay", "grad_clip", "bucket_pool")


def prune(model: str | os.PathLike | SavedModel | Result, *, prune: Mapping[str, float] | None = None,
          finetune_epochs: int = 10, dataset: str | GraphDataset | None = None,
          budget: Mapping[str, Any] | None = None, prune_args: Mapping[str, Any] | None = None,
          out: str | os.PathLike | None = None, progress: bool = False, **options: Any) -> Result:
    """Prune a trained dense model by fine-tuning it for ``finetune_epochs`` epochs.

    Args:
        model: a dense model file (``gtsp export``, a run's ``model.safetensors``,
            :func:`gtsp.save_model`), a loaded :class:`gtsp.SavedModel` (e.g. from :func:`gtsp.from_pyg`)
            or the :class:`gtsp.Result` of a dense :func:`gtsp.fit`.
        prune: fraction removed per dimension, e.g. ``{"head": 0.5, "layer": 0.25}``.
        finetune_epochs: epochs of fine-tuning; every schedule is compressed into them.
        dataset: a dataset name or a :class:`GraphDataset` (default: the one the model was trained on,
            with the trained run's split).
        budget: let gtsp choose the ratios instead, e.g. ``{"flops": 0.5}``.
        prune_args: per-dimension options, as for :func:`gtsp.fit`.
        out: run folder (None: a temporary one).
        progress: show a progress bar, each epoch's record and the results table (else print nothing).
        options: other settings by RunConfig name; ``seed``, ``folds``, ``fold``, ``batch_size``, ``lr``,
            ``weight_decay``, ``grad_clip`` and ``bucket_pool`` default to the trained run's, and
            ``warmup_epochs`` to 0 (the weights are trained already).

    Example:
        >>> import gtsp, tempfile, os
        >>> dense = gtsp.fit("MUTAG", epochs=2, model_args={"hidden": 16, "layers": 2, "heads": 2})
        >>> path = gtsp.save_model(dense, os.path.join(tempfile.mkdtemp(), "dense.safetensors"))
        >>> pruned = gtsp.prune(path, prune={"head": 0.5}, finetune_epochs=2)
        >>> pruned.plan is not None, pruned.results["start_weights"]["backbone"]
        (True, 'gps')
    """
    if isinstance(model, Result):
        model = SavedModel(model.deployed, model.spec)
    saved = model if isinstance(model, SavedModel) else load_model(model)
    if saved.spec.get("plan") is not None:
        raise GtspError("this model file holds a compacted (already pruned) model: prune the dense model it came "
                        "from (a dense run's model.safetensors, or gtsp export of a dense run)")
    name = dataset.info.name if isinstance(dataset, GraphDataset) else dataset
    cfg = prune_config(saved.spec, name, finetune_epochs,
                       dict(prune or {}), dict(prune_args or {}), dict(budget or {}), options)
    if isinstance(dataset, GraphDataset):
        check_features(dataset, cfg.model, cfg.model_args)
    data = dataset if isinstance(dataset, GraphDataset) else _load(cfg)
    _check_fits(saved.spec, data)
    weights = {k: v.detach().cpu().clone() for k, v in saved.model.state_dict().items()}
    start = {"backbone": saved.spec["backbone"], "dataset": saved.spec["dataset"],
             "source": str(model) if not isinstance(model, SavedModel) else "in memory"}
    try:
        return in_folder(cfg, out, lambda c: run_config(c, progress=progress, data=data, weights=weights,
                                                        start=start), quiet=not progress)
    except GtspError as err:  # the run's advice names its own flag; here the epochs are the fine-tuning ones
        raise GtspError(str(err).replace("raise --epochs", "raise finetune_epochs (--finetune-epochs)")) from None


def prune_config(spec: dict[str, Any], dataset: str | None, finetune_epochs: int, prune: dict[str, float],
                 prune_args: dict[str, Any], budget: dict[str, Any], options: dict[str, Any]) -> RunConfig:
    """The fine-tuning run's config: the trained model's backbone and hyper-parameters, its run's
    settings (``INHERITED``) unless ``options`` override them, ``finetune_epochs`` epochs."""
    if not prune and not budget:
        raise GtspError("nothing to prune: give ratios, e.g. prune={'head': 0.5} (--prune head=0.5), or a budget")
    trained = spec.get("config") or {}
    settings = {k: trained[k] for k in INHERITED if k in trained}
    settings["warmup_epochs"] = 0
    settings.update(options)
    return make_config(model=spec["backbone"], model_args=dict(spec["hparams"]), dataset=dataset or spec["dataset"],
                       epochs=finetune_epochs, prune=prune, prune_args=prune_args, budget=budget, **settings)


def _load(cfg: RunConfig) -> GraphDataset:
    from gtsp.train.run import prepare_data

    cfg.validate()
    return prepare_data(cfg)


def _check_fits(spec: dict[str, Any], data: GraphDataset) -> None:
    from gtsp.inference import check_dataset_fits

    check_dataset_fits(spec, data.info, data.info.name)
