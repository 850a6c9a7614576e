"""What compaction buys in time: per-dimension speed-up against the FLOPs ratio, and latency by batch size.

Masks come from a brief training (``BRIEF_EPOCHS`` short epochs of real training steps with the
sparsifier's hooks, as ``gtsp train`` calls them); speed does not depend on how good the masks
are, only on the shapes compaction leaves. For each dimension at ``ratio`` (and for the
attention-free baseline, which is built without attention rather than compacted):

- FLOPs per graph of dense and compacted, counted by ``gtsp.accounting.flops`` and checked
  with ``FlopCounterMode`` on the same test graphs;
- measured speed-up = dense / compacted time over the test split's evaluation batches
  (``gtsp.train.compaction.timed_ratio``: interleaved rounds, medians);
- that compacted computes what masked computed (max |difference| of the logits).

The latency table times the dense model and the model compacted in every structural
dimension at once at batch sizes 1, 8, 64 and 512 (random graphs of the whole dataset).
"""
from __future__ import annotations

import copy
import random
from typing import Any

import torch
from torch import nn
from torch_geometric.data import Batch

from gtsp.accounting.flops import analytic_flops_per_graph, flop_counter_per_graph
from gtsp.accounting.params import count_params
from gtsp.config import RunConfig
from gtsp.data.batching import eval_batches
from gtsp.data.registry import GraphDataset
from gtsp.models import build_model
from gtsp.sparsify import build_sparsifier
from gtsp.train.compaction import timed_ratio
from gtsp.train.metrics import task_loss
from timing import inference_pass, interleaved
from versus_pyg import training_batches

DIMENSIONS = ("token", "head", "layer", "neuron")
BRIEF_EPOCHS, BRIEF_STEPS = 4, 8  # layers are removed after epoch 4 // 4 = 1 (8 steps: each layer runs despite LayerDrop)
FLOP_GRAPHS = 64  # test graphs counted (spread over the size-sorted split)
BATCH_SIZES = (1, 8, 64, 512)


