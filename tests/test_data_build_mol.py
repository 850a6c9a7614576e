"""``gtsp data build-mol``: summary, task inference, and each refusal as one clear GtspError."""
from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gtsp.cli import main
from gtsp.data.mol_build import build_custom
from gtsp.data.registry import load_dataset
from gtsp.errors import GtspError

# 40 distinct valid molecules: alcohols and amines of growing chain length.
SMILES = ["C" * k + "O" for k in range(1, 21)] + ["C" * k + "N" for k in range(1, 21)]
ALTERNATING = [i % 2 for i in range(40)]
# random_split(40, seed=1) gives valid and test both classes of ALTERNATING; seed 0 gives a
# test split of class 1 only (checked in test_single_class_test_split_is_refused_with_the_fix).
GOOD_SEED = 1


def _csv(tmp_path: Path, labels, smiles=SMILES, name="mols.csv") -> Path:
    path = tmp_path / name
    path.write_text("smiles,y\n" + "".join(f"{s},{v}\n" for s, v in zip(smiles, labels)))
    return path


def _build(csv: Path, tmp_path: Path, **kwargs):
    options = {"smiles_col": "smiles", "label_cols": ["y"], "name": "mine", "cache_root": tmp_path / "cache",
               "split": "random", "seed": GOOD_SEED, **kwargs}
    return build_custom(csv, **options)


def test_cli_prints_the_summary(tmp_path, capsys):
    labels = [f"{0.37 * i - 3:.2f}" if i % 7 else "" for i in range(40)]  # 6 missing labels
    code = main(["data", "build-mol", "--csv", str(_csv(tmp_path, labels)), "--label-cols", "y", "--name", "mine",
                 "--split", "random", "--seed", "1", "--cache-root", str(tmp_path / "cache")])
    out = capsys.readouterr().out
    assert code == 0
    assert "molecules: 40 of 40 rows; invalid SMILES skipped: 0" in out
    assert "task: regression, metric rmse (why: 34 distinct label values, not only integers)" in out
    assert "y: 34 labels, 6 missing" in out
    assert "split: random, 32 / 4 / 4 (train / valid / test)" in out
    assert "gtsp train --dataset mine" in out


def test_binary_is_inferred_with_its_reason_and_positive_counts(tmp_path):
    summary = _build(_csv(tmp_path, ALTERNATING), tmp_path)
    assert summary.task.type == "binary classification" and summary.task.reason == "every known label is 0 or 1"
    assert "  y: 40 labels, 20 positive, 0 missing" in summary.lines()


@pytest.mark.parametrize("values", [[-1, 1], [0, 1, 2]])
def test_few_integer_labels_are_refused_until_task_is_given(tmp_path, values):
    labels = [values[i % len(values)] for i in range(40)]
    with pytest.raises(GtspError, match="may be classes.*--task binary.*--task regression"):
        _build(_csv(tmp_path, labels), tmp_path)
    summary = _build(_csv(tmp_path, labels), tmp_path, task_type="regression")
    assert summary.task.type == "regression" and summary.task.reason == "set by --task regression"


def test_task_binary_stores_minus_one_as_zero(tmp_path):
    summary = _build(_csv(tmp_path, [2 * v - 1 for v in ALTERNATING]), tmp_path, task_type="binary")
    assert "-1/1 stored as 0/1" in summary.task.reason
    stored = pd.read_csv(summary.folder / "raw" / "graph-label.csv.gz", header=None)[0].tolist()
    assert stored == ALTERNATING
    with pytest.raises(GtspError, match="--task binary needs labels 0/1"):
        _build(_csv(tmp_path, [0, 1, 2, 3] * 10), tmp_path, task_type="binary", overwrite=True)


def test_invalid_smiles_are_refused_listed_or_skipped_and_counted(tmp_path):
    smiles = list(SMILES)
    for row in (3, 10, 11, 12, 13, 14, 30):  # 7 bad rows: CSV lines 5, 12-16, 32
        smiles[row] = "C1CC(" if row != 30 else ""
    csv = _csv(tmp_path, ALTERNATING, smiles)
    with pytest.raises(GtspError) as err:
        _build(csv, tmp_path)
    message = str(err.value)
    assert "7 invalid SMILES" in message and "line 5: 'C1CC('" in message and "line 15" in message
    assert "line 16" not in message and "; ..." in message and "--skip-invalid" in message  # first five only
    summary = _build(csv, tmp_path, skip_invalid=True)
    assert "molecules: 33 of 40 rows; invalid SMILES skipped: 7" in summary.lines()[1]
    meta = json.loads((summary.folder / "meta.json").read_text())
    assert meta["gtsp skipped invalid rows"] == "7" and meta["gtsp skipped invalid lines"] == "5,12,13,14,15,16,32"
    mapping = pd.read_csv(summary.folder / "mapping" / "mol.csv.gz")
    assert len(mapping) == 33 and 3 not in mapping.mol_id.tolist() and mapping.mol_id.iloc[3] == 4
    data = load_dataset("mine", cache_root=str(tmp_path / "cache"))
    assert len(data.train) + len(data.valid) + len(data.test) == 33


