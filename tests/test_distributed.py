"""Data-parallel training (gtsp.train.distributed) with 2 CPU ranks on gloo, on MUTAG.

Ranks are started as fresh processes ("spawn": a forked copy of a process whose thread pools
already ran can deadlock), with the environment torchrun would give them set by hand; the
command-line entry point is the one ``torchrun -m gtsp train`` runs.
"""
from __future__ import annotations

import json
import multiprocessing
import os
import socket
from pathlib import Path

import pytest
import torch

from gtsp import cli
from gtsp.data.registry import GraphDataset, load_dataset
from gtsp.models import build_model
from gtsp.train import distributed, run as run_module
from gtsp.train.trainer import Trainer, seed_everything

BATCH = 16
PRUNED = ["--dataset", "MUTAG", "--model", "gps", "--hidden", "16", "--layers", "2", "--heads", "2",
          "--dropout", "0", "--attn-dropout", "0", "--epochs", "3", "--batch-size", "32", "--warmup-epochs", "1",
          "--prune", "head=0.5,layer=0.5,weight=0.5", "--prune-arg", "head.update_every=2",
          "--prune-arg", "weight.update_every=2", "--prune-arg", "layer.drop_prob=0.2",
          "--device", "cpu", "--quiet"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _rank_main(rank: int, world: int, port: int, target, args) -> None:
    os.environ.update({"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world),
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    target(*args)


def launch(target, *args, world: int = 2) -> list[int]:
    """Run ``target(*args)`` in ``world`` new processes as torchrun would; their exit codes."""
    context = multiprocessing.get_context("spawn")
    port = _free_port()
    ranks = [context.Process(target=_rank_main, args=(r, world, port, target, args)) for r in range(world)]
    for process in ranks:
        process.start()
    for process in ranks:
        process.join(timeout=240)
    for process in ranks:
        if process.is_alive():
            process.kill()
    return [process.exitcode for process in ranks]


@pytest.fixture(scope="module")
def mutag(cache_root):
    return load_dataset("MUTAG", cache_root=str(cache_root), features=("rwse",), seed=0)


# ---- one step: 2 ranks x B/2 graphs == 1 process x B graphs ----------------------------------------
def _one_step(data: GraphDataset, out: Path) -> Trainer:
    seed_everything(0)
    model = build_model("gps", data.info, hidden=16, layers=2, heads=2, dropout=0.0, attn_dropout=0.0)
    trainer = Trainer(model, data, out, epochs=1, batch_size=BATCH, lr=1e-3, weight_decay=0.0, warmup_epochs=0,
                      grad_clip=0.0, seed=0, progress=False)
    trainer.fit()
    return trainer


def _one_step_rank(data: GraphDataset, out: Path) -> None:
    with distributed.session(torch.device("cpu")):
        trainer = _one_step(data, out / f"run{distributed.rank()}")
        torch.save(trainer.model.state_dict(), out / f"rank{distributed.rank()}.pt")


def test_two_ranks_with_half_batches_take_the_step_of_one_process(mutag, tmp_path):
    one_batch = GraphDataset(mutag.info, mutag.train[:BATCH], mutag.valid, mutag.test)
    single_model = _one_step(one_batch, tmp_path / "single").model
    single = single_model.state_dict()
    # Adam moves a parameter by about lr * sign(gradient): where the exact gradient is zero (a bias
    # followed by a norm, a key bias under softmax) the step follows the sign of rounding noise
    grads = {name: p.grad for name, p in single_model.named_parameters() if p.grad is not None}
    assert launch(_one_step_rank, one_batch, tmp_path) == [0, 0]
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    seed_everything(0)
    initial = build_model("gps", mutag.info, hidden=16, layers=2, heads=2, dropout=0.0, attn_dropout=0.0).state_dict()
    moved = 0
    for name, value in single.items():
        assert torch.equal(ranks[0][name], ranks[1][name]), name  # the ranks hold one model
        if value.is_floating_point():
            # batch norm over the global batch, loss weighted by each rank's share: the same step
            real = grads[name].abs() > 1e-5 if name in grads else torch.ones_like(value, dtype=torch.bool)
            torch.testing.assert_close(ranks[0][name][real], value[real], rtol=0, atol=2e-5, msg=name)
            moved += int(not torch.allclose(value, initial[name].to(value.dtype)))
    assert moved > 10  # the step changed the model
    assert not list((tmp_path / "run1").glob("*"))  # rank 1 writes nothing


# ---- a pruned run, killed and resumed --------------------------------------------------------------
def _train_rank(argv: list[str], out: Path, crash_after: int | None = None) -> None:
    """``gtsp train`` on this rank; records which rank wrote results.json, or dies after an epoch."""
    written = run_module.write_results

    def record(path, results):
        (out.parent / f"{out.name}.wrote-results.{distributed.rank()}").touch()
        written(path, results)

    run_module.write_results = record
    if crash_after is not None:
        run_epoch = Trainer._run_epoch

        def then_die(self, epoch):
            record_ = run_epoch(self, epoch)
            if epoch == crash_after:
                os._exit(9)  # as a kill: no cleanup, no metrics line for this epoch
            return record_

        Trainer._run_epoch = then_die
    os._exit(cli.main(["train", *argv, "--out", str(out)]))


def _train(tmp_path: Path, name: str, *extra: str, crash_after: int | None = None, world: int = 2) -> list[int]:
    return launch(_train_rank, [*PRUNED, "--cache-root", str(tmp_path / "cache"), *extra], tmp_path / name,
                  crash_after, world=world)


def _summary(results: dict) -> dict:
    keep = ("val", "test", "test_compacted")
    return {"metric": {k: results["metric"][k] for k in keep}, "best_epoch": results["best_epoch"],
            "sha": results["distributed"]["compacted_sha256"], "plan": results["compaction_plan"]}


def _losses(folder: Path) -> list[tuple]:
    lines = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    return [(r["epoch"], r["loss"], r["val"], r["test"]) for r in lines]


@pytest.fixture(scope="module")
def pruned_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ddp")
    assert _train(tmp, "full") == [0, 0]
    return tmp


def test_pruned_run_compacts_to_one_model_on_both_ranks_and_writes_once(pruned_run):
    results = json.loads((pruned_run / "full" / "results.json").read_text())
    assert results["distributed"] == {"ranks": 2, "backend": "gloo",
                                      "compacted_sha256": results["distributed"]["compacted_sha256"]}
    first, second = results["distributed"]["compacted_sha256"]
    assert first == second
    assert [p.name for p in pruned_run.glob("full.wrote-results.*")] == ["full.wrote-results.0"]
    assert results["compaction_max_abs_diff"] < 1e-5
    kept = results["compaction_plan"]
    assert len(kept["layer"]["kept"]) == 1 and all(len(h) == 1 for h in kept["head"]["kept"])
    assert len(_losses(pruned_run / "full")) == 3


def test_killed_run_resumes_to_the_result_of_an_uninterrupted_one(pruned_run):
    assert _train(pruned_run, "killed", crash_after=2) == [9, 9]
    assert not (pruned_run / "killed" / "results.json").exists()
    assert _train(pruned_run, "killed", "--resume") == [0, 0]
    full = json.loads((pruned_run / "full" / "results.json").read_text())
    resumed = json.loads((pruned_run / "killed" / "results.json").read_text())
    assert resumed["resumes"][0]["after_epoch"] == 2
    assert _summary(resumed) == _summary(full)
    assert _losses(pruned_run / "killed") == _losses(pruned_run / "full")


def test_two_rank_checkpoint_resumes_in_one_process(pruned_run):
    assert _train(pruned_run, "regrouped", crash_after=1) == [9, 9]
    assert _train(pruned_run, "regrouped", "--resume", world=1) == [0]
    resumed = json.loads((pruned_run / "regrouped" / "results.json").read_text())
    assert resumed["distributed"]["ranks"] == 1 and resumed["resumes"][0]["after_epoch"] == 1
    assert [r[0] for r in _losses(pruned_run / "regrouped")] == [1, 2, 3]
    # the same batches and the same step in one process: the epoch after the resume matches closely
    full_epoch2, resumed_epoch2 = _losses(pruned_run / "full")[1], _losses(pruned_run / "regrouped")[1]
    assert resumed_epoch2[1] == pytest.approx(full_epoch2[1], rel=1e-3)