def briefly_trained(model: nn.Module, prune: dict[str, float], cfg: RunConfig, data: GraphDataset,
                    device: torch.device) -> tuple[nn.Module, nn.Module, Any]:
    """``(masked, compacted, sparsifier)`` after a few real training steps with the sparsifier's hooks."""
    sparsifier = build_sparsifier(prune, seed=cfg.seed)
    masked = sparsifier.prepare(copy.deepcopy(model)).to(device)
    sparsifier.schedule(BRIEF_EPOCHS, BRIEF_STEPS)
    optimizer = torch.optim.AdamW(masked.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    batches = training_batches(cfg, data, BRIEF_STEPS, device)
    step = 0
    for epoch in range(1, BRIEF_EPOCHS + 1):
        masked.train()
        for batch in batches:
            loss = task_loss(data.info, masked(batch), batch.y)
            extra = sparsifier.extra_loss()
            loss = loss if extra is None else loss + extra
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            sparsifier.on_step(step)
        sparsifier.on_epoch_end(epoch)
    compacted, _ = sparsifier.compact(masked)
    return masked.eval(), compacted.to(device).eval(), sparsifier


@torch.no_grad()
def max_difference(masked: nn.Module, compacted: nn.Module, batches: list[Batch]) -> float:
    return max(float((masked(b) - compacted(b)).abs().max()) for b in batches)


def flops(model: nn.Module, graphs: list, device: torch.device) -> dict[str, float]:
    """Analytic FLOPs per graph (dense shapes and density-weighted) and ``FlopCounterMode``'s count."""
    analytic = analytic_flops_per_graph(model, graphs, FLOP_GRAPHS, device)
    return {"analytic": analytic["dense"], "density_weighted": analytic["pruned"],
            "flop_counter": flop_counter_per_graph(model, graphs, FLOP_GRAPHS, device)}


def setting_row(name: str, dense: nn.Module, smaller: nn.Module, dense_flops: dict[str, float],
                data: GraphDataset, batches: list[Batch], device: torch.device) -> dict[str, Any]:
    """One row: params, FLOPs (and their ratio to dense) and measured speed-up of ``smaller``."""
    small_flops = flops(smaller, data.test, device)
    speed = timed_ratio(dense, smaller, batches, device)
    row = {"setting": name, "params": count_params(smaller)["dense"], "flops": small_flops,
           "flops_ratio": dense_flops["analytic"] / small_flops["analytic"],
           "flop_counter_ratio": dense_flops["flop_counter"] / small_flops["flop_counter"],
           "speedup": speed["measured"], "graphs_per_s": speed["compacted_graphs_per_s"],
           "dense_graphs_per_s": speed["dense_graphs_per_s"]}
    print(f"  {name:<16} FLOPs {row['flops_ratio']:.2f}x fewer (FlopCounterMode {row['flop_counter_ratio']:.2f}x), "
          f"measured {row['speedup']:.2f}x", flush=True)
    return row


def per_dimension(cfg: RunConfig, data: GraphDataset, device: torch.device,
                  ratio: float) -> tuple[dict[str, Any], nn.Module, nn.Module, str]:
    """Speed-up vs FLOPs ratio per dimension at ``ratio``, all jointly, and the attention-free baseline;
    also the dense model, the jointly compacted one and that setting's name (for the latency table)."""
    torch.manual_seed(cfg.seed)
    dense = build_model(cfg.model, data.info, **cfg.model_args).to(device).eval()
    batches = [b.to(device) for b in eval_batches(data.test, cfg.batch_size)[0]]
    dense_flops = flops(dense, data.test, device)
    rows, compacted_models = [], {}
    for prune in [{d: ratio} for d in DIMENSIONS] + [{d: ratio for d in DIMENSIONS}]:
        name = ",".join(f"{d}={r:g}" for d, r in prune.items())
        masked, compacted, _ = briefly_trained(dense, prune, cfg, data, device)
        row = setting_row(name, dense, compacted, dense_flops, data, batches, device)
        row["max_abs_diff_masked_vs_compacted"] = max_difference(masked, compacted, batches)
        rows.append(row)
        compacted_models[name] = compacted
    torch.manual_seed(cfg.seed)
    free = build_model(cfg.model, data.info, **{**cfg.model_args, "attention": False}).to(device).eval()
    rows.append(setting_row("attention-free", dense, free, dense_flops, data, batches, device))
    joint = rows[len(DIMENSIONS)]["setting"]
    return {"dataset": cfg.dataset, "model": cfg.model, "ratio": ratio, "dense_params": count_params(dense)["dense"],
            "dense_flops": dense_flops, "rows": rows}, dense, compacted_models[joint], joint


def latency_by_batch_size(dense: nn.Module, compacted: nn.Module, data: GraphDataset, device: torch.device,
                          rounds: int, seed: int = 0) -> list[dict[str, Any]]:
    """Milliseconds per batch of dense and compacted at each of ``BATCH_SIZES`` (random graphs of every split)."""
    graphs = list(data.train) + list(data.valid) + list(data.test)
    rng = random.Random(seed)
    table = []
    for size in BATCH_SIZES:
        count = max(2, min(32, 1024 // size))  # batches per pass: enough work to time, not too long
        batches = [Batch.from_data_list(rng.sample(graphs, size)).to(device) for _ in range(count)]
        seconds = interleaved({"dense": inference_pass(dense, batches, device),
                               "compacted": inference_pass(compacted, batches, device)}, rounds=rounds)
        row = {"batch_size": size, "batches": count,
               "dense_ms": 1e3 * seconds["dense"] / count, "compacted_ms": 1e3 * seconds["compacted"] / count,
               "speedup": seconds["dense"] / seconds["compacted"]}
        print(f"  batch {size:>3}: dense {row['dense_ms']:.2f} ms, compacted {row['compacted_ms']:.2f} ms "
              f"({row['speedup']:.2f}x)", flush=True)
        table.append(row)
    return table
