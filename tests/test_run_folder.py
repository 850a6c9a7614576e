"""Run folders: refused when taken, cleared exactly, locked, written atomically, with a checkpoint fallback."""
import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest
import torch

from gtsp.cli import main
from gtsp.config import RunConfig
from gtsp.errors import GtspError
from gtsp.train.run import run
from gtsp.train.run_folder import (ARTEFACTS, CHECKPOINT, LOCK, PREVIOUS, RunFolder, atomic_write, atomic_write_text,
                                   load_checkpoint, save_checkpoint)


def tiny_run(cache_root, out, **overrides) -> RunConfig:
    return RunConfig(**{"dataset": "MUTAG", "cache_root": str(cache_root), "out": str(out), "epochs": 2,
                        "batch_size": 64, "model_args": {"hidden": 16, "layers": 1, "heads": 2}, **overrides})


def snapshot(folder) -> dict:
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def test_a_finished_run_is_not_replaced_without_resume_or_overwrite(cache_root, tmp_path, capsys):
    out = tmp_path / "run"
    run(tiny_run(cache_root, out), progress=False)
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith(f"run folder {out}: checkpoint.prev.pt, ")
    before = snapshot(out)
    code = main(["train", "--dataset", "MUTAG", "--epochs", "1", "--cache-root", str(cache_root), "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert f"--out {out} already holds a run (" in err[0] and "--resume" in err[0] and "--overwrite" in err[0]
    assert snapshot(out) == before


def test_overwrite_removes_exactly_the_files_gtsp_writes(cache_root, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    left_by_pruned_run = ["compacted.safetensors", "compacted.safetensors.json", "masked_state.pt", "compacted.pt",
                          "results.json", ".checkpoint.pt.k2j4.tmp"]
    for name in left_by_pruned_run + ["notes.txt", "my.tmp", "model.pt.bak"]:
        (out / name).write_text("x")
    run(tiny_run(cache_root, out, overwrite=True), progress=False)
    names = {p.name for p in out.iterdir()}
    assert names - set(ARTEFACTS) == {"notes.txt", "my.tmp", "model.pt.bak"}  # not gtsp's: kept
    assert not names & (set(left_by_pruned_run) - {"results.json"})  # a dense run leaves no pruned files
    assert {"checkpoint.pt", "checkpoint.prev.pt", "metrics.jsonl", "results.json"} <= names
    assert json.loads((out / "results.json").read_text())["sparsity"]["head"] == 0.0
    assert [json.loads(line)["epoch"] for line in (out / "metrics.jsonl").read_text().splitlines()] == [1, 2]


def test_a_folder_with_other_files_is_refused(tmp_path):
    (tmp_path / "data.csv").write_text("x")
    with pytest.raises(GtspError, match=r"is not empty \(data.csv\): choose a new or empty folder"):
        RunFolder(tmp_path).__enter__()
    with pytest.raises(GtspError, match="contradict"):
        RunFolder(tmp_path, resume=True, overwrite=True)
    (tmp_path / "file").write_text("x")
    with pytest.raises(GtspError, match="is a file"):
        RunFolder(tmp_path / "file").__enter__()


HOLDER = textwrap.dedent("""
    import sys, time
    from gtsp.train.run_folder import RunFolder
    with RunFolder(sys.argv[1]):
        print("locked", flush=True)
        time.sleep(60)
""")


@pytest.fixture
def holder(tmp_path):
    """Another process holding the lock of tmp_path/run."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path / "run")], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    yield proc
    proc.kill()
    proc.wait()


def test_a_second_process_is_kept_out_naming_the_holder(holder, tmp_path, capsys, cache_root):
    code = main(["train", "--dataset", "MUTAG", "--epochs", "1", "--cache-root", str(cache_root),
                 "--out", str(tmp_path / "run"), "--resume"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert f"is in use by pid {holder.pid} on " in err[0] and "choose another --out" in err[0]
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


def test_a_lock_left_by_a_killed_process_does_not_block(holder, tmp_path):
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert (tmp_path / "run" / LOCK).exists()  # the file stays; the kernel released the lock
    with RunFolder(tmp_path / "run") as folder:
        assert json.loads((tmp_path / "run" / LOCK).read_text())["pid"] == os.getpid()
        assert folder.contents() == []
    assert not (tmp_path / "run" / LOCK).exists()


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "results.json"
    atomic_write_text(target, "old")

    class Boom(Exception):
        pass

    def write_half_then_fail(handle):
        handle.write(b"{\"half\": ")
        raise Boom

    with pytest.raises(Boom):
        atomic_write(target, write_half_then_fail)
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["results.json"]


def fake_state(epoch: int) -> dict:
    return {"model": {}, "optimizer": {}, "scheduler": {}, "trainer": {"epoch": epoch}, "rng": {}}


def test_the_previous_checkpoint_is_kept_and_used_when_the_latest_is_corrupt(tmp_path, caplog):
    save_checkpoint(tmp_path, fake_state(1))
    save_checkpoint(tmp_path, fake_state(2))
    assert torch.load(tmp_path / PREVIOUS, weights_only=True)["trainer"]["epoch"] == 1
    assert load_checkpoint(tmp_path)["trainer"]["epoch"] == 2
    assert load_checkpoint(tmp_path)["loaded_from"] == str(tmp_path / CHECKPOINT)
    data = (tmp_path / CHECKPOINT).read_bytes()
    (tmp_path / CHECKPOINT).write_bytes(data[: len(data) // 2])  # truncated, as by a full disk
    state = load_checkpoint(tmp_path)
    assert state["trainer"]["epoch"] == 1 and state["loaded_from"] == str(tmp_path / PREVIOUS)  # the resume log names it
    assert "is unreadable" in caplog.text and "continuing from" in caplog.text and PREVIOUS in caplog.text
    assert not (tmp_path / CHECKPOINT).exists()  # the unreadable file never becomes the fallback


def test_no_readable_checkpoint_is_a_clear_error(tmp_path):
    (tmp_path / CHECKPOINT).write_bytes(b"not a checkpoint")
    with pytest.raises(GtspError, match=r"checkpoint.pt is unreadable .* start the run again with --overwrite"):
        load_checkpoint(tmp_path)
    torch.save({"model": {}}, tmp_path / CHECKPOINT)
    with pytest.raises(GtspError, match="is not a gtsp checkpoint"):
        load_checkpoint(tmp_path)
    (tmp_path / "empty").mkdir()
    assert load_checkpoint(tmp_path / "empty") is None


class RunsCodeWhenUnpickled:
    """An object whose unpickling would create a file: the trace of code run by ``torch.load``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_checkpoint_holding_code_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "code-ran"
    torch.save({**fake_state(1), "extra": RunsCodeWhenUnpickled(marker)}, tmp_path / CHECKPOINT)
    with pytest.raises(GtspError, match="holds Python objects other than tensors .* could run code"):
        load_checkpoint(tmp_path)
    assert not marker.exists()


def test_a_real_checkpoint_loads_with_pickle_code_disabled(tmp_path, cache_root):
    run(tiny_run(cache_root, tmp_path / "run", epochs=1, prune={"weight": 0.5, "head": 0.5}), progress=False)
    state = torch.load(tmp_path / "run" / CHECKPOINT, weights_only=True)  # raises on any non-plain object
    assert state["trainer"]["epoch"] == 1 and state["rng"]["numpy"]["state"]["key"].numel() == 624


def test_resume_does_not_restart_over_finished_results(tmp_path, cache_root, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "results.json").write_text("{}")
    code = main(["train", "--dataset", "MUTAG", "--epochs", "1", "--cache-root", str(cache_root),
                 "--out", str(out), "--resume"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and "holds results.json but no checkpoint" in err[0]
    assert (out / "results.json").read_text() == "{}"


def test_artefacts_name_every_file_a_run_writes(cache_root, tmp_path):
    out = tmp_path / "run"
    run(tiny_run(cache_root, out, prune={"head": 0.5}), progress=False)
    assert {p.name for p in out.iterdir()} <= set(ARTEFACTS)
