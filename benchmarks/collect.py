"""Collect ``results.json`` files of many runs into the committed benchmark tables.

Run folders are named ``TAG-sSEED``; runs sharing a TAG are seeds of one setting.

    python benchmarks/collect.py RUNS_DIR --out benchmarks/results/NAME

writes ``NAME.json`` (every run's key numbers) and ``NAME.md`` (one row per TAG:
metric per seed and mean ± std, parameters, FLOPs, throughput, epoch time, and for
pruned runs the compacted metric, reductions and measured speed-up).

With ``--logs`` the tables come from each run's ``metrics.jsonl`` instead, so runs cut
before writing ``results.json`` (e.g. by the end of a GPU lease) still count: per seed,
the test metric at the epoch the trainer had selected on validation, and how many epochs
had run.
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
from collections import defaultdict
from pathlib import Path


def key_numbers(results: dict) -> dict:
    flops, params = results["flops_per_graph"], results["params"]
    row = {"dataset": results["dataset"], "model": results["model"], "seed": results["seed"],
           "epochs": results["epochs"], "best_epoch": results.get("best_epoch"),
           "metric": results["metric"]["name"], "val": results["metric"]["val"], "test": results["metric"]["test"],
           "params": params["dense"], "flops_dense": flops["dense"], "flops_flop_counter": flops["flop_counter"],
           "graphs_per_s": results["throughput_graphs_per_s"], "epoch_seconds": results["epoch_seconds_mean"],
           "train_seconds": results["train_seconds"], "sparsity": results.get("sparsity", {}),
           "threads": results.get("machine", {}).get("threads")}
    if "speedup" in results:
        row.update({"test_compacted": results["metric"]["test_compacted"], "params_nonzero": params["nonzero"],
                    "params_compacted": params["compacted"], "params_compacted_nonzero": params["compacted_nonzero"],
                    "flops_pruned": flops["pruned"], "flops_structural": flops["structural"],
                    "flops_counter_dense": flops.get("flop_counter_dense"), "speedup": results["speedup"]["measured"],
                    "dense_graphs_per_s": results["speedup"]["dense_graphs_per_s"],
                    "max_abs_diff": results["compaction_max_abs_diff"]})
    return row


def load_runs(runs: Path) -> dict[str, list[dict]]:
    groups = defaultdict(list)
    for path in sorted(runs.glob("*/results.json")):
        match = re.fullmatch(r"(.+)-s(\d+)", path.parent.name)
        tag = match.group(1) if match else path.parent.name
        groups[tag].append(key_numbers(json.loads(path.read_text())))
    return groups


def log_numbers(metrics: Path) -> dict:
    """The trainer's selection so far, from its per-epoch JSON lines."""
    rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    best = rows[-1]["best_epoch"]
    chosen = next((r for r in rows if r["epoch"] == best), None)
    seed = re.fullmatch(r".+-s(\d+)", metrics.parent.name)
    return {"seed": int(seed.group(1)) if seed else 0, "epochs_run": len(rows), "best_epoch": best,
            "finished": (metrics.parent / "results.json").is_file(),
            "val": chosen["val"] if chosen else None, "test": chosen["test"] if chosen else None,
            "epoch_seconds": statistics.fmean(r["epoch_seconds"] for r in rows)}


def load_logs(runs: Path) -> dict[str, list[dict]]:
    groups = defaultdict(list)
    for path in sorted(runs.glob("*/metrics.jsonl")):
        match = re.fullmatch(r"(.+)-s(\d+)", path.parent.name)
        groups[match.group(1) if match else path.parent.name].append(log_numbers(path))
    return groups


def log_markdown(groups: dict[str, list[dict]]) -> str:
    lines = ["| setting | test per seed (selected epoch / epochs run) | mean ± std | mean val | s/epoch |",
             "|---|---|---|---|---|"]
    for tag, rows in sorted(groups.items()):
        rows = sorted((r for r in rows if r["test"] is not None), key=lambda r: r["seed"])
        if not rows:
            continue
        cells = ", ".join(f"{r['test']:.4f} ({r['best_epoch']}/{r['epochs_run']}{'' if r['finished'] else '*'})"
                          for r in rows)
        lines.append(f"| {tag} | {cells} | {_mean_std([r['test'] for r in rows])} | "
                     f"{statistics.fmean(r['val'] for r in rows):.4f} | "
                     f"{statistics.fmean(r['epoch_seconds'] for r in rows):.2f} |")
    return "\n".join(lines + ["", "`*`: cut before results.json was written; selection over the epochs run."]) + "\n"


def _mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.fmean(values):.4f} ± {statistics.stdev(values):.4f}"


def markdown(groups: dict[str, list[dict]]) -> str:
    lines = ["| setting | model | dataset | sparsity | test per seed | mean ± std | params | FLOPs/graph | graphs/s | s/epoch |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    pruned = ["", "| setting | test (trained) | test (compacted) | params dense → compacted (nonzero) | "
                  "FLOPs/graph dense → structural (pruned, density-weighted) | measured speed-up | max abs diff |",
              "|---|---|---|---|---|---|---|"]
    for tag, rows in sorted(groups.items()):
        rows.sort(key=lambda r: r["seed"])
        first = rows[0]
        sparsity = ", ".join(f"{k}={v:g}" for k, v in first["sparsity"].items() if v) or "dense"
        tests = [r["test"] for r in rows]
        lines.append(f"| {tag} | {first['model']} | {first['dataset']} | {sparsity} | "
                     f"{', '.join(f'{t:.4f}' for t in tests)} | {_mean_std(tests)} | {first['params']:,} | "
                     f"{first['flops_dense'] / 1e6:.2f} M | {statistics.fmean(r['graphs_per_s'] for r in rows):,.0f} | "
                     f"{statistics.fmean(r['epoch_seconds'] for r in rows):.2f} |")
        if "speedup" in first:
            pruned.append(
                f"| {tag} | {_mean_std(tests)} | {_mean_std([r['test_compacted'] for r in rows])} | "
                f"{first['params']:,} → {first['params_compacted']:,} ({first['params_compacted_nonzero']:,}) | "
                f"{first['flops_dense'] / 1e6:.2f} M → {first['flops_structural'] / 1e6:.2f} M "
                f"({first['flops_pruned'] / 1e6:.2f} M) | "
                f"{', '.join(format(r['speedup'], '.2f') + 'x' for r in rows)} | "
                f"{max(r['max_abs_diff'] for r in rows):.1e} |")
    return "\n".join(lines + (pruned if len(pruned) > 3 else [])) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", type=Path, help="folder holding TAG-sSEED run folders")
    parser.add_argument("--out", type=Path, required=True, help="output path without extension")
    parser.add_argument("--only", help="regular expression: keep tags that match")
    parser.add_argument("--logs", action="store_true", help="read metrics.jsonl (also of unfinished runs)")
    args = parser.parse_args()
    groups = load_logs(args.runs) if args.logs else load_runs(args.runs)
    if args.only:
        groups = {t: r for t, r in groups.items() if re.search(args.only, t)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(groups, indent=2) + "\n")
    table = log_markdown(groups) if args.logs else markdown(groups)
    args.out.with_suffix(".md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
