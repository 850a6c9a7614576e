import json

import pytest
import torch

from gtsp.config import RunConfig
from gtsp.data.registry import load_dataset
from gtsp.errors import GtspError
from gtsp.models import build_model
from gtsp.train.run import run
from gtsp.train.trainer import Trainer, seed_everything


@pytest.fixture(scope="module")
def mutag(cache_root):
    # MUTAG is embedded in the package: no data root needed
    return load_dataset("MUTAG", cache_root=str(cache_root), features=("rwse",), seed=0)


def make_trainer(data, out, hooks=None, epochs=4):
    seed_everything(0)
    model = build_model("gps", data.info, hidden=32, layers=2, heads=4, dropout=0.1)
    return Trainer(model, data, out, epochs=epochs, batch_size=32, lr=2e-3, weight_decay=1e-5,
                   warmup_epochs=1, grad_clip=5.0, seed=0, hooks=hooks, progress=False)


class Crash:
    """Simulates a kill in the middle of epoch 3."""

    def on_step(self, step):
        if step == 13:  # 5 steps per epoch (150 graphs / 32)
            raise KeyboardInterrupt


def test_resume_gives_the_same_final_result(mutag, tmp_path):
    full_trainer = make_trainer(mutag, tmp_path / "full")
    full = full_trainer.fit()
    with pytest.raises(KeyboardInterrupt):
        make_trainer(mutag, tmp_path / "cut", hooks=Crash()).fit()
    saved = torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=False)
    assert saved["trainer"]["epoch"] == 2
    resumed_trainer = make_trainer(mutag, tmp_path / "cut")
    resumed = resumed_trainer.fit(resume=True)
    timeless = lambda history: [{k: v for k, v in r.items() if k != "epoch_seconds"} for r in history]
    assert timeless(resumed.history) == timeless(full.history)
    assert (resumed.val, resumed.test, resumed.best_epoch) == (full.val, full.test, full.best_epoch)
    for a, b in zip(resumed_trainer.model.state_dict().values(), full_trainer.model.state_dict().values()):
        assert torch.equal(a, b)


def test_nan_loss_stops_with_a_clear_error_and_keeps_the_checkpoint(mutag, tmp_path):
    class Poison:
        def extra_loss(self):
            return torch.tensor(float("nan")) if self.epoch_done else None

        epoch_done = False

        def on_epoch_end(self, epoch):
            self.epoch_done = True

    trainer = make_trainer(mutag, tmp_path, hooks=Poison())
    with pytest.raises(GtspError, match="loss became nan at epoch 2"):
        trainer.fit()
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=False)["trainer"]["epoch"] == 1


def test_run_writes_the_results_contract(cache_root, tmp_path, capsys):
    cfg = RunConfig(dataset="MUTAG", cache_root=str(cache_root), out=str(tmp_path), epochs=3, batch_size=64,
                    model_args={"hidden": 32, "layers": 2, "heads": 4})
    results = run(cfg, progress=False)
    on_disk = json.loads((tmp_path / "results.json").read_text())
    for key in ("dataset", "model", "seed", "epochs", "config", "metric", "params", "flops_per_graph",
                "throughput_graphs_per_s", "train_seconds"):
        assert key in on_disk
    assert on_disk["metric"]["name"] == "accuracy" and 0.0 <= on_disk["metric"]["test"] <= 1.0
    assert on_disk["params"]["dense"] == sum(p.numel() for p in torch.load(tmp_path / "model.pt",
                                                                              weights_only=False).parameters())
    assert on_disk["flops_per_graph"]["dense"] == pytest.approx(on_disk["flops_per_graph"]["flop_counter"], rel=0.01)
    assert on_disk["throughput_graphs_per_s"] > 0
    assert "test accuracy" in capsys.readouterr().out
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(l)["epoch"] for l in lines] == [1, 2, 3]
    assert results["metric"]["test"] == on_disk["metric"]["test"]
