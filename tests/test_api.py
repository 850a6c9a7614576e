"""The Python API: training on a named dataset or on graphs in memory, results, model files, predictions."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from torch_geometric.data import Batch

import gtsp
from gtsp.errors import GtspError

TINY = {"hidden": 16, "layers": 1, "heads": 2}


@pytest.fixture(scope="module")
def mutag(cache_root):
    return gtsp.load_dataset("MUTAG", cache_root=str(cache_root))


def test_importing_gtsp_loads_no_torch_and_exposes_the_api(tmp_path):
    code = "import sys, gtsp, gtsp.cli; print('torch' in sys.modules, 'fit' in dir(gtsp))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert out.returncode == 0 and out.stdout.split() == ["False", "True"], out.stderr
    import gtsp.predict  # noqa: F401  (subpackages named like verbs do not hide the API's functions)
    import gtsp.train.run  # noqa: F401
    assert callable(gtsp.fit) and callable(gtsp.predict_graphs) and callable(gtsp.prune)
    with pytest.raises(AttributeError):
        gtsp.no_such_name


def test_graphs_in_memory_train_exactly_as_the_named_dataset(mutag, tmp_path):
    """The same graphs and split, given as a list: the same training, epoch by epoch."""
    graphs = [*mutag.train, *mutag.valid, *mutag.test]
    n_train, n_valid = len(mutag.train), len(mutag.valid)
    split = {"train": range(n_train), "valid": range(n_train, n_train + n_valid),
             "test": range(n_train + n_valid, len(graphs))}
    own = gtsp.dataset_from_graphs(graphs, split)
    assert own.info.task == "multiclass" and own.info.num_outputs == 2
    named = gtsp.fit(mutag, epochs=2, model_args=TINY, batch_size=32, out=tmp_path / "named")
    given = gtsp.fit(own, epochs=2, model_args=TINY, batch_size=32, out=tmp_path / "given")
    assert (tmp_path / "named" / "metrics.jsonl").read_text().count("\n") == 2
    history = [[{k: v for k, v in json.loads(line).items() if k != "epoch_seconds"}
                for line in (tmp_path / run / "metrics.jsonl").read_text().splitlines()] for run in ("named", "given")]
    assert history[0] == history[1]
    assert given.results["split_sizes"] == {"train": n_train, "valid": n_valid, "test": len(mutag.test)}
    assert given.out == tmp_path / "given" and given.compacted is None and given.plan is None
    assert given.metrics["test"] == named.metrics["test"] and given.cost["params"]["dense"] > 0
    assert given.speed["graphs_per_s"] > 0


def test_regression_on_graphs_in_memory(mutag):
    graphs = [g.clone() for g in mutag.train[:40]]
    for g in graphs:
        g.y = torch.tensor([[float(g.num_nodes)]])
    data = gtsp.dataset_from_graphs(graphs, {"train": range(30), "valid": range(30, 35), "test": range(35, 40)})
    assert (data.info.task, data.info.metric, data.info.higher_is_better) == ("regression", "mae", False)
    assert data.info.target_mean[0] == pytest.approx(sum(g.num_nodes for g in graphs[:30]) / 30)
    result = gtsp.fit(data, epochs=1, model_args=TINY)
    assert result.out is None and result.metrics["test"] >= 0.0
    values = gtsp.predict_graphs(result, data.test)
    assert values.shape == (5, 1)


@pytest.mark.parametrize("split,phrase", [
    ({"train": [0, 1], "valid": [1], "test": [2]}, "graph 1 is in two splits"),
    ({"train": [0, 1], "valid": [9], "test": [2]}, "names graph 9"),
    ({"train": [0, 1], "valid": [], "test": [2]}, "valid split is empty"),
    ({"train": [0, 1], "test": [2]}, "give exactly train, valid and test"),
])
def test_bad_splits_are_refused(mutag, split, phrase):
    with pytest.raises(GtspError, match=phrase):
        gtsp.dataset_from_graphs(mutag.train[:3], split)


def test_unknown_settings_are_refused_by_name(mutag):
    with pytest.raises(GtspError, match=r"unknown setting\(s\) \['epoch'\]"):
        gtsp.fit(mutag, epoch=3)


def test_save_load_predict_round_trip(mutag, cache_root, tmp_path):
    result = gtsp.fit(mutag, epochs=2, model_args=TINY, prune={"head": 0.5})
    assert result.deployed is result.compacted and result.plan is not None
    path = gtsp.save_model(result, tmp_path / "m.safetensors")
    saved = gtsp.load_model(path)
    assert saved.spec["plan"] == result.plan.to_dict() and saved.info == result.info
    graphs = mutag.test[:7]
    with torch.no_grad():
        expected = torch.softmax(result.compacted.eval()(Batch.from_data_list(graphs)), -1)
    for source in (result, saved, path):
        assert torch.allclose(gtsp.predict_graphs(source, graphs), expected, atol=1e-6)
    # graphs without the random-walk encoding get it computed: the same predictions
    bare = [g.clone() for g in graphs]
    for g in bare:
        del g.rwse
    assert torch.allclose(gtsp.predict_graphs(saved, bare), expected, atol=1e-6)
    report = gtsp.evaluate(path, cache_root=str(cache_root))
    assert report["test"] == pytest.approx(result.metrics["test_compacted"])


def test_predict_smiles_matches_the_dataset_path(data_root, tmp_path):
    from gtsp.data.mol_build import build_custom

    rows = (data_root / "moleculenet" / "lipo.csv").read_text().splitlines()[:41]
    csv = tmp_path / "lipo40.csv"
    csv.write_text("\n".join(rows) + "\n")
    cache = tmp_path / "cache"
    build_custom(csv, smiles_col="smiles", label_cols=["lipo"], name="lipo40", cache_root=cache, split="random")
    data = gtsp.load_dataset("lipo40", cache_root=str(cache))
    result = gtsp.fit(data, epochs=1, model_args=TINY, batch_size=16, cache_root=str(cache))
    by_row = {int(i): g for part in ("train", "valid", "test")
              for i, g in zip(data.split[part], getattr(data, part))}  # graph of CSV row i
    smiles = [r.split(",")[0] for r in rows[1:11]]
    from_smiles = gtsp.predict_smiles(result, smiles)
    assert from_smiles.shape == (10, 1)
    assert torch.allclose(from_smiles, gtsp.predict_graphs(result, [by_row[i] for i in range(10)]), atol=1e-5)
    with pytest.raises(GtspError, match=r"SMILES 'C1CC\(' \(position 1\)"):
        gtsp.predict_smiles(result, ["CCO", "C1CC("])


def test_the_command_and_the_function_train_the_same_run(cache_root, tmp_path):
    from gtsp.cli import main

    argv = ["train", "--dataset", "MUTAG", "--epochs", "2", "--hidden", "16", "--layers", "1", "--heads", "2",
            "--batch-size", "32", "--prune", "head=0.5", "--cache-root", str(cache_root), "--quiet"]
    assert main([*argv, "--out", str(tmp_path / "cli")]) == 0
    result = gtsp.fit("MUTAG", epochs=2, model_args=TINY, batch_size=32, prune={"head": 0.5},
                      cache_root=str(cache_root), out=tmp_path / "api")
    runs = [[{k: v for k, v in json.loads(line).items() if k != "epoch_seconds"}
             for line in (tmp_path / run / "metrics.jsonl").read_text().splitlines()] for run in ("cli", "api")]
    assert runs[0] == runs[1]
    cli = json.loads((tmp_path / "cli" / "results.json").read_text())
    assert cli["metric"] == result.results["metric"] and cli["compaction_plan"] == result.plan.to_dict()


def test_a_dataset_loaded_for_another_backbone_is_refused_and_a_result_prunes(mutag):
    with pytest.raises(GtspError, match=r"lack the spd encoding graphormer reads.*model='graphormer'"):
        gtsp.fit(mutag, model="graphormer", epochs=1)
    dense = gtsp.fit(mutag, epochs=1, model_args={"hidden": 16, "layers": 2, "heads": 2})
    pruned = gtsp.prune(dense, prune={"layer": 0.5}, finetune_epochs=4, dataset=mutag)
    assert pruned.results["start_weights"]["source"] == "in memory" and len(pruned.compacted.layers) == 1
