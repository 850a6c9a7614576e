"""``gtsp sweep``: grid expansion, checks, and real tiny MUTAG runs killed, resumed and shared by workers."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gtsp.cli import main
from gtsp.errors import GtspError
from gtsp.sweep.claim import Claim
from gtsp.sweep.grid import expand
from gtsp.sweep.spec import load_sweep

TINY = {"dataset": "MUTAG", "epochs": 2, "model_args": {"hidden": 16, "layers": 1}, "threads": 1}


def write_sweep(path: Path, grid, base=None, **top) -> Path:
    path.write_text(json.dumps({"base": base if base is not None else TINY, "grid": grid, **top}))
    return path  # JSON is YAML


def sweep_env(cache_root: Path) -> dict[str, str]:
    """The session's processed-data cache, so MUTAG is processed once for all these runs."""
    return {**os.environ, "GTSP_CACHE": str(cache_root), "OMP_NUM_THREADS": "1"}


def attempts(run_dir: Path) -> int:
    """How many times a point's training was started (one header line per attempt in train.log)."""
    return sum(line.startswith("# attempt by ") for line in (run_dir / "train.log").read_text().splitlines())


def test_grid_names_values_and_configs(tmp_path):
    base_cfg = tmp_path / "base.yaml"
    base_cfg.write_text("epochs: 7\nmodel_args: {hidden: 32, heads: 4}\n")
    sweep = write_sweep(tmp_path / "s.yaml", [
        {"prune.head": [0, 0.5], "model_args.hidden": [16], "seed": ["0..1"]},
        {"prune": [{"layer": 0.25, "token": 0.5}], "prune_args.layer.criterion": ["cka"], "folds": [10], "fold": [3]},
    ], base={"config": "base.yaml", "lr": 0.01}, out="runs/x")
    points = expand(load_sweep(sweep))
    assert [p.name for p in points] == [
        "head-0_hidden-16_seed-0", "head-0_hidden-16_seed-1", "head-0.5_hidden-16_seed-0",
        "head-0.5_hidden-16_seed-1", "prune-layer=0.25+token=0.5_criterion-cka_folds-10_fold-3"]
    first, last = points[2].config, points[4].config
    # config: file, then base:, then the axis values; dotted axes merge, whole-dict axes replace
    assert (first["epochs"], first["lr"], first["seed"]) == (7, 0.01, 0)
    assert first["model_args"] == {"hidden": 16, "heads": 4} and first["prune"] == {"head": 0.5}
    assert last["prune"] == {"layer": 0.25, "token": 0.5} and (last["folds"], last["fold"]) == (10, 3)
    assert last["prune_args"] == {"layer": {"criterion": "cka"}}
    assert "out" not in first and "resume" not in first
    assert [p.index for p in points] == list(range(5))


