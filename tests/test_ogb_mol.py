"""CSV -> OGB layout (gtsp.data.mol_build, ogb_load), loaded and scored by OGB's own, unmodified classes."""
from __future__ import annotations

import builtins
import logging
import os
import urllib.error
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from ogb.graphproppred import PygGraphPropPredDataset
from ogb.utils import smiles2graph
from rdkit import Chem
from torch_geometric.transforms import AddRandomWalkPE

from gtsp.data.mol_build import build_custom, build_mol_dataset
from gtsp.data.ogb_load import load_mol_dataset, ogb_safe_load
from gtsp.data.splits import random_split, scaffold_split
from gtsp.errors import GtspError


def _data_root() -> Path | None:
    for root in (Path(__file__).resolve().parents[1].parent / "shared" / "data", os.environ.get("GTSP_DATA")):
        if root and (Path(root) / "moleculenet" / "bbbp.csv").is_file():
            return Path(root)
    return None


DATA = _data_root()
needs_data = pytest.mark.skipif(DATA is None, reason="moleculenet/bbbp.csv not found (../shared/data or $GTSP_DATA)")
# A real HIV row (index 987) that recent RDKit refuses to sanitise: boron with five bonds.
UNSANITISABLE = "Cc1ccc([B-2]2(c3ccc(C)cc3)=NCCO2)cc1"


@pytest.fixture()
def no_prompt_no_download(monkeypatch):
    """Fail loudly if OGB would ask on stdin or reach the network."""
    def refuse(*args, **kwargs):
        raise AssertionError("OGB tried to prompt or download")

    monkeypatch.setattr(builtins, "input", refuse)
    monkeypatch.setattr("ogb.graphproppred.dataset_pyg.decide_download", refuse)


