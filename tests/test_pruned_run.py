"""End to end: a pruned run writes the pruning part of the results contract, and bad settings are refused."""
import json

import pytest

from gtsp.cli import main
from gtsp.config import RunConfig
from gtsp.train.run import run


@pytest.mark.parametrize("prune", [{"head": 0.5, "layer": 0.5}, {"token": 0.5, "weight": 0.5, "neuron": 0.5}])
def test_pruned_run_reports_dense_masked_and_compacted(cache_root, tmp_path, prune):
    cfg = RunConfig(dataset="MUTAG", cache_root=str(cache_root), out=str(tmp_path), epochs=4, batch_size=32,
                    model_args={"hidden": 32, "layers": 2, "heads": 4}, prune=prune)
    run(cfg, progress=False)
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["sparsity"] == {d: prune.get(d, 0.0) for d in ("token", "head", "layer", "weight", "neuron")}
    params, flops = results["params"], results["flops_per_graph"]
    assert params["compacted_nonzero"] < params["dense"]
    assert flops["pruned"] < flops["dense"]
    # FlopCounterMode measured the compacted model: it agrees with the structural analytic count
    assert flops["flop_counter"] == pytest.approx(flops["structural"], rel=0.01)
    assert results["compaction_max_abs_diff"] < 1e-4
    assert results["metric"]["test_compacted"] == pytest.approx(results["metric"]["test"])
    assert results["speedup"]["measured"] > 0
    assert (tmp_path / "compacted.safetensors").is_file()
    if "head" in prune:
        assert params["compacted"] < params["dense"]


@pytest.mark.parametrize("argv,message", [
    (["--prune", "head=1.0"], "outside [0, 1)"),
    (["--prune", "weight=-0.1"], "outside [0, 1)"),
    (["--prune", "branch=0.5"], "unknown pruning dimension"),
    (["--prune", "layer=0.9", "--layers", "2"], "all of them"),
    (["--prune", "head=0.75", "--heads", "1", "--hidden", "32"], "head"),
    (["--prune", "token=0.5", "--heads", "0"], "needs global attention"),
])
def test_bad_pruning_settings_are_refused(capsys, tmp_path, cache_root, argv, message):
    code = main(["train", "--epochs", "1", "--cache-root", str(cache_root), "--out", str(tmp_path), *argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0]
