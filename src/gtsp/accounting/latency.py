"""Measured inference speed: graphs per second over pre-collated batches.

One warm-up pass, then ``repeats`` timed passes; the median pass time is
reported, because this machine is shared and single passes are noisy.
"""
from __future__ import annotations

import statistics
import time

import torch
from torch import nn
from torch_geometric.data import Batch


@torch.no_grad()
def measure_throughput(model: nn.Module, batches: list[Batch], repeats: int = 5, warmup: int = 1,
                       device: torch.device | str = "cpu") -> dict[str, float]:
    """``{"graphs_per_s", "seconds_per_pass", "passes"}`` of ``model`` in eval mode over ``batches``."""
    model.eval()
    batches = [b.to(device) for b in batches]
    graphs = sum(b.num_graphs for b in batches)
    times = []
    for i in range(warmup + repeats):
        _sync(device)
        start = time.perf_counter()
        for batch in batches:
            model(batch)
        _sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    return {"graphs_per_s": graphs / seconds, "seconds_per_pass": seconds, "passes": repeats}


def _sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()