@pytest.mark.parametrize("doc, message", [
    ({"base": {"epochs": 2}, "grid": {"seed": [0]}, "out": "o", "worker": 3}, "unknown keys ['worker']"),
    ({"base": {"learning_rate": 0.1}, "grid": {"seed": [0]}, "out": "o"}, "base has unknown fields ['learning_rate']"),
    ({"grid": {"sed": [0, 1]}, "out": "o"}, "grid has unknown fields ['sed']"),
    ({"grid": {"seed": []}, "out": "o"}, "grid axis seed is empty"),
    ({"grid": {"seed": 3}, "out": "o"}, "grid axis seed must be a list of values"),
    ({"grid": {}, "out": "o"}, "grid: is missing or empty"),
    ({"grid": {"seed.x": [1]}, "out": "o"}, "only ['model_args', 'prune', 'prune_args', 'budget'] have keys inside"),
    ({"grid": {"prune": [0.5]}, "out": "o"}, "grid axis prune takes whole mappings"),
    ({"grid": {"prune": [{}], "prune.head": [0.5]}, "out": "o"}, "grid axes prune and prune.head overlap"),
    ({"grid": {"seed": [1, 1]}, "out": "o"}, "grid axis seed repeats a value"),
    ({"grid": {"seed": [0]}, "out": "o", "base": {"out": "x"}}, "base sets ['out'], which the sweep sets itself"),
    ({"grid": {"seed": [0]}}, "names no output folder"),
    ({"grid": {"seed": ["0..100000000"]}, "out": "o"},
     "grid axis seed: the range '0..100000000' has 100,000,001 values, over the limit of 10,000 per axis"),
    ({"grid": {"seed": ["0..9999"], "fold": ["0..9999"]}, "out": "o"},
     "the grid has 100,000,000 points, over the limit of 100,000"),
    ({"grid": {"model_args.heads": [3]}, "out": "o", "base": {"model_args": {"hidden": 16}}},
     "point heads-3: 3 attention heads do not divide the hidden size 16"),
])
def test_bad_sweep_files_get_one_clear_line(tmp_path, capsys, doc, message):
    path = tmp_path / "bad.yaml"
    path.write_text(json.dumps(doc))
    with pytest.raises(GtspError, match=message.replace("[", r"\[").replace("]", r"\]")):
        expand(load_sweep(path))
    assert main(["sweep", str(path), "--dry-run"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("gtsp: error: sweep file") and message in err[0]


def test_dry_run_lists_points_and_runs_nothing(tmp_path, capsys):
    sweep = write_sweep(tmp_path / "s.yaml", [{"prune.head": [0, 0.5], "seed": [0, 1]},
                                              {"model_args.attention": [False], "seed": [0]}])
    out = tmp_path / "runs"
    (out / "head-0.5_seed-1").mkdir(parents=True)
    (out / "head-0.5_seed-1" / "results.json").write_text("{}")
    assert main(["sweep", str(sweep), "--out", str(out), "--dry-run"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == f"sweep s: 5 points in {out} (axes: prune.head, seed, model_args.attention)"
    assert [line.split()[:3] for line in lines[1:]] == [
        ["0", "head-0_seed-0", "todo"], ["1", "head-0_seed-1", "todo"], ["2", "head-0.5_seed-0", "todo"],
        ["3", "head-0.5_seed-1", "done"], ["4", "attention-false_seed-0", "todo"]]
    assert lines[5].endswith("model_args.attention=false, seed=0")
    assert sorted(p.name for p in out.iterdir()) == ["head-0.5_seed-1"]  # no storage, no folders


def test_a_point_claimed_by_another_process_is_not_run(tmp_path):
    from gtsp.sweep.study import open_sweep
    from gtsp.sweep.worker import Attempt, _objective

    spec = load_sweep(write_sweep(tmp_path / "s.yaml", {"seed": [0]}, out=str(tmp_path / "runs")))
    sweep = open_sweep(spec, expand(spec), str(tmp_path / "runs" / "sweep.journal"))
    holder = Claim(tmp_path / "runs" / "seed-0")
    assert holder.acquire()
    attempt = Attempt()
    sweep.study.optimize(lambda trial: _objective(sweep, trial, attempt), n_trials=1)
    holder.release()
    trial = sweep.study.trials[-1]
    assert trial.state.name == "PRUNED" and trial.user_attrs["skipped"] == "another worker runs this point"
    assert attempt.outcome is None and not (tmp_path / "runs" / "seed-0" / "train.log").exists()


def test_killed_sweep_resumes_without_rerunning_finished_points(tmp_path, cache_root):
    """Kill the whole process group while the second point trains; a restart finishes only what is left."""
    out = tmp_path / "runs"
    base = {**TINY, "epochs": 12}
    sweep = write_sweep(tmp_path / "s.yaml", {"seed": [0, 1]}, base=base, out=str(out))
    cmd = [sys.executable, "-m", "gtsp", "sweep", str(sweep)]
    proc = subprocess.Popen(cmd, env=sweep_env(cache_root), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    runs = [out / f"seed-{s}" for s in range(2)]
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:  # one point finished, another one part way through its epochs
        done = [r for r in runs if (r / "results.json").is_file()]
        busy = [r for r in runs if r not in done and (r / "metrics.jsonl").is_file()
                and len((r / "metrics.jsonl").read_text().splitlines()) >= 2]
        if len(done) == 1 and busy:
            break
        assert proc.poll() is None, "the sweep ended before it could be killed"
        time.sleep(0.05)
    else:
        pytest.fail("no point reached the middle of its training in time")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    finished, killed = done[0], busy[0]
    assert (finished, killed) == (runs[0], runs[1])  # points run in the sweep file's order
    assert not (killed / "results.json").exists()
    mtime = (finished / "results.json").stat().st_mtime_ns
    epochs_before = len((killed / "metrics.jsonl").read_text().splitlines())

    second = subprocess.run(cmd, env=sweep_env(cache_root), capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr
    assert all((r / "results.json").is_file() for r in runs)
    assert (finished / "results.json").stat().st_mtime_ns == mtime and attempts(finished) == 1
    assert attempts(killed) == 2
    epochs = [json.loads(line)["epoch"] for line in (killed / "metrics.jsonl").read_text().splitlines()]
    assert epochs[0] == 1 and epochs[-1] == 12 and len(epochs) == 12 >= epochs_before  # resumed, not restarted
    assert "sweep finished: 2 done, 0 failed of 2" in second.stdout

    third = subprocess.run(cmd, env=sweep_env(cache_root), capture_output=True, text=True, timeout=120)
    assert third.returncode == 0 and "2 done" in third.stdout and " done, test " not in third.stdout
    assert (attempts(finished), attempts(killed)) == (1, 2)  # nothing ran again


def test_two_workers_split_the_grid_and_a_bad_point_fails_once(tmp_path, cache_root):
    out = tmp_path / "runs"
    sweep = write_sweep(tmp_path / "s.yaml", [{"seed": [0, 1]}, {"dataset": ["nosuch"]}], out=str(out))
    cmd = [sys.executable, "-m", "gtsp", "sweep", str(sweep), "--workers", "2"]
    first = subprocess.run(cmd, env=sweep_env(cache_root), capture_output=True, text=True, timeout=300)
    assert first.returncode == 2
    assert "1 of 3 points failed (dataset-nosuch: unknown dataset 'nosuch'" in first.stderr
    assert "fix the cause, then rerun with --retry-failed" in first.stderr
    runs = {m: out / m for m in ("seed-0", "seed-1", "dataset-nosuch")}
    assert [attempts(r) for r in runs.values()] == [1, 1, 1]
    assert (runs["seed-0"] / "results.json").is_file() and (runs["seed-1"] / "results.json").is_file()
    workers = {line.split()[1] for line in first.stdout.splitlines() if " done, test " in line or "FAILED" in line}
    assert workers == {"worker1", "worker2"}, first.stdout

    from gtsp.sweep.study import open_sweep

    spec = load_sweep(sweep)
    trials = open_sweep(spec, expand(spec), str(out / "sweep.journal")).study.trials
    ran = [t for t in trials if "worker" in t.user_attrs]
    assert sorted(t.params["point"] for t in ran) == [0, 1, 2]  # each point trained exactly once
    assert len({t.user_attrs["worker"] for t in ran}) == 2
    failed = [t for t in ran if t.state.name == "FAIL"]
    assert [t.user_attrs["outcome"] for t in failed] == ["gtsp-error"]
    assert failed[0].user_attrs["error"].startswith("gtsp: error: unknown dataset 'nosuch'")

    again = subprocess.run(cmd[:-2], env=sweep_env(cache_root), capture_output=True, text=True, timeout=120)
    assert again.returncode == 2 and [attempts(r) for r in runs.values()] == [1, 1, 1]  # not retried