@pytest.fixture(scope="module")
def bbbp(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    dataset, split, evaluator = load_mol_dataset("ogbg-molbbbp", data_root=DATA, cache_root=cache)
    return cache, dataset, split, evaluator


# ------------------------------------------------------------- official dataset from CSV

@needs_data
def test_bbbp_loads_through_ogb_by_official_name(bbbp, no_prompt_no_download, recwarn):
    cache = bbbp[0]
    frame = pd.read_csv(DATA / "moleculenet" / "bbbp.csv")
    with ogb_safe_load():  # gtsp allows PyG's pickled helper classes only around OGB's loads
        dataset = PygGraphPropPredDataset(name="ogbg-molbbbp", root=str(cache / "ogb"))  # no meta_dict
    assert len(dataset) == len(frame) == 2039
    assert dataset.num_node_features == 9 and dataset.num_edge_features == 3
    assert dataset.task_type == "binary classification" and dataset.num_tasks == 1
    assert not [w for w in recwarn if "Weights only" in str(w.message)]  # torch.load(weights_only=True) works
    for row in (0, 1, 500, 2038):
        graph, mol = dataset[row], Chem.MolFromSmiles(frame.smiles[row])
        assert graph.num_nodes == mol.GetNumAtoms()
        assert graph.edge_index.size(1) == 2 * mol.GetNumBonds()
        assert int(graph.y) == frame.p_np[row]


@needs_data
def test_bbbp_scaffold_split_is_disjoint_and_80_10_10(bbbp):
    split = bbbp[2]
    parts = [set(split[k].tolist()) for k in ("train", "valid", "test")]
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert set.union(*parts) == set(range(2039))
    assert [len(p) for p in parts] == [1631, 204, 204]  # ogbg-molbbbp's official sizes


@needs_data
def test_graphs_equal_ogb_smiles2graph(bbbp):
    dataset = bbbp[1]
    smiles = pd.read_csv(DATA / "moleculenet" / "bbbp.csv").smiles
    for row in range(0, 2039, 97):
        expected, graph = smiles2graph(smiles[row]), dataset[row]
        assert torch.equal(graph.x, torch.from_numpy(expected["node_feat"]))
        assert torch.equal(graph.edge_index, torch.from_numpy(expected["edge_index"]))
        assert torch.equal(graph.edge_attr, torch.from_numpy(expected["edge_feat"]))


@needs_data
def test_evaluator_scores_random_predictions(bbbp):
    _, dataset, split, evaluator = bbbp
    test = split["test"]
    y_true = torch.cat([dataset[int(i)].y for i in test]).view(-1, 1)
    score = evaluator.eval({"y_true": y_true, "y_pred": torch.rand(len(test), 1)})
    assert 0.0 <= score["rocauc"] <= 1.0


@needs_data
def test_leftover_folder_is_rebuilt_without_prompt(tmp_path, no_prompt_no_download):
    (tmp_path / "ogb" / "ogbg_molbbbp" / "raw").mkdir(parents=True)  # e.g. an interrupted download
    dataset, split, _ = load_mol_dataset("ogbg-molbbbp", data_root=DATA, cache_root=tmp_path)
    assert len(dataset) == 2039 and len(split["train"]) == 1631


def test_failed_download_names_expected_csv_and_leaves_nothing(tmp_path, monkeypatch):
    def offline(url):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr("ogb.graphproppred.dataset_pyg.decide_download", offline)
    empty = tmp_path / "data"
    empty.mkdir()
    with pytest.raises(GtspError) as err:
        load_mol_dataset("ogbg-molhiv", data_root=empty, cache_root=tmp_path / "cache")
    assert str(empty / "moleculenet" / "hiv.csv") in str(err.value) and "GTSP_DATA" in str(err.value)
    assert not (tmp_path / "cache" / "ogb" / "ogbg_molhiv").exists()  # else OGB would prompt next time


def test_unknown_ogb_name_is_an_error(tmp_path):
    with pytest.raises(GtspError, match="ogbg-molhiv"):
        load_mol_dataset("ogbg-molnothing", cache_root=tmp_path)


# ------------------------------------------------------------- custom CSV files

def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture()
def multitask_csv(tmp_path) -> Path:
    # 20 molecules; the scaffold split puts rows 6 and 10 in valid, 3 and 4 in test, each
    # pair holding both classes of both tasks (else the build refuses the split).
    rows = ["CCO,1,0", "c1ccccc1O,0,", "CC(=O)Nc1ccc(O)cc1,1,1", f"{UNSANITISABLE},0,1",
            "C1CCNCC1,1,0", "OCC(O)CO,1,0", "c1ccncc1,0,1", "CCN(CC)CC,1,0", "CC(C)O,0,1", "CCCCCC,1,1",
            "C1CCCCC1,1,0", "C1CCOC1,0,1", "c1ccsc1,1,1", "c1ccoc1,0,0", "C1CCC1,1,0", "c1cc[nH]c1,0,1",
            "C1CC1,1,0", "c1cnccn1,0,1", "C1CCCC1,1,1", "O=C1CCCCC1,0,0"]
    return _write(tmp_path / "toy.csv", "smiles,a,b\n" + "\n".join(rows) + "\n")


def test_multitask_missing_label_and_partial_sanitisation(multitask_csv, tmp_path, caplog):
    assert Chem.MolFromSmiles(UNSANITISABLE) is None  # precondition: the installed RDKit rejects it
    caplog.set_level(logging.INFO, logger="gtsp.data")
    folder = build_custom(multitask_csv, smiles_col="smiles", label_cols=["a", "b"], name="toy",
                          cache_root=tmp_path / "cache").folder
    assert folder == tmp_path / "cache" / "custom" / "toy"
    assert "toy.csv: 1 molecule(s) needed partial sanitisation (rows 3)" in caplog.text
    dataset, split, evaluator = load_mol_dataset("toy", cache_root=tmp_path / "cache")
    assert len(dataset) == 20 and dataset.task_type == "binary classification" and dataset.num_tasks == 2
    assert torch.isnan(dataset[1].y[0, 1]) and dataset[1].y[0, 0] == 0  # empty cell -> missing, not 0
    assert dataset[3].num_nodes == Chem.MolFromSmiles(UNSANITISABLE, sanitize=False).GetNumAtoms()
    assert sorted(torch.cat(list(split.values())).tolist()) == list(range(20))
    y = torch.cat([g.y for g in dataset])
    assert evaluator.eval({"y_true": y, "y_pred": torch.rand_like(y)})["rocauc"] >= 0.0


def test_regression_is_detected_and_scored_with_rmse(tmp_path):
    smiles = ["CCO", "CCCO", "CCCCO", "c1ccccc1", "CC(=O)O"] * 4  # 20: valid and test get 2 each
    rows = [f"{s},{v}" for s, v in zip(smiles, [-0.77, 0.5, 1.25, 2.0, 3.5] * 4)]
    csv = _write(tmp_path / "esol_like.csv", "smiles,logS\n" + "\n".join(rows) + "\n")
    meta = build_mol_dataset(csv, tmp_path / "out", smiles_col="smiles", label_cols=["logS"], split="random").meta
    assert meta["task type"] == "regression" and meta["eval metric"] == "rmse"
    with ogb_safe_load():
        dataset = PygGraphPropPredDataset(name="esol_like", meta_dict=meta)  # OGB's class, custom meta
    assert dataset[0].y.dtype == torch.float32 and float(dataset[0].y) == pytest.approx(-0.77)


def test_pre_transform_is_cached_in_its_own_folder(multitask_csv, tmp_path):
    cache = tmp_path / "cache"
    build_custom(multitask_csv, smiles_col="smiles", label_cols=["a", "b"], name="toy", cache_root=cache)
    with_pe, _, _ = load_mol_dataset("toy", cache_root=cache, pre_transform=AddRandomWalkPE(walk_length=4),
                                     transform_tag="rw4")
    plain, _, _ = load_mol_dataset("toy", cache_root=cache)
    assert with_pe[0].random_walk_pe.shape == (with_pe[0].num_nodes, 4)
    assert "random_walk_pe" not in plain[0]
    assert (cache / "custom" / "toy" / "processed_rw4").is_dir() and (cache / "custom" / "toy" / "processed").is_dir()


def test_unparsable_smiles_names_file_and_row(tmp_path):
    csv = _write(tmp_path / "bad.csv", "smiles,y\nCCO,1\nC1CC(,0\n")
    with pytest.raises(GtspError, match=r"bad\.csv: 1 invalid SMILES.*line 3: 'C1CC\('.*fix or remove that row"):
        build_mol_dataset(csv, tmp_path / "out", smiles_col="smiles", label_cols=["y"])


def test_missing_column_lists_available_columns(multitask_csv, tmp_path):
    with pytest.raises(GtspError, match=r"'c' not found; the CSV has columns 'smiles', 'a', 'b'"):
        build_mol_dataset(multitask_csv, tmp_path / "out", smiles_col="smiles", label_cols=["a", "c"])


def test_non_numeric_label_and_missing_file(tmp_path):
    csv = _write(tmp_path / "text.csv", "smiles,y\nCCO,1\nCCC,active\n")
    with pytest.raises(GtspError, match=r"text\.csv line 3 \(row 1\), column 'y': label 'active'"):
        build_mol_dataset(csv, tmp_path / "out", smiles_col="smiles", label_cols=["y"])
    with pytest.raises(GtspError, match="does not exist"):
        build_mol_dataset(tmp_path / "nope.csv", tmp_path / "out", smiles_col="smiles", label_cols=["y"])


def test_custom_names_must_not_look_official(multitask_csv, tmp_path):
    with pytest.raises(GtspError, match="reserved"):
        build_custom(multitask_csv, smiles_col="smiles", label_cols=["a"], name="ogbg-mine", cache_root=tmp_path)


# ------------------------------------------------------------- splits

def test_scaffold_split_order_and_cutoffs():
    # Two groups of 4 fill train (8 <= 0.8 * 10); of the equal-size singletons the one
    # with the larger first index comes first (OGB's order): 9 -> valid, 8 -> test.
    split = scaffold_split(["A"] * 4 + ["B"] * 4 + ["C", "D"])
    assert split["train"].tolist() == list(range(8))
    assert split["valid"].tolist() == [9] and split["test"].tolist() == [8]


def test_random_split_is_seeded_and_80_10_10():
    a, b, c = random_split(100, seed=1), random_split(100, seed=1), random_split(100, seed=2)
    assert [len(a[k]) for k in ("train", "valid", "test")] == [80, 10, 10]
    assert all(np.array_equal(a[k], b[k]) for k in a) and not np.array_equal(a["test"], c["test"])
