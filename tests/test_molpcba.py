"""ogbg-molpcba through the same OGB path as ogbg-molhiv, on a small fixture in OGB's on-disk layout.

The real dataset (437,929 molecules) cannot be fetched here. The fixture takes 400 molecules of
MoleculeNet's hiv.csv and gives them 128 binary tasks with missing labels, written by gtsp's
OGB layout writer under the official name, so OGB's unmodified loader, OGB's meta-data for
ogbg-molpcba (128 tasks, average precision) and OGB's evaluator are the ones used.
"""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from gtsp.cli import main
from gtsp.data.mol_build import build_mol_dataset
from gtsp.data.registry import load_dataset

TASKS = [f"PCBA-{i}" for i in range(128)]
MOLECULES = 400


@pytest.fixture(scope="module")
def pcba(tmp_path_factory, data_root):
    folder = tmp_path_factory.mktemp("pcba")
    rows = list(csv.DictReader(open(data_root / "moleculenet" / "hiv.csv")))[:MOLECULES]
    rng = np.random.default_rng(0)
    positive, missing = rng.random((MOLECULES, 128)) < 0.4, rng.random((MOLECULES, 128)) < 0.3
    labels = np.where(missing, np.nan, positive.astype(float))
    with open(folder / "pcba.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["smiles", *TASKS])
        for row, values in zip(rows, labels):
            writer.writerow([row["smiles"], *["" if np.isnan(v) else int(v) for v in values]])
    cache = folder / "cache"
    build_mol_dataset(folder / "pcba.csv", cache / "ogb" / "ogbg_molpcba", smiles_col="smiles", label_cols=TASKS,
                      split="scaffold", name="ogbg-molpcba")
    return cache, labels


def test_the_fixture_loads_as_ogbg_molpcba_with_every_missing_label_kept(pcba):
    cache, labels = pcba
    data = load_dataset("ogbg-molpcba", cache_root=str(cache), features=("rwse",), seed=0)
    assert (data.info.num_outputs, data.info.metric, data.info.task) == (128, "ap", "binary")
    assert data.evaluator.name == "ogbg-molpcba" and data.evaluator.eval_metric == "ap"
    graphs = [*data.train, *data.valid, *data.test]
    assert len(graphs) == MOLECULES
    loaded = torch.cat([g.y for g in graphs]).numpy()
    assert np.isnan(loaded).sum() == np.isnan(labels).sum()  # no label dropped or invented
    assert np.nansum(loaded) == np.nansum(labels)


def test_two_epochs_train_and_report_average_precision(pcba, tmp_path):
    cache, _ = pcba
    out = tmp_path / "run"
    assert main(["train", "--dataset", "ogbg-molpcba", "--cache-root", str(cache), "--model", "gps",
                 "--hidden", "32", "--layers", "2", "--heads", "4", "--epochs", "2", "--batch-size", "64",
                 "--out", str(out), "--quiet"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["metric"]["name"] == "ap" and results["dataset_info"]["num_outputs"] == 128
    assert 0.0 < results["metric"]["test"] < 1.0
    losses = [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(losses) == 2 and all(np.isfinite(losses))
