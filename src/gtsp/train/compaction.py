"""After a pruned run: compact the model and put dense, masked and compacted side by side.

- dense: the same architecture without pruning (the baseline for FLOPs and time);
- masked: the trained model with its masks, gates and selectors (what training saw);
- compacted: ``sparsifier.compact(masked)``, physically smaller, with its compaction plan.

It checks that compacted computes what masked computed (max |difference| of the
test-split outputs), counts FLOPs and parameters of each, and times dense and
compacted in this process, interleaved, so their ratio is fair on a noisy machine.
"""
from __future__ import annotations

import statistics
from typing import Any

from torch import nn

from gtsp.accounting.flops import analytic_flops_per_graph, flop_counter_per_graph
from gtsp.accounting.latency import measure_throughput
from gtsp.accounting.params import count_params
from gtsp.sparsify import CompositeSparsifier
from gtsp.sparsify.plan import CompactionPlan
from gtsp.train.metrics import predictions, score
from gtsp.train.results import FLOP_SAMPLE
from gtsp.train.trainer import predict

TIMING_ROUNDS = 3


def timed_ratio(dense: nn.Module, compacted: nn.Module, batches, device) -> dict[str, float]:
    """Throughput of both, measured in alternating rounds; speed-up = dense time / compacted time."""
    dense_s, compact_s = [], []
    for _ in range(TIMING_ROUNDS):
        dense_s.append(measure_throughput(dense, batches, repeats=3, device=device)["seconds_per_pass"])
        compact_s.append(measure_throughput(compacted, batches, repeats=3, device=device)["seconds_per_pass"])
    graphs = sum(b.num_graphs for b in batches)
    dense_t, compact_t = statistics.median(dense_s), statistics.median(compact_s)
    return {"measured": dense_t / compact_t, "dense_graphs_per_s": graphs / dense_t,
            "compacted_graphs_per_s": graphs / compact_t}


def compaction_report(dense: nn.Module, masked: nn.Module, sparsifier: CompositeSparsifier, data,
                      test_batches, device, measure: bool = True) -> tuple[nn.Module, CompactionPlan, dict[str, Any]]:
    """The compacted model, its plan, and the ``results.json`` entries that compare it with dense and masked.

    ``measure=False`` leaves out parameter and FLOP counts and timings (data-parallel ranks other
    than rank 0 compact, but do not measure).
    """
    compacted, plan = sparsifier.compact(masked)
    compacted = compacted.to(device).eval()
    masked_logits, labels = predict(masked, test_batches, device)
    compact_logits, _ = predict(compacted, test_batches, device)
    info = data.info
    report = {
        "test_compacted": score(info, labels, predictions(info, compact_logits), data.evaluator),
        "compaction_max_abs_diff": float((masked_logits - compact_logits).abs().max()),
        "sparsifier": sparsifier.summary(),
        "compaction_plan": plan.to_dict(),
    }
    if measure:
        report.update(_measurements(dense, masked, compacted, data, test_batches, device))
    return compacted, plan, report


def _measurements(dense: nn.Module, masked: nn.Module, compacted: nn.Module, data, test_batches,
                  device) -> dict[str, Any]:
    """Parameters, FLOPs per graph and measured speed of dense, masked and compacted."""
    dense = dense.to(device).eval()  # built fresh on the CPU: FLOP counting runs it on test batches
    dense_flops = analytic_flops_per_graph(dense, data.test, FLOP_SAMPLE, device)
    compact_flops = analytic_flops_per_graph(compacted, data.test, FLOP_SAMPLE, device)
    speed = timed_ratio(dense, compacted, test_batches[0], device)
    return {
        "params": {"dense": count_params(dense)["dense"], "nonzero": count_params(masked)["nonzero"],
                   "compacted": count_params(compacted)["dense"],
                   "compacted_nonzero": count_params(compacted)["nonzero"]},
        "flops_per_graph": {"dense": dense_flops["dense"], "executed": compact_flops["dense"],
                            "nominal": compact_flops["pruned"],
                            "pruned": compact_flops["pruned"], "structural": compact_flops["dense"],
                            "message_passing": compact_flops["message_passing"],
                            "flop_counter": flop_counter_per_graph(compacted, data.test, FLOP_SAMPLE, device),
                            "flop_counter_dense": flop_counter_per_graph(dense, data.test, FLOP_SAMPLE, device),
                            "graphs_counted": compact_flops["graphs_counted"]},
        "speedup": speed,
        "throughput_graphs_per_s": speed["compacted_graphs_per_s"],
    }
