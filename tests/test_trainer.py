import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch_geometric.data import Batch

from gtsp.config import RunConfig
from gtsp.data.batching import train_loader
from gtsp.data.registry import load_dataset
from gtsp.errors import GtspError
from gtsp.models import build_model
from gtsp.provenance import split_hash
from gtsp.train.run import run
from gtsp.train.run_folder import CHECKPOINT
from gtsp.train.schedule import warmup_cosine
from gtsp.train.trainer import Trainer, seed_everything


@pytest.fixture(scope="module")
def mutag(cache_root):
    # MUTAG is embedded in the package: no data root needed
    return load_dataset("MUTAG", cache_root=str(cache_root), features=("rwse",), seed=0)


def make_trainer(data, out, hooks=None, epochs=4, lr=2e-3):
    seed_everything(0)
    model = build_model("gps", data.info, hidden=32, layers=2, heads=4, dropout=0.1)
    return Trainer(model, data, out, epochs=epochs, batch_size=32, lr=lr, weight_decay=1e-5,
                   warmup_epochs=1, grad_clip=5.0, seed=0, hooks=hooks, progress=False)


class Crash:
    """Simulates a kill at a given step (5 steps per epoch: 150 graphs / 32)."""

    def __init__(self, step=13):
        self.at = step

    def on_step(self, step):
        if step == self.at:
            raise KeyboardInterrupt


def record_training_batches(trainer):
    """The labels and sizes of every batch the model trains on, in order."""
    seen = []

    def pre_hook(module, args):
        if module.training:
            seen.append((tuple(args[0].y.tolist()), args[0].num_nodes))

    trainer.model.register_forward_pre_hook(pre_hook)
    return seen


def timeless(history):
    return [{k: v for k, v in r.items() if k != "epoch_seconds"} for r in history]


def metric_epochs(out):
    return [json.loads(line)["epoch"] for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_resume_gives_the_same_final_result(mutag, tmp_path):
    full_trainer = make_trainer(mutag, tmp_path / "full")
    full_batches = record_training_batches(full_trainer)
    full = full_trainer.fit()
    with pytest.raises(KeyboardInterrupt):
        make_trainer(mutag, tmp_path / "cut", hooks=Crash()).fit()
    saved = torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)
    assert saved["trainer"]["epoch"] == 2
    resumed_trainer = make_trainer(mutag, tmp_path / "cut")
    resumed_batches = record_training_batches(resumed_trainer)
    resumed = resumed_trainer.fit(resume=True)
    assert resumed_batches == full_batches[10:]  # the sampler gives epochs 3-4 the very same batches
    assert timeless(resumed.history) == timeless(full.history)
    assert (resumed.val, resumed.test, resumed.best_epoch) == (full.val, full.test, full.best_epoch)
    for a, b in zip(resumed_trainer.model.state_dict().values(), full_trainer.model.state_dict().values()):
        assert torch.equal(a, b)
    assert metric_epochs(tmp_path / "cut") == [1, 2, 3, 4]


def test_a_corrupt_checkpoint_falls_back_to_the_previous_one_and_still_reproduces_the_run(mutag, tmp_path, caplog):
    full = make_trainer(mutag, tmp_path / "full").fit()
    with pytest.raises(KeyboardInterrupt):
        make_trainer(mutag, tmp_path / "cut", hooks=Crash(step=18)).fit()  # in epoch 4
    cut = tmp_path / "cut"
    assert metric_epochs(cut) == [1, 2, 3]
    data = (cut / CHECKPOINT).read_bytes()
    (cut / CHECKPOINT).write_bytes(data[:1000])
    trainer = make_trainer(mutag, cut)
    resumed = trainer.fit(resume=True)
    assert "continuing from" in caplog.text and "after epoch 2" in caplog.text
    assert metric_epochs(cut) == [1, 2, 3, 4]  # epoch 3 trained again, logged once
    assert timeless(resumed.history) == timeless(full.history)
    assert (resumed.val, resumed.test, resumed.best_epoch) == (full.val, full.test, full.best_epoch)


def test_nan_loss_stops_with_a_clear_error_and_keeps_the_checkpoint(mutag, tmp_path):
    class Poison:
        def extra_loss(self):
            return torch.tensor(float("nan")) if self.epoch_done else None

        epoch_done = False

        def on_epoch_end(self, epoch):
            self.epoch_done = True

    trainer = make_trainer(mutag, tmp_path, hooks=Poison())
    with pytest.raises(GtspError) as err:
        trainer.fit()
    message = str(err.value)
    assert message.startswith("the loss became nan at epoch 2, step 5: lower --lr or set a smaller --grad-clip (now 5)")
    assert "raise" not in message and f"{tmp_path / CHECKPOINT} (after epoch 1)" in message and "--resume" in message
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=True)["trainer"]["epoch"] == 1


def test_learning_rate_warms_up_linearly_then_follows_a_half_cosine_to_zero():
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    scheduler = warmup_cosine(optimizer, warmup_steps=4, total_steps=12)
    used = []
    for _ in range(14):
        used.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    expected = {0: 0.025, 1: 0.05, 3: 0.1, 4: 0.1, 8: 0.05, 10: 0.05 * (1 - math.sqrt(0.5)), 12: 0.0, 13: 0.0}
    for step, lr in expected.items():
        assert used[step] == pytest.approx(lr, abs=1e-12), step


