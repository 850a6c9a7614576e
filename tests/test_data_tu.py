import numpy as np
import pytest

from gtsp.data.registry import load_dataset
from gtsp.data.splits import stratified_split
from gtsp.errors import GtspError


def test_nci1_loads_from_the_data_root(data_root, cache_root):
    data = load_dataset("NCI1", data_root=str(data_root), cache_root=str(cache_root), features=("rwse",))
    assert len(data.train) + len(data.valid) + len(data.test) == 4110
    assert (len(data.train), len(data.valid), len(data.test)) == (3288, 411, 411)
    assert data.info.num_node_features == 37 and data.info.num_outputs == 2
    assert data.train[0].rwse.shape == (data.train[0].num_nodes, 20)


def test_imdb_gets_one_hot_degree_features(data_root, cache_root):
    data = load_dataset("IMDB-BINARY", data_root=str(data_root), cache_root=str(cache_root))
    g = data.train[0]
    assert g.x.sum(1).eq(1).all()  # exactly one hot per node
    degree = np.bincount(g.edge_index[0].numpy(), minlength=g.num_nodes)
    assert (g.x.argmax(1).numpy() == degree).all()


def test_split_is_seeded_stratified_and_disjoint():
    labels = np.array([0] * 70 + [1] * 30)
    a, b, c = stratified_split(labels, 0), stratified_split(labels, 0), stratified_split(labels, 1)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["test"], c["test"])
    together = np.concatenate([a["train"], a["valid"], a["test"]])
    assert sorted(together.tolist()) == list(range(100))
    assert labels[a["test"]].mean() == pytest.approx(0.3)


def test_k_fold_test_sets_partition_the_data():
    labels = np.array([0, 1] * 50)
    tests = [stratified_split(labels, 0, folds=5, fold=k)["test"] for k in range(5)]
    assert sorted(np.concatenate(tests).tolist()) == list(range(100))


def test_unknown_dataset_lists_known_ones(cache_root):
    with pytest.raises(GtspError, match="unknown dataset 'nci1'.*NCI1"):
        load_dataset("nci1", cache_root=str(cache_root))


def test_missing_files_name_the_expected_path(tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr("torch_geometric.datasets.tu_dataset.fs.cp", no_network)
    with pytest.raises(GtspError, match=r"PROTEINS/raw/PROTEINS_A.txt"):
        load_dataset("PROTEINS", data_root=str(tmp_path), cache_root=str(tmp_path / "cache"))
