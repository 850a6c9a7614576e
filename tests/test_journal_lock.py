"""The Optuna journal lock: a stale one (left by a killed process) never hangs a sweep or a budget search."""
from __future__ import annotations

import logging
import os
import re
import time

import optuna
import pytest

from gtsp.errors import GtspError
from gtsp.sweep import journal
from gtsp.sweep.study import open_storage


def _open_and_write(path) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(study_name="s", storage=open_storage(str(path)), load_if_exists=True)
    study.set_user_attr("written", True)
    return study


def test_a_dangling_lock_left_by_a_killed_process_is_removed_and_said(tmp_path, monkeypatch, caplog):
    """The hang reported: a relative lock symlink that dangles; a relative journal path opened from another folder."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "b").mkdir(parents=True)
    journal_file = tmp_path / "runs" / "b" / "search.journal"
    os.symlink("runs/b/search.journal", f"{journal_file}.lock")  # as Optuna made it from a relative path
    start = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="gtsp.journal"):
        study = _open_and_write("runs/b/search.journal")
    assert time.monotonic() - start < journal.DANGLING_STALE_S + 3
    assert study.user_attrs["written"] is True
    assert not os.path.lexists(f"{journal_file}.lock")  # released after the write
    said = caplog.text
    assert "waiting for the journal lock" in said and str(journal_file) + ".lock" in said
    assert "removed the journal lock" in said and "missing file" in said


def test_the_lock_links_to_the_absolute_journal_while_held(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    lock = journal.JournalLock("j.journal")
    lock.acquire()
    assert os.readlink(tmp_path / "j.journal.lock") == str(tmp_path / "j.journal")
    lock.release()
    assert not os.path.lexists(tmp_path / "j.journal.lock")


def test_an_old_lock_is_removed_at_once_a_fresh_live_one_is_waited_for(tmp_path, monkeypatch):
    journal_file = tmp_path / "j.journal"
    journal_file.touch()
    lock_path = f"{journal_file}.lock"
    os.symlink(str(journal_file), lock_path)
    old = time.time() - journal.STALE_S - 5
    os.utime(lock_path, (old, old), follow_symlinks=False)
    start = time.monotonic()
    _open_and_write(journal_file)
    assert time.monotonic() - start < 2

    # a fresh lock (another process appending right now) is waited for, and the wait is bounded
    os.symlink(str(journal_file), lock_path)
    monkeypatch.setattr(journal, "MAX_WAIT_S", 1.5)
    start = time.monotonic()
    with pytest.raises(GtspError, match=re.escape(f"journal lock {lock_path} has been held")) as err:
        journal.JournalLock(journal_file).acquire()
    assert f"(rm {lock_path})" in str(err.value)
    assert 1.5 <= time.monotonic() - start < 4
    assert os.path.lexists(lock_path)  # a live holder's lock is never taken away


def _sweep(tmp_path):
    import json

    from gtsp.sweep.grid import expand
    from gtsp.sweep.spec import load_sweep
    from gtsp.sweep.study import open_sweep

    sweep_file = tmp_path / "s.yaml"
    sweep_file.write_text(json.dumps({"base": {"epochs": 2}, "grid": {"seed": [0, 1]}, "out": str(tmp_path / "runs")}))
    spec = load_sweep(sweep_file)
    return lambda: open_sweep(spec, expand(spec), str(tmp_path / "runs" / "sweep.journal"))


def test_a_journal_cut_mid_record_loses_only_that_record(tmp_path, caplog):
    open_sweep = _sweep(tmp_path)
    sweep = open_sweep()
    sweep.study.set_user_attr("kept", 1)
    journal_file = tmp_path / "runs" / "sweep.journal"
    whole = journal_file.read_bytes()
    journal_file.write_bytes(whole + b'{"op_code": 9, "worker_id": "x", "study_id": 0, "user_at')  # killed mid-write
    with caplog.at_level(logging.WARNING, logger="gtsp.journal"):
        again = open_sweep()  # Optuna alone fails here: "AssertionError: Should not reach."
    assert "incomplete record" in caplog.text and str(journal_file) in caplog.text
    assert journal_file.read_bytes().startswith(whole) and journal_file.read_bytes().endswith(b"\n")
    assert again.study.user_attrs["kept"] == 1 and again.study.user_attrs["points"] == ["seed-0", "seed-1"]


def test_a_journal_with_a_broken_record_inside_is_refused_with_the_fix(tmp_path):
    open_sweep = _sweep(tmp_path)
    open_sweep().study.set_user_attr("kept", 1)
    journal_file = tmp_path / "runs" / "sweep.journal"
    lines = journal_file.read_bytes().splitlines(keepends=True)
    journal_file.write_bytes(b"".join([lines[0], b'{"op_code": 0, "stu\n', *lines[1:]]))  # a record cut short
    with pytest.raises(GtspError, match="is damaged") as err:
        open_sweep()
    assert f"mv {journal_file} {journal_file}.damaged" in str(err.value)


def test_a_lock_that_is_a_folder_is_named_not_waited_on_forever(tmp_path):
    journal_file = tmp_path / "j.journal"
    lock_path = tmp_path / "j.journal.lock"
    lock_path.mkdir()
    old = time.time() - journal.STALE_S - 5
    os.utime(lock_path, (old, old))
    with pytest.raises(GtspError, match=re.escape(f"rm -r {lock_path}")):
        journal.JournalLock(journal_file).acquire()