@pytest.mark.parametrize("name", ["MUTAG", "nci1", "IMDB-BINARY", "ogbg-molmine", "OGBG-x"])
def test_built_in_names_are_refused(tmp_path, name):
    with pytest.raises(GtspError, match="choose another --name"):
        _build(_csv(tmp_path, ALTERNATING), tmp_path, name=name)


def test_name_of_a_tu_dataset_in_the_data_root_is_refused(tmp_path):
    raw = tmp_path / "data" / "TUDataset" / "MYTU" / "raw"
    raw.mkdir(parents=True)
    (raw / "MYTU_A.txt").write_text("1, 2\n")
    with pytest.raises(GtspError, match="built-in TU dataset"):
        _build(_csv(tmp_path, ALTERNATING), tmp_path, name="MYTU", data_root=tmp_path / "data")


def test_existing_dataset_is_kept_unless_overwrite(tmp_path):
    first = _build(_csv(tmp_path, ALTERNATING), tmp_path)
    with pytest.raises(GtspError, match="already exists.*--overwrite"):
        _build(_csv(tmp_path, [1 - v for v in ALTERNATING]), tmp_path)
    kept = pd.read_csv(first.folder / "raw" / "graph-label.csv.gz", header=None)[0].tolist()
    assert kept == ALTERNATING
    _build(_csv(tmp_path, [1 - v for v in ALTERNATING]), tmp_path, overwrite=True)
    rebuilt = pd.read_csv(first.folder / "raw" / "graph-label.csv.gz", header=None)[0].tolist()
    assert rebuilt == [1 - v for v in ALTERNATING]


@pytest.mark.parametrize("cell, why", [("inf", "not finite in float32"), ("1e308", "not finite in float32"),
                                       ("-nan", "not a missing-value marker"), ("n.a.", "not a number")])
def test_non_finite_labels_are_refused_with_the_line(tmp_path, cell, why):
    labels = [f"{0.1 * i:.1f}" for i in range(40)]
    labels[6] = cell
    with pytest.raises(GtspError, match=rf"mols\.csv line 8 \(row 6\), column 'y': label '{cell}' is {why}"):
        _build(_csv(tmp_path, labels), tmp_path)


def test_single_class_test_split_is_refused_with_the_fix(tmp_path):
    with pytest.raises(GtspError, match=r"test split \(4 molecules\).*task 'y': only class 1.*another --seed"):
        _build(_csv(tmp_path, ALTERNATING), tmp_path, seed=0)
    scaffold_rows = ["CCO,1", "CCCO,0", "CCCCO,1", "CCN,0", "c1ccccc1,1", "C1CCCCC1,1"] * 2
    csv = tmp_path / "rings.csv"
    csv.write_text("smiles,y\n" + "\n".join(scaffold_rows) + "\n")
    with pytest.raises(GtspError, match="scaffold split.*--split random"):
        _build(csv, tmp_path, split="scaffold")


def test_loading_a_binary_dataset_whose_test_split_has_one_class_is_refused(tmp_path):
    summary = _build(_csv(tmp_path, ALTERNATING), tmp_path)
    negatives = np.flatnonzero(np.array(ALTERNATING) == 0)[:4]  # e.g. a dataset built by an older gtsp
    with gzip.open(summary.folder / "split" / "random" / "test.csv.gz", "wt") as f:
        f.write("".join(f"{i}\n" for i in negatives))
    with pytest.raises(GtspError, match=r"mine: no task can be scored on the test split.*only class 0.*--split random"):
        load_dataset("mine", cache_root=str(tmp_path / "cache"))


def test_regression_info_holds_the_training_split_mean_and_std(tmp_path):
    values = [0.37 * i - 3 for i in range(40)]
    summary = _build(_csv(tmp_path, [f"{v:.2f}" for v in values]), tmp_path)
    data = load_dataset("mine", cache_root=str(tmp_path / "cache"))
    train = np.array([round(values[i], 2) for i in summary.split["train"]])
    assert data.info.target_mean == pytest.approx((train.mean(),), rel=1e-6)
    assert data.info.target_std == pytest.approx((train.std(),), rel=1e-6)
