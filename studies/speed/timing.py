"""Interleaved timing: each contender runs in turn, round after round, and the median is kept.

On a shared machine a single timing says more about the neighbours than about the code, so
every ratio in this study is taken between contenders timed in the same process, alternating,
after a warm-up round, as the median over rounds.
"""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable

import torch
from torch import Tensor, nn

from gtsp.accounting.latency import measure_throughput
from gtsp.data.info import DatasetInfo
from gtsp.train.metrics import task_loss


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def interleaved(contenders: dict[str, Callable[[], float]], rounds: int, warmup: int = 1) -> dict[str, float]:
    """Median seconds per contender: ``warmup`` untimed rounds, then ``rounds`` timed ones; the
    order within a round alternates so that no contender always follows the same one."""
    names = list(contenders)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for r in range(warmup + rounds):
        order = names if r % 2 == 0 else names[::-1]
        for name in order:
            seconds = contenders[name]()
            if r >= warmup:
                samples[name].append(seconds)
    return {name: statistics.median(values) for name, values in samples.items()}


def inference_pass(model: nn.Module, batches: list, device: torch.device) -> Callable[[], float]:
    """Seconds of one eval pass over pre-collated ``batches`` (gtsp's ``measure_throughput``, one pass)."""
    return lambda: measure_throughput(model, batches, repeats=1, warmup=0, device=device)["seconds_per_pass"]


def loader_pass(model: nn.Module, loader: Iterable, device: torch.device) -> Callable[[], float]:
    """Seconds of one eval pass that collates its batches as it goes (a PyG ``DataLoader``)."""

    @torch.no_grad()
    def run() -> float:
        model.eval()
        synchronize(device)
        start = time.perf_counter()
        for batch in loader:
            model(batch.to(device))
        synchronize(device)
        return time.perf_counter() - start
    return run


def training_pass(model: nn.Module, batches: list, info: DatasetInfo, device: torch.device,
                  lr: float, weight_decay: float, grad_clip: float) -> Callable[[], float]:
    """Seconds of one pass of training steps (forward, task loss, backward, clipping, AdamW step)
    over ``batches``; the optimiser persists across passes, as it does across epochs."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)

    def step(batch) -> Tensor:
        loss = task_loss(info, model(batch), batch.y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        return loss

    def run() -> float:
        model.train()
        synchronize(device)
        start = time.perf_counter()
        for batch in batches:
            step(batch)
        synchronize(device)
        return time.perf_counter() - start
    return run
