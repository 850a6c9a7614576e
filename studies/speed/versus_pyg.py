"""gtsp's GraphGPS against the same model built from PyG's ``GPSConv`` (``pyg_reference.py``).

Both models have the shipped config's hyper-parameters and the same initial weights
(``reference_from_gtsp`` copies them), train with the same AdamW, gradient clipping and task
loss on the same plain shuffled batches (what ``gtsp train`` uses by default, collated once
for both), and are timed in the same process, interleaved (``timing.interleaved``).

- training: seconds for ``train_steps`` training steps, scaled to seconds per epoch;
- inference (test split, eval mode, ``no_grad``), graphs/s four ways: the reference with a
  PyG ``DataLoader`` that collates on every pass (the usual PyG loop), both models on the same
  pre-collated batches in loader order (layer code alone), and gtsp on its size-sorted
  pre-collated evaluation batches (what ``gtsp train`` and ``gtsp evaluate`` time).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch_geometric.data import Batch
from torch_geometric.loader import DataLoader

from gtsp.config import RunConfig, load_yaml, merge
from gtsp.data.batching import eval_batches, train_loader
from gtsp.data.registry import GraphDataset, load_dataset
from gtsp.models import MODELS, build_model
from pyg_reference import reference_from_gtsp
from timing import inference_pass, interleaved, loader_pass, training_pass


def shipped_config(path: Path) -> RunConfig:
    """The run configuration of a shipped YAML file (defaults, then the file)."""
    return merge(RunConfig(), load_yaml(path))


def load_for(cfg: RunConfig, data_root: str | None, cache_root: str | None) -> GraphDataset:
    """``cfg.dataset`` with the encodings ``cfg.model`` needs."""
    features = MODELS[cfg.model].required_features(cfg.model_args)
    return load_dataset(cfg.dataset, data_root=data_root, cache_root=cache_root, features=features, seed=cfg.seed)


def training_batches(cfg: RunConfig, data: GraphDataset, steps: int, device: torch.device) -> list[Batch]:
    """The first ``steps`` plain shuffled training batches of epoch 1, collated once, on ``device``."""
    loader = train_loader(data.train, cfg.batch_size, seed=cfg.seed)
    loader.batch_sampler.set_epoch(1)
    batches = []
    for batch in loader:
        if len(batches) == steps:
            break
        batches.append(batch.to(device))
    return batches


def compare_training(model, reference, cfg: RunConfig, data: GraphDataset, device: torch.device,
                     steps: int, rounds: int) -> dict[str, Any]:
    """Seconds per training epoch of both models (``steps`` steps timed, scaled to a full epoch)."""
    batches = training_batches(cfg, data, steps, device)
    per_epoch = math.ceil(len(data.train) / cfg.batch_size)
    options = {"lr": cfg.lr, "weight_decay": cfg.weight_decay, "grad_clip": cfg.grad_clip}
    seconds = interleaved({"gtsp": training_pass(model, batches, data.info, device, **options),
                           "pyg_gpsconv": training_pass(reference, batches, data.info, device, **options)},
                          rounds=rounds)
    scale = per_epoch / len(batches)
    return {"steps_timed": len(batches), "steps_per_epoch": per_epoch,
            "gtsp_s_per_epoch": seconds["gtsp"] * scale, "pyg_gpsconv_s_per_epoch": seconds["pyg_gpsconv"] * scale,
            "speedup": seconds["pyg_gpsconv"] / seconds["gtsp"]}


def compare_inference(model, reference, cfg: RunConfig, data: GraphDataset, device: torch.device,
                      rounds: int) -> dict[str, Any]:
    """Graphs/s over the test split, four ways (see the module docstring), and their ratios."""
    graphs = len(data.test)
    loader = DataLoader(data.test, batch_size=cfg.batch_size, shuffle=False)
    in_loader_order = [batch.to(device) for batch in loader]
    size_sorted = [batch.to(device) for batch in eval_batches(data.test, cfg.batch_size)[0]]
    seconds = interleaved({
        "pyg_gpsconv_dataloader": loader_pass(reference, loader, device),
        "pyg_gpsconv_precollated": inference_pass(reference, in_loader_order, device),
        "gtsp_precollated": inference_pass(model, in_loader_order, device),
        "gtsp_size_sorted": inference_pass(model, size_sorted, device),
    }, rounds=rounds)
    rates = {f"{name}_graphs_per_s": graphs / s for name, s in seconds.items()}
    return {"graphs": graphs, **rates,
            "speedup": seconds["pyg_gpsconv_dataloader"] / seconds["gtsp_size_sorted"],
            "speedup_same_batches": seconds["pyg_gpsconv_precollated"] / seconds["gtsp_precollated"]}


@torch.no_grad()
def max_output_difference(model, reference, data: GraphDataset, device: torch.device) -> float:
    """Largest |gtsp - reference| logit on the first test batch in eval mode: the two are one function."""
    batch = Batch.from_data_list(data.test[:128]).to(device)
    model.eval(), reference.eval()
    return float((model(batch) - reference(batch)).abs().max())


def versus_gpsconv(config: Path, device: torch.device, data_root: str | None, cache_root: str | None,
                   train_steps: int, rounds: int) -> dict[str, Any]:
    """Training and inference of gtsp's GPS and the ``GPSConv`` reference on ``config``'s dataset."""
    cfg = shipped_config(config)
    data = load_for(cfg, data_root, cache_root)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model, data.info, **cfg.model_args).to(device)
    reference = reference_from_gtsp(model, data.info).to(device)
    difference = max_output_difference(model, reference, data, device)
    print(f"  {cfg.dataset}: same function, max |logit difference| {difference:.1e}", flush=True)
    training = compare_training(model, reference, cfg, data, device, train_steps, rounds)
    print(f"  {cfg.dataset} training s/epoch: gtsp {training['gtsp_s_per_epoch']:.2f}, "
          f"GPSConv {training['pyg_gpsconv_s_per_epoch']:.2f} ({training['speedup']:.2f}x)", flush=True)
    inference = compare_inference(model, reference, cfg, data, device, rounds)
    print(f"  {cfg.dataset} inference graphs/s: gtsp {inference['gtsp_size_sorted_graphs_per_s']:.0f}, "
          f"GPSConv {inference['pyg_gpsconv_dataloader_graphs_per_s']:.0f} ({inference['speedup']:.2f}x)",
          flush=True)
    return {"dataset": cfg.dataset, "config": str(config.name), "batch_size": cfg.batch_size,
            "model_args": dict(cfg.model_args), "max_abs_logit_difference": difference,
            "params": sum(p.numel() for p in model.parameters()), "training": training, "inference": inference}
