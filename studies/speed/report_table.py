"""The Markdown tables of one speed run (``results-MACHINE.md``), written from its JSON record."""
from __future__ import annotations

from typing import Any


def _header(*columns: str) -> list[str]:
    return ["| " + " | ".join(columns) + " |", "|" + "|".join("---" if i == 0 else "---:" for i in range(len(columns))) + "|"]


def versus_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["## gtsp GraphGPS vs PyG GPSConv (same hyper-parameters and weights)", ""]
    lines += _header("dataset", "training s/epoch gtsp", "GPSConv", "speed-up",
                     "inference graphs/s gtsp", "GPSConv (DataLoader)", "speed-up",
                     "same pre-collated batches: gtsp / GPSConv", "max logit diff")
    for r in rows:
        t, i = r["training"], r["inference"]
        lines.append(f"| {r['dataset']} | {t['gtsp_s_per_epoch']:.2f} | {t['pyg_gpsconv_s_per_epoch']:.2f} | "
                     f"**{t['speedup']:.2f}x** | {i['gtsp_size_sorted_graphs_per_s']:.0f} | "
                     f"{i['pyg_gpsconv_dataloader_graphs_per_s']:.0f} | **{i['speedup']:.2f}x** | "
                     f"{i['gtsp_precollated_graphs_per_s']:.0f} / {i['pyg_gpsconv_precollated_graphs_per_s']:.0f} "
                     f"({i['speedup_same_batches']:.2f}x) | {r['max_abs_logit_difference']:.1e} |")
    steps = ", ".join(f"{r['dataset']} {r['training']['steps_timed']} of {r['training']['steps_per_epoch']}"
                      for r in rows)
    return lines + ["", f"Training steps timed per round (scaled to an epoch): {steps}.", ""]


def dimension_table(block: dict[str, Any]) -> list[str]:
    dense = block["dense_flops"]
    lines = [f"## Compacted speed-up vs FLOPs ratio ({block['model']}, {block['dataset']}, ratio {block['ratio']:g})",
             "", f"Dense: {block['dense_params']:,} parameters, {dense['analytic'] / 1e6:.2f} MFLOPs/graph "
             f"(FlopCounterMode {dense['flop_counter'] / 1e6:.2f}). Graphs/s are each row's own dense and "
             "smaller model, timed in alternation (test split, batches of 128).", ""]
    lines += _header("setting", "params", "MFLOPs/graph", "FLOPs ratio", "FlopCounterMode ratio",
                     "measured speed-up", "graphs/s dense -> smaller", "max abs diff masked vs compacted")
    for r in block["rows"]:
        diff = r.get("max_abs_diff_masked_vs_compacted")
        lines.append(f"| {r['setting']} | {r['params']:,} | {r['flops']['analytic'] / 1e6:.2f} | "
                     f"{r['flops_ratio']:.2f}x | {r['flop_counter_ratio']:.2f}x | **{r['speedup']:.2f}x** | "
                     f"{r['dense_graphs_per_s']:.0f} -> {r['graphs_per_s']:.0f} | {'-' if diff is None else f'{diff:.1e}'} |")
    return lines + [""]


def latency_table(block: dict[str, Any]) -> list[str]:
    lines = [f"## Latency per batch: dense vs compacted ({block['compacted']})", ""]
    lines += _header("batch size", "dense ms", "compacted ms", "speed-up", "dense graphs/s", "compacted graphs/s")
    for r in block["rows"]:
        b = r["batch_size"]
        lines.append(f"| {b} | {r['dense_ms']:.2f} | {r['compacted_ms']:.2f} | **{r['speedup']:.2f}x** | "
                     f"{1e3 * b / r['dense_ms']:.0f} | {1e3 * b / r['compacted_ms']:.0f} |")
    return lines + [""]


def markdown(results: dict[str, Any]) -> str:
    """All tables of one run, headed by the machine and the command."""
    m, p = results["machine"], results["provenance"]
    git = p.get("git") or {}
    head = [f"# Speed on {results['machine_name']}", "",
            f"Machine: {m['processor']}, {m['cpu_count']} CPUs, {m['torch_threads']} torch thread(s), "
            f"OMP_NUM_THREADS={m['omp_num_threads']}{', ' + m['gpu'] if 'gpu' in m else ''}; load average at "
            f"start {', '.join(f'{x:.2f}' for x in m['load_average_at_start'])}. torch {p['versions']['torch']}, "
            f"PyG {p['versions']['torch_geometric']}. gtsp {git.get('sha', 'outside a checkout')[:12]}"
            f"{' (modified)' if git.get('dirty') else ''}.", "",
            f"Command: `{' '.join(p['argv'])}` ({results['wall_seconds'] / 60:.1f} min). Every ratio is between "
            f"contenders timed in one process, interleaved, median of {results['settings']['rounds']} rounds.", ""]
    body = (versus_table(results["versus_gpsconv"]) + dimension_table(results["per_dimension"])
            + latency_table(results["latency"]))
    return "\n".join(head + body)
