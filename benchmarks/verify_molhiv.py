"""Rebuild ogbg-molhiv from MoleculeNet's hiv.csv and check it against the official dataset.

Builds into a fresh temporary cache, loads it through OGB's own
``PygGraphPropPredDataset(name="ogbg-molhiv", root=...)`` (no meta_dict) and checks
the official counts: 41127 graphs, scaffold split 32901 / 4113 / 4113, disjoint and
covering. Prints counts and timings; exits 1 on any mismatch.

    OMP_NUM_THREADS=1 python benchmarks/verify_molhiv.py [--data-root ../shared/data]
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from ogb.graphproppred import PygGraphPropPredDataset

from gtsp.data.mol_build import build_mol_dataset
from gtsp.data.ogb_load import OGB_FROM_CSV, load_mol_dataset, ogb_safe_load
from gtsp.data.paths import data_root as resolve_data

EXPECTED_GRAPHS = 41127
EXPECTED_SPLIT = {"train": 32901, "valid": 4113, "test": 4113}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=None, help="folder holding moleculenet/hiv.csv (default $GTSP_DATA)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    root = resolve_data(args.data_root) or Path(__file__).resolve().parents[1].parent / "shared" / "data"
    spec = OGB_FROM_CSV["ogbg-molhiv"]
    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        build_mol_dataset(root / spec["csv"], Path(cache) / "ogb" / "ogbg_molhiv", smiles_col=spec["smiles_col"],
                          label_cols=spec["label_cols"], name="ogbg-molhiv")
        built = time.perf_counter()
        # OGB's own class, by official name only: proves the layout is the one OGB expects.
        with ogb_safe_load():
            dataset = PygGraphPropPredDataset(name="ogbg-molhiv", root=str(Path(cache) / "ogb"))
        split = dataset.get_idx_split()
        loaded = time.perf_counter()
        _, split2, evaluator = load_mol_dataset("ogbg-molhiv", data_root=root, cache_root=cache)
        meta = json.loads((Path(cache) / "ogb" / "ogbg_molhiv" / "meta.json").read_text())
    partial = [r for r in meta["gtsp partially sanitised rows"].split(",") if r]
    sizes = {k: len(v) for k, v in split.items()}
    labels = torch.cat([dataset[i].y for i in range(len(dataset))]).view(-1).numpy()
    positives = {k: int(labels[v.numpy()].sum()) for k, v in split.items()}
    every = np.sort(np.concatenate([v.numpy() for v in split.values()]))
    print(f"graphs: {len(dataset)} (expected {EXPECTED_GRAPHS})")
    print(f"split sizes: {sizes} (expected {EXPECTED_SPLIT}); positives per split: {positives}")
    print(f"partially sanitised molecules: {len(partial)} (rows {', '.join(partial)})")
    print(f"build from CSV: {built - start:.1f} s; OGB processing + load: {loaded - built:.1f} s")
    print(f"node features: {dataset.num_node_features}, edge features: {dataset.num_edge_features}, "
          f"evaluator metric: {evaluator.eval_metric}")
    ok = (len(dataset) == EXPECTED_GRAPHS and sizes == EXPECTED_SPLIT
          and np.array_equal(every, np.arange(len(dataset)))
          and all(torch.equal(split[k], split2[k]) for k in split))
    print("OK" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
