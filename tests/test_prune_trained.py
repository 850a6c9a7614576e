"""Pruning a trained model: fine-tuning starts from its weights, and the result compacts exactly."""
from __future__ import annotations

import json
import re

import pytest
import torch

import gtsp
from gtsp.api.pruning import prune_config
from gtsp.cli import main
from gtsp.data.batching import eval_batches
from gtsp.errors import GtspError
from gtsp.train.run import build_run_model
from gtsp.train.trainer import predict

TINY = {"hidden": 16, "layers": 2, "heads": 2}
EVERY_DIMENSION = {"token": 0.5, "head": 0.5, "layer": 0.5, "weight": 0.5, "neuron": 0.5}


@pytest.fixture(scope="module")
def dense_files(cache_root, tmp_path_factory):
    """A dense model file per backbone, trained two epochs on MUTAG."""
    folder = tmp_path_factory.mktemp("dense")
    files = {}
    for model in ("gps", "graphtrans", "graphormer"):
        result = gtsp.fit("MUTAG", model=model, epochs=2, model_args=TINY, batch_size=32, cache_root=str(cache_root))
        files[model] = gtsp.save_model(result, folder / f"{model}.safetensors")
    return files


# dimensions whose prepared model computes the dense model until the first decision (dynamic head
# pruning and token pruning apply their target density from the first step, by design)
START_DENSE = {"layer": 0.5, "weight": 0.5, "neuron": 0.5, "head": 0.5}
START_DENSE_ARGS = {"head": {"mode": "topk"}}


@pytest.mark.parametrize("model", ["gps", "graphtrans", "graphormer"])
def test_fine_tuning_starts_from_the_trained_weights(dense_files, cache_root, model):
    """Before any step the prepared model holds the loaded weights, and (dims that start dense) computes
    what the loaded model computes."""
    saved = gtsp.load_model(dense_files[model])
    data = gtsp.load_dataset("MUTAG", model=model, model_args=saved.spec["hparams"], cache_root=str(cache_root))
    batches = eval_batches(data.test, 32)
    loaded_logits, _ = predict(saved.model, batches, torch.device("cpu"))
    every = prune_config(saved.spec, None, 3, dict(EVERY_DIMENSION), {}, {}, {"cache_root": str(cache_root)})
    prepared, _ = build_run_model(every, data.info, saved.model.state_dict(), steps_per_epoch=5)
    state = _backbone_names(prepared.state_dict())
    loaded = saved.model.state_dict()
    assert set(loaded) <= set(state) and all(torch.equal(state[k], v) for k, v in loaded.items())
    dense_start = prune_config(saved.spec, None, 3, dict(START_DENSE), START_DENSE_ARGS, {}, {})
    prepared, sparsifier = build_run_model(dense_start, data.info, saved.model.state_dict(), steps_per_epoch=5)
    assert sparsifier is not None
    assert torch.allclose(predict(prepared, batches, torch.device("cpu"))[0], loaded_logits, atol=1e-6)
    fresh, _ = build_run_model(dense_start, data.info, None, steps_per_epoch=5)  # the check is not vacuous
    assert not torch.allclose(predict(fresh, batches, torch.device("cpu"))[0], loaded_logits, atol=1e-3)


def _backbone_names(state: dict) -> dict:
    """A prepared model's state under the backbone's own names: without the layer wrapper LayerDrop
    adds and with weight pruning's original weights as ``weight``."""
    named = {}
    for key, value in state.items():
        key = re.sub(r"^(layers\.\d+)\.layer\.", r"\1.", key)
        named[key.replace("parametrizations.weight.original", "weight")] = value
    return named


@pytest.mark.parametrize("model", ["gps", "graphtrans", "graphormer"])
def test_pruned_from_trained_compacts_to_the_masked_model(dense_files, cache_root, model):
    result = gtsp.prune(dense_files[model], prune=EVERY_DIMENSION, finetune_epochs=3, batch_size=32,
                        cache_root=str(cache_root))
    record = result.results
    assert record["epochs"] == 3 and record["config"]["warmup_epochs"] == 0
    assert record["start_weights"] == {"backbone": model, "dataset": "MUTAG", "source": str(dense_files[model])}
    assert record["sparsity"] == EVERY_DIMENSION
    data = gtsp.load_dataset("MUTAG", model=model, model_args=TINY, cache_root=str(cache_root))
    batches = eval_batches(data.test, 32)
    masked, _ = predict(result.model, batches, torch.device("cpu"))
    compacted, _ = predict(result.compacted, batches, torch.device("cpu"))
    assert (masked - compacted).abs().max() < 1e-5
    assert record["params"]["compacted"] < record["params"]["dense"]
    assert len(result.compacted.layers) == 1  # layer=0.5 of 2 layers


def test_budget_prunes_a_trained_model(dense_files, cache_root, tmp_path):
    result = gtsp.prune(dense_files["gps"], budget={"flops": 0.6, "trials": 1, "proxy_epochs": 3},
                        finetune_epochs=3, batch_size=32, cache_root=str(cache_root), out=tmp_path / "run")
    budget = result.results["budget"]
    assert budget["chosen"] == result.results["config"]["prune"] and any(budget["chosen"].values())
    proxies = list((tmp_path / "run" / "budget").glob("proxy-*/results.json"))
    assert proxies and all("start_weights" in json.loads(p.read_text()) for p in proxies)


def test_prune_command_writes_a_compacted_model(dense_files, cache_root, tmp_path, capsys):
    out = tmp_path / "pruned"
    code = main(["prune", str(dense_files["gps"]), "--dataset", "MUTAG", "--prune", "head=0.5,layer=0.5",
                 "--finetune-epochs", "3", "--batch-size", "32", "--cache-root", str(cache_root), "--out", str(out),
                 "--quiet"])
    assert code == 0 and str(out / "compacted.safetensors") in capsys.readouterr().out
    pruned = gtsp.load_model(out / "compacted.safetensors")
    assert pruned.spec["plan"] is not None and len(pruned.model.layers) == 1
    # a compacted model is not a starting point: one line says what to give instead
    code = main(["prune", str(out / "compacted.safetensors"), "--prune", "head=0.5", "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "prune the dense model" in err[0]


def test_nothing_to_prune_is_refused(dense_files):
    with pytest.raises(GtspError, match="nothing to prune"):
        gtsp.prune(dense_files["gps"], prune={})


def test_too_few_fine_tuning_epochs_name_the_fine_tuning_flag(dense_files, cache_root):
    with pytest.raises(GtspError, match=r"raise finetune_epochs \(--finetune-epochs\)"):
        gtsp.prune(dense_files["gps"], prune={"head": 0.5, "layer": 0.5}, finetune_epochs=2, batch_size=32,
                   cache_root=str(cache_root))
