"""Recompute the numbers of the fidelity table in ``studies/README.md`` from committed run files.

    python studies/fidelity.py          # from the repository root

Each row tests one claim of "Exploring Sparsity in Graph Transformers" (Liu et al., 2024) with
the paired units (same dataset, backbone, fold or seed) of the studies that measure it, using
``paired.py``'s pairing and statistics. A claim without finished runs prints "not measured".
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from paired import load, paired  # noqa: E402  (a script beside this one, not a package)

STUDIES = Path(__file__).parent

# claim -> [(study, setting as paired.py names it), ...]
CLAIMS: dict[str, list[tuple[str, str]]] = {
    "up to 50 % fewer parameters and 47.4 % fewer FLOPs at equal or better accuracy": [
        ("nci1-gps-pruning", "layer=0.5"), ("nci1-gps-pruning", "layer=0.5,neuron=0.25"),
        ("nci1-gps-pruning", "budget flops_nominal=0.5"), ("nci1-gps-pruning", "budget flops=0.5"), ("nci1-graphtrans-pruning", "layer=0.5,neuron=0.25"),
        ("nci1-graphormer-pruning", "layer=0.5,neuron=0.25"), ("mutag-gps", "layer=0.5")],
    "up to 50 % of the heads are redundant": [
        ("nci1-gps-pruning", "head=0.5"), ("nci1-graphtrans-pruning", "head=0.5"),
        ("nci1-graphormer-pruning", "head=0.5"), ("mutag-gps", "head=0.5")],
    "up to 50 % of the neurons are redundant": [("nci1-gps-pruning", "neuron=0.5"), ("mutag-gps", "neuron=0.5")],
    "token pruning at ratio 0.5 keeps accuracy": [("nci1-gps-pruning", "token=0.5"), ("mutag-gps", "token=0.5")],
    "50 % weight sparsity keeps or improves accuracy": [
        ("nci1-gps-pruning", "weight=0.5"), ("molhiv-gps", "weight=0.5"), ("mutag-gps", "weight=0.5")],
    "ogbg-molhiv: 30 % fewer FLOPs with +1.8 points ROC-AUC": [
        ("molhiv-gps", "layer=0.25"), ("molhiv-gps", "budget flops=0.7")],
    "attention pays (the attention-free baseline loses accuracy)": [
        ("nci1-gps-pruning", "attention-free"), ("mutag-gps", "attention-free")],
}


def summaries() -> dict[str, dict]:
    out = {}
    for folder in sorted(STUDIES.glob("*/runs")):
        rows = load(folder)
        if rows:
            out[folder.parent.name] = paired(rows)
    return out


def cell(summary: dict | None, setting: str) -> str:
    if summary is None or setting not in summary["settings"] or not summary["settings"][setting]["units"]:
        return "not measured"
    s = summary["settings"][setting]
    diff, n = s["diff_points"], len(s["units"])
    if diff["ci95"] is None:
        text = f"{diff['mean']:+.2f} points (n=1, no CI)"
    else:
        text = f"{diff['mean']:+.2f} points [{diff['ci95'][0]:+.2f}, {diff['ci95'][1]:+.2f}] (n={n})"
    text += f"; executed FLOPs {s['flops_ratio']['mean']:.2f}, params {s['params_ratio']['mean']:.2f}"
    if s["speedup"]:
        text += f", {s['speedup']['mean']:.2f}x in-process"
    return text


def main() -> int:
    found = summaries()
    for study, summary in found.items():
        if summary["dense"]:
            d = summary["dense"]
            print(f"dense {study}: {d['mean']:.4f} ± {d['std'] or 0:.4f} (n={d['n']})")
    print()
    print("| claim | study: setting | paired difference vs dense (95 % CI), cost |")
    print("|---|---|---|")
    for claim, cells in CLAIMS.items():
        for study, setting in cells:
            print(f"| {claim} | {study}: {setting} | {cell(found.get(study), setting)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
