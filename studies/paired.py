"""Recompute a study's paired comparisons from its committed ``results.json`` files.

Independent of gtsp's own report code (standard library, numpy and scipy only), so a reader can
check every number a study README quotes against the run files:

    python studies/paired.py studies/nci1-gps-pruning/runs            # markdown table
    python studies/paired.py studies/nci1-gps-pruning/runs --json     # the same as JSON

A paired unit is one pruned run and the dense run of the same dataset, backbone, seed and fold.
Per setting it prints n (paired units), the mean paired difference of the test metric in points
(x100) with its sample std and t-based 95 % confidence interval, the mean ratio of executed
(structural) FLOPs and of parameters to the dense partner's, and the mean in-process speed-up
(dense and compacted timed interleaved in the pruned run's own process). Runs without a dense
partner are listed apart and never averaged in.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
from scipy import stats


def setting_of(config: dict, budget_record: dict | None = None) -> str:
    """A readable name for what a run changed against dense.

    A FLOPs budget searched before budgets priced executed FLOPs (its record has no ``priced``)
    priced density-weighted FLOPs, today's ``flops_nominal``."""
    if config.get("budget"):
        budget = dict(config["budget"])
        if "flops" in budget and "priced" not in (budget_record or {}):
            budget["flops_nominal"] = budget.pop("flops")
        return "budget " + ",".join(f"{k}={v}" for k, v in budget.items() if k not in ("trials", "proxy_epochs"))
    if config.get("model_args", {}).get("attention") is False:
        return "attention-free"
    prune = {k: v for k, v in (config.get("prune") or {}).items() if v}
    return ",".join(f"{k}={v:g}" for k, v in prune.items()) or "dense"


def unit_of(result: dict) -> tuple:
    config = result["config"]
    return (result["dataset"], result["model"], config.get("seed"), config.get("fold"))


def load(runs: Path) -> list[dict]:
    rows = []
    for path in sorted(runs.glob("*/results.json")):
        result = json.loads(path.read_text())
        rows.append({"run": path.parent.name, "setting": setting_of(result["config"], result.get("budget")),
                     "unit": unit_of(result), "result": result})
    return rows


def mean_ci(values: list[float]) -> dict:
    """Mean, sample std and t-based 95 % CI of ``values`` (CI null for n < 2)."""
    array = np.asarray(values, dtype=float)
    n = len(array)
    mean = float(array.mean())
    if n < 2:
        return {"n": n, "mean": mean, "std": None, "ci95": None}
    std = float(array.std(ddof=1))
    half = float(stats.t.ppf(0.975, n - 1) * std / math.sqrt(n))
    return {"n": n, "mean": mean, "std": std, "ci95": [mean - half, mean + half]}


def executed_flops(result: dict) -> float:
    flops = result["flops_per_graph"]
    return flops.get("structural", flops.get("pruned"))


def params_of(result: dict) -> float:
    params = result["params"]
    return params.get("compacted", params["dense"])


def paired(rows: list[dict]) -> dict:
    dense = {r["unit"]: r["result"] for r in rows if r["setting"] == "dense"}
    table: dict[str, dict] = {}
    for row in rows:
        if row["setting"] == "dense":
            continue
        entry = table.setdefault(row["setting"], {"units": [], "unpaired": []})
        partner = dense.get(row["unit"])
        if partner is None:
            entry["unpaired"].append(row["run"])
            continue
        result = row["result"]
        entry["units"].append({
            "run": row["run"], "fold": row["unit"][3], "seed": row["unit"][2],
            "diff_points": 100 * (result["metric"]["test"] - partner["metric"]["test"]),
            "flops_ratio": executed_flops(result) / executed_flops(partner),
            "params_ratio": params_of(result) / params_of(partner),
            "speedup": (result.get("speedup") or {}).get("measured"),
            "within_budget": (result.get("budget") or {}).get("within_budget"),
        })
    summary = {}
    for setting, entry in table.items():
        units = entry["units"]
        summary[setting] = {
            "units": units, "unpaired": entry["unpaired"],
            "diff_points": mean_ci([u["diff_points"] for u in units]) if units else None,
            "flops_ratio": mean_ci([u["flops_ratio"] for u in units]) if units else None,
            "params_ratio": mean_ci([u["params_ratio"] for u in units]) if units else None,
            "speedup": mean_ci([u["speedup"] for u in units if u["speedup"]])
            if any(u["speedup"] for u in units) else None,
        }
    dense_tests = [r["result"]["metric"]["test"] for r in rows if r["setting"] == "dense"]
    return {"dense": mean_ci(dense_tests) if dense_tests else None, "settings": summary}


def _fmt(stat: dict | None, digits: int = 2) -> str:
    if not stat:
        return "-"
    if stat["ci95"] is None:
        return f"{stat['mean']:+.{digits}f} (n=1)"
    low, high = stat["ci95"]
    return f"{stat['mean']:+.{digits}f} [{low:+.{digits}f}, {high:+.{digits}f}]"


def _ratio(stat: dict | None) -> str:
    return "-" if not stat else f"{stat['mean']:.2f}"


def markdown(summary: dict) -> str:
    lines = []
    if summary["dense"]:
        d = summary["dense"]
        lines.append(f"dense: test {d['mean']:.4f} ± {d['std'] or 0:.4f} over {d['n']} runs\n")
    lines += ["| setting | n paired | test diff, points (95 % CI) | executed FLOPs vs dense | params vs dense "
              "| in-process speed-up | unpaired runs |", "|---|---:|---|---:|---:|---:|---|"]
    for setting, s in sorted(summary["settings"].items()):
        n = len(s["units"])
        speed = "-" if not s["speedup"] else f"{s['speedup']['mean']:.2f}x"
        lines.append(f"| {setting} | {n} | {_fmt(s['diff_points'])} | {_ratio(s['flops_ratio'])} | "
                     f"{_ratio(s['params_ratio'])} | {speed} | {', '.join(s['unpaired']) or '-'} |")
    return "\n".join(lines)


def joint_goal(summary: dict, flops: float = 0.5, speedup: float = 2.0, floor: float = -0.5) -> list[str]:
    """One line per setting: does it reach <= ``flops`` of dense executed FLOPs, >= ``speedup``
    measured in-process, and a paired accuracy difference whose 95 % CI lies above ``floor`` points?"""
    lines = []
    for setting, s in sorted(summary["settings"].items()):
        if not s["units"]:
            continue
        ci = (s["diff_points"] or {}).get("ci95")
        checks = {
            f"FLOPs <= {flops}": s["flops_ratio"]["mean"] <= flops,
            f"speed-up >= {speedup}x": bool(s["speedup"]) and s["speedup"]["mean"] >= speedup,
            f"CI above {floor} points": ci is not None and ci[0] > floor,
        }
        verdict = "meets the goal" if all(checks.values()) else "misses: " + ", ".join(
            name for name, ok in checks.items() if not ok)
        lines.append(f"- {setting} (n={len(s['units'])}): {verdict}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, help="folder holding one run folder per point")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a markdown table")
    parser.add_argument("--goal", action="store_true",
                        help="also check the joint-pruning goal (<= 0.5 FLOPs, >= 2x, CI above -0.5 points)")
    args = parser.parse_args(argv)
    rows = load(args.runs)
    if not rows:
        print(f"no results.json under {args.runs}", file=sys.stderr)
        return 1
    summary = paired(rows)
    print(json.dumps(summary, indent=1) if args.json else markdown(summary))
    if args.goal:
        print("\n".join(["", "Joint-pruning goal:"] + joint_goal(summary)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