def test_training_batches_depend_only_on_seed_and_epoch(mutag):
    def batches(seed, epoch):
        loader = train_loader(mutag.train, 32, seed)
        loader.batch_sampler.set_epoch(epoch)
        return list(loader.batch_sampler)

    first = batches(0, 3)
    assert first == batches(0, 3)  # a fresh loader (as after a resume) repeats an epoch exactly
    assert sorted(i for b in first for i in b) == list(range(len(mutag.train)))
    assert first != batches(0, 4) and first != batches(1, 3)


def test_ties_on_the_validation_metric_go_to_the_lower_loss_then_the_later_epoch(mutag, tmp_path, monkeypatch):
    trainer = make_trainer(mutag, tmp_path, epochs=5)
    # (val metric, val loss) per epoch: the metric ties at 1.0 from epoch 1 on
    script = iter([(1.0, 0.6), (1.0, 0.3), (1.0, 0.3), (0.9, 0.1), (1.0, 0.4)])
    evaluations = []

    def scripted(batches_and_order):
        if batches_and_order is trainer.valid_batches:
            evaluations.append(next(script))
            return evaluations[-1]
        return 0.5, 1.0

    monkeypatch.setattr(trainer, "evaluate", scripted)
    monkeypatch.setattr(trainer, "_train_one_epoch", lambda epoch: (0.0, 0.0))
    result = trainer.fit()
    assert [r["best_epoch"] for r in result.history] == [1, 2, 3, 3, 3]
    assert [r["val_loss"] for r in result.history] == [0.6, 0.3, 0.3, 0.1, 0.4]


def test_train_metric_and_val_loss_are_what_the_model_produced(mutag, tmp_path):
    trainer = make_trainer(mutag, tmp_path, epochs=2)
    outputs = []
    trainer.model.register_forward_hook(
        lambda module, args, out: outputs.append((out.detach(), args[0].y)) if module.training else None)
    history = trainer.fit().history
    per_epoch = len(trainer.loader)
    for epoch, record in enumerate(history):
        logits, labels = (torch.cat(t) for t in zip(*outputs[epoch * per_epoch:(epoch + 1) * per_epoch]))
        assert record["train_metric"] == pytest.approx(float((logits.argmax(-1) == labels).float().mean()))
    # the last checkpoint holds the model after the last epoch: its validation cross-entropy is logged
    model = build_model("gps", mutag.info, hidden=32, layers=2, heads=4, dropout=0.1)
    model.load_state_dict(torch.load(tmp_path / CHECKPOINT, weights_only=True)["model"])
    model.eval()
    with torch.no_grad():
        batch = Batch.from_data_list(mutag.valid)
        loss = F.cross_entropy(model(batch), batch.y.view(-1))
    assert history[-1]["val_loss"] == pytest.approx(float(loss), rel=1e-5)


def small_config(cache_root, out, **overrides):
    return RunConfig(**{"dataset": "MUTAG", "cache_root": str(cache_root), "out": str(out), "epochs": 3,
                        "batch_size": 64, "model_args": {"hidden": 32, "layers": 2, "heads": 4}, **overrides})


def test_run_writes_the_results_contract(cache_root, tmp_path, capsys, mutag):
    results = run(small_config(cache_root, tmp_path), progress=False)
    on_disk = json.loads((tmp_path / "results.json").read_text())
    for key in ("dataset", "model", "seed", "epochs", "config", "metric", "params", "flops_per_graph",
                "throughput_graphs_per_s", "train_seconds", "provenance"):
        assert key in on_disk
    assert on_disk["metric"]["name"] == "accuracy" and 0.0 <= on_disk["metric"]["test"] <= 1.0
    rebuilt = build_model("gps", mutag.info, hidden=32, layers=2, heads=4)
    assert on_disk["params"]["dense"] == sum(p.numel() for p in rebuilt.parameters())
    assert on_disk["flops_per_graph"]["dense"] == pytest.approx(on_disk["flops_per_graph"]["flop_counter"], rel=0.01)
    assert on_disk["throughput_graphs_per_s"] > 0
    out = capsys.readouterr().out
    assert "test accuracy" in out and out.strip().splitlines()[-1].startswith(f"run folder {tmp_path}: ")
    assert metric_epochs(tmp_path) == [1, 2, 3]
    assert results["metric"]["test"] == on_disk["metric"]["test"]
    assert on_disk["provenance"]["split_sha256"] == split_hash(mutag.split)
    checkpoint = torch.load(tmp_path / CHECKPOINT, weights_only=True)
    assert checkpoint["run"]["config"] == on_disk["config"] and checkpoint["run"]["provenance"] == on_disk["provenance"]


def test_a_resume_with_a_new_lr_trains_with_it_and_records_it(cache_root, tmp_path):
    run(small_config(cache_root, tmp_path, epochs=2, warmup_epochs=1), progress=False)
    results = run(small_config(cache_root, tmp_path, epochs=4, warmup_epochs=1, lr=0.01, resume=True), progress=False)
    assert results["config"]["lr"] == 0.01 and results["config"]["epochs"] == 4
    assert results["resumes"][0]["after_epoch"] == 2
    assert results["resumes"][0]["changed"] == {"epochs": [2, 4], "lr": [0.001, 0.01]}
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [1, 2, 3, 4]
    # 3 steps per epoch (150 graphs / 64), warm-up 3 steps, 12 in all: after epoch 3 the step is 9
    assert lines[2]["lr"] == pytest.approx(0.01 * 0.5 * (1 + math.cos(math.pi * 6 / 9)))
    assert lines[3]["lr"] == pytest.approx(0.0, abs=1e-12)
