"""A sweep whose file changed after some points finished: refused until the user reruns or accepts them."""
from __future__ import annotations

import json

import yaml

from gtsp.cli import main
from gtsp.sweep.changes import config_digest
from gtsp.sweep.grid import expand
from gtsp.sweep.spec import load_sweep

TINY = {"dataset": "MUTAG", "epochs": 2, "model_args": {"hidden": 16, "layers": 1}, "threads": 1}


def _write(path, base):
    path.write_text(json.dumps({"base": base, "grid": {"seed": [0]}}))
    return path


def test_a_changed_base_is_refused_then_accepted_or_rerun(tmp_path, cache_root, monkeypatch, capsys):
    monkeypatch.setenv("GTSP_CACHE", str(cache_root))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    sweep, out = tmp_path / "s.yaml", tmp_path / "runs"
    run = out / "seed-0"
    argv = ["sweep", str(sweep), "--out", str(out)]
    _write(sweep, TINY)
    assert main(argv) == 0
    stored = (run / "point.yaml").read_text()
    config = expand(load_sweep(sweep, out=out))[0].config
    assert stored.splitlines()[0] == f"# config sha256 {config_digest(config)}"
    assert yaml.safe_load(stored) == config  # gtsp train --config reads it as before
    first = (run / "results.json").read_bytes()

    # a point.yaml written before digests existed, same configuration: still done
    (run / "point.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    capsys.readouterr()
    assert main([*argv, "--dry-run"]) == 0
    assert capsys.readouterr().out.splitlines()[1].split()[:3] == ["0", "seed-0", "done"]

    _write(sweep, {**TINY, "epochs": 3})
    assert main([*argv, "--dry-run"]) == 0
    assert "seed-0  changed since it finished (epochs: 2 -> 3)" in capsys.readouterr().out
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "seed-0 (epochs: 2 -> 3)" in err
    assert "--rerun-changed" in err and "--accept-changed" in err
    assert (run / "results.json").read_bytes() == first

    assert main([*argv, "--accept-changed"]) == 0  # kept as it is, and not asked again
    assert (run / "results.json").read_bytes() == first
    assert main(argv) == 0 and (run / "results.json").read_bytes() == first

    _write(sweep, {**TINY, "epochs": 4})
    assert main([*argv, "--rerun-changed"]) == 0
    results = json.loads((run / "results.json").read_text())
    assert results["epochs"] == 4 and results["config"]["epochs"] == 4
    assert main([*argv, "--dry-run"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].split()[:3] == ["0", "seed-0", "done"]
