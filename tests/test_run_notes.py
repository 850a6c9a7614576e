"""What a run says about surprising settings and outcomes: warm-up, an early best epoch, --select-from, --version."""
from __future__ import annotations

import json
import logging

import pytest

from gtsp.cli import main
from gtsp.train.notes import early_best_note, warmup_note


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.startswith("gtsp 0.")


def test_a_warm_up_longer_than_the_run_is_said():
    assert warmup_note(30, 5) is None and warmup_note(5, 5) is None
    note = warmup_note(3, 5)
    assert "--warmup-epochs 5 is more than --epochs 3" in note and "60%" in note


def _results(best: int, epochs: int = 30) -> dict:
    return {"best_epoch": best, "epochs": epochs, "split_sizes": {"valid": 19},
            "metric": {"name": "accuracy", "val": 1.0},
            "history": [{"epoch": e, "train_metric": 0.4 + e / 100} for e in range(1, epochs + 1)]}


def test_a_very_early_best_epoch_is_explained_with_the_remedy():
    note = early_best_note(_results(1), warmup_epochs=5, select_from=1)
    assert "epoch 1 of 30 (training accuracy 0.410 then)" in note and "19 validation graphs" in note
    assert "--select-from 10" in note
    assert early_best_note(_results(12), warmup_epochs=5, select_from=1) is None
    assert early_best_note(_results(1), warmup_epochs=5, select_from=3) is None  # the user chose already
    assert early_best_note(_results(1, epochs=5), warmup_epochs=1, select_from=1) is None  # a short run


def test_select_from_keeps_the_best_of_the_later_epochs(tmp_path, cache_root, caplog):
    out = tmp_path / "run"
    with caplog.at_level(logging.INFO, logger="gtsp.train"):
        assert main(["train", "--dataset", "MUTAG", "--epochs", "8", "--select-from", "5", "--hidden", "16",
                     "--layers", "1", "--warmup-epochs", "1", "--cache-root", str(cache_root), "--out", str(out),
                     "--quiet"]) == 0
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["best_epoch"] for r in records[:4]] == [-1] * 4
    assert "best_epoch is -1 until an epoch may be chosen as the best model: --select-from 5" in caplog.text
    later = records[4:]
    top = max(r["val"] for r in later)
    expected = [r for r in later if r["val"] == top]
    expected = min(expected, key=lambda r: (r["val_loss"], -r["epoch"]))["epoch"]
    results = json.loads((out / "results.json").read_text())
    assert results["best_epoch"] == expected >= 5
    assert results["metric"]["val"] == pytest.approx(top)


def test_select_from_after_the_last_epoch_is_refused(tmp_path, capsys):
    assert main(["train", "--epochs", "3", "--select-from", "4", "--out", str(tmp_path / "r")]) == 2
    assert "select_from=4 is after the last epoch (3)" in capsys.readouterr().err
