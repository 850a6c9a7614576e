"""``results.json``: the stable record of a run, and the table printed at its end.

Keys (a contract that scripts parse; more may be added, none removed):
``dataset, model, seed, epochs, config, metric{name, higher_is_better, val, test},
params{dense, nonzero}, flops_per_graph{dense, flop_counter}, throughput_graphs_per_s,
train_seconds``. A pruned run adds ``flops_per_graph{executed, nominal}``: what the compacted model
computes with dense kernels, and the paper's count with masked weights at their density (kept
under their earlier names ``structural`` and ``pruned`` too).
"""
from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

import torch

from gtsp.accounting.flops import analytic_flops_per_graph, flop_counter_per_graph
from gtsp.accounting.latency import measure_throughput
from gtsp.accounting.params import count_params
from gtsp.train.run_folder import atomic_write_text

FLOP_SAMPLE = 1000  # graphs of the test split counted one by one (evenly spaced when larger)


def machine() -> dict[str, Any]:
    """Where the numbers were measured."""
    info = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "torch": torch.__version__, "threads": torch.get_num_threads()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def accounting(model: torch.nn.Module, test_graphs: list, test_batches: list, device) -> dict[str, Any]:
    """Parameters, FLOPs per graph (analytic and FlopCounterMode) and measured throughput."""
    flops = analytic_flops_per_graph(model, test_graphs, FLOP_SAMPLE, device)
    flops["flop_counter"] = flop_counter_per_graph(model, test_graphs, FLOP_SAMPLE, device)
    speed = measure_throughput(model, test_batches, device=device)
    return {"params": count_params(model), "flops_per_graph": flops,
            "throughput_graphs_per_s": speed["graphs_per_s"], "latency": speed}


def write_results(path: Path, results: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(results, indent=2, default=float) + "\n")


def results_table(results: dict[str, Any]) -> str:
    """A small human-readable summary of ``results``."""
    metric = results["metric"]
    rows = [
        ("dataset", results["dataset"]), ("model", results["model"]), ("seed", results["seed"]),
        ("epochs (best)", f"{results['epochs']} ({results['best_epoch']})"),
        (f"val {metric['name']}", f"{metric['val']:.4f}"), (f"test {metric['name']}", f"{metric['test']:.4f}"),
        ("parameters", f"{results['params']['dense']:,}"),
        ("FLOPs/graph (analytic)", f"{results['flops_per_graph']['dense'] / 1e6:.2f} M"),
        ("FLOPs/graph (FlopCounterMode" + (", compacted)" if "speedup" in results else ")"),
         f"{results['flops_per_graph']['flop_counter'] / 1e6:.2f} M"),
        ("inference", f"{results['throughput_graphs_per_s']:,.0f} graphs/s"),
        ("train time", f"{results['train_seconds']:.1f} s ({results['epoch_seconds_mean']:.2f} s/epoch)"),
    ]
    if "speedup" in results:
        sparsity = ", ".join(f"{k}={v:g}" for k, v in results["sparsity"].items() if v)
        flops = results["flops_per_graph"]
        rows += [("sparsity (removed)", sparsity),
                 (f"test {metric['name']} (compacted)", f"{metric['test_compacted']:.4f}"),
                 ("parameters compacted", f"{results['params']['compacted']:,} "
                                          f"({results['params']['compacted_nonzero']:,} nonzero)"),
                 ("FLOPs/graph executed", f"{flops['executed'] / 1e6:.2f} M (nominal {flops['nominal'] / 1e6:.2f} M)"),
                 ("measured speed-up", f"{results['speedup']['measured']:.2f}x vs dense"),
                 ("max |masked - compacted|", f"{results['compaction_max_abs_diff']:.2e}")]
    budget = results.get("budget")
    if budget and "measured_cost" in budget:
        verdict = "within it" if budget["within_budget"] else "MISSED"
        rows.append((f"budget {budget['kind']}", f"{budget['measured_cost']:.3f} of dense measured, "
                                                  f"{budget['target']:g} asked: {verdict}"))
    width = max(len(k) for k, _ in rows)
    line = "-" * (width + 24)
    return "\n".join([line] + [f"{k:<{width}}  {v}" for k, v in rows] + [line])


def missed_budget(results: dict[str, Any]) -> str | None:
    """The closing warning of a budget run whose compacted model measured above the budget (else None)."""
    budget = results.get("budget")
    if not budget or budget.get("within_budget", True):
        return None
    kind, target, got = budget["kind"], budget["target"], budget["measured_cost"]
    why = ("inference time varies between measurements and machines" if kind == "latency"
           else "FLOPs were priced on validation graphs and are counted on test graphs")
    lower = max(round(target - (got - target) - 0.05, 2), 0.01)
    return (f"budget missed: asked {kind}={target:g} of dense, the compacted model measured {got:.3f} "
            f"(predicted {budget['predicted_cost']:.3f}; {why}); the model is kept (within_budget: false in "
            f"results.json): to stay under it, rerun with a lower budget, e.g. --budget {kind}={lower:g}"
            + (", or a FLOPs budget, which does not vary" if kind == "latency" else ""))
