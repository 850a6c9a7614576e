"""Prune trained dense NCI1 GraphGPS models by fine-tuning, and compare with pruning from scratch.

    python studies/finetune-pruning/run.py --models DIR            # run what is missing
    python studies/finetune-pruning/run.py --compare               # the paired table

``--models DIR`` holds the dense runs of ``../nci1-gps-pruning`` (``fold-K_prune-none/model.safetensors``;
model files are not committed, so DIR is where that sweep ran). For every fold with a dense model,
every setting and every fine-tuning length, ``gtsp prune`` writes ``runs/fold-K_SETTING_ft-N``; a
folder that already holds ``results.json`` is skipped, so the command resumes. ``--compare`` pairs
each fine-tuned run with the dense run and the from-scratch run (100 epochs) of the same fold and
setting in ``../nci1-gps-pruning/runs``: test accuracy differences in points and wall time
(``train_seconds``: the fine-tuning loop against the whole from-scratch training loop).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRATCH = HERE.parent / "nci1-gps-pruning" / "runs"
SETTINGS = {"head=0.5": "head=0.5", "layer=0.5": "layer=0.5", "layer=0.5+neuron=0.25": "layer=0.5,neuron=0.25"}
EPOCHS = (10, 20)


def run_missing(models: Path, folds: list[int]) -> None:
    for fold in folds:
        model = models / f"fold-{fold}_prune-none" / "model.safetensors"
        if not model.is_file():
            print(f"fold {fold}: no dense model at {model}, skipped")
            continue
        for name, prune in SETTINGS.items():
            for epochs in EPOCHS:
                out = HERE / "runs" / f"fold-{fold}_prune-{name}_ft-{epochs}"
                if (out / "results.json").is_file():
                    continue
                command = [sys.executable, "-m", "gtsp", "prune", str(model), "--prune", prune,
                           "--finetune-epochs", str(epochs), "--out", str(out), "--overwrite", "--quiet"]
                print(" ".join(command[2:]), flush=True)
                subprocess.run(command, check=True)


def _results(path: Path) -> dict | None:
    file = path / "results.json"
    return json.loads(file.read_text()) if file.is_file() else None


def compare() -> list[dict]:
    rows = []
    for run in sorted((HERE / "runs").glob("fold-*_ft-*")):
        fine = _results(run)
        if fine is None:
            continue
        stem, epochs = run.name.rsplit("_ft-", 1)
        fold = stem.split("_", 1)[0]
        dense, scratch = _results(SCRATCH / f"{fold}_prune-none"), _results(SCRATCH / stem)
        rows.append({
            "run": run.name, "finetune_epochs": int(epochs),
            "finetuned_test": fine["metric"]["test"],
            "vs_dense_points": 100 * (fine["metric"]["test"] - dense["metric"]["test"]) if dense else None,
            "vs_scratch_points": 100 * (fine["metric"]["test"] - scratch["metric"]["test"]) if scratch else None,
            "finetune_minutes": fine["train_seconds"] / 60,
            "scratch_minutes": scratch["train_seconds"] / 60 if scratch else None,
            "speedup": fine["speedup"]["measured"],
        })
    return rows


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, help="folder holding fold-K_prune-none/model.safetensors")
    parser.add_argument("--folds", default="0,1,2", help="folds to run (default 0,1,2)")
    parser.add_argument("--compare", action="store_true", help="print the comparison table")
    args = parser.parse_args()
    if args.models:
        run_missing(args.models, [int(f) for f in args.folds.split(",")])
    if args.compare:
        print("| run | fine-tune epochs | test | vs dense, points | vs from scratch, points | fine-tune min "
              "| from-scratch min | in-process speed-up |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for r in compare():
            print(f"| {r['run']} | {r['finetune_epochs']} | {r['finetuned_test']:.4f} | "
                  f"{_fmt(r['vs_dense_points'], '+.2f')} | {_fmt(r['vs_scratch_points'], '+.2f')} | "
                  f"{r['finetune_minutes']:.1f} | {_fmt(r['scratch_minutes'], '.1f')} | {r['speedup']:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
