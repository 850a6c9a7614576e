import json

import pytest

from gtsp.cli import main
from gtsp.errors import GtspError
from gtsp.inference import evaluate_exported, export_run, load_exported


def test_train_export_evaluate_round_trip(tmp_path, cache_root, capsys):
    run_dir = tmp_path / "run"
    assert main(["train", "--dataset", "MUTAG", "--epochs", "2", "--hidden", "32", "--layers", "2",
                 "--cache-root", str(cache_root), "--out", str(run_dir), "--quiet"]) == 0
    assert main(["export", str(run_dir), "--out", str(tmp_path / "m.pt")]) == 0
    package = load_exported(tmp_path / "m.pt")
    assert package["dataset"] == "MUTAG" and package["features"] == ("rwse",)
    result = evaluate_exported(tmp_path / "m.pt", cache_root=str(cache_root))
    recorded = json.loads((run_dir / "results.json").read_text())
    assert result["test"] == pytest.approx(recorded["metric"]["test"])
    assert result["graphs"] == recorded["split_sizes"]["test"]


def test_export_needs_a_finished_run(tmp_path):
    with pytest.raises(GtspError, match="no results.json"):
        export_run(tmp_path, tmp_path / "m.pt")
    with pytest.raises(GtspError, match="does not exist"):
        load_exported(tmp_path / "missing.pt")
