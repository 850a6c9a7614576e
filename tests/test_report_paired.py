"""``gtsp report`` pairs each run with the dense run of its fold: expected numbers computed here by hand.

Synthetic run folders (``results.json`` as gtsp train writes it, ``metrics.jsonl`` where the
epoch window matters); the 95 % intervals use Student's t quantiles from a printed table.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from gtsp.cli import main

T975 = {2: 4.302653, 3: 3.182446, 4: 2.776445}  # Student's t, 0.975 quantile, by degrees of freedom
DENSE_PARAMS, DENSE_FLOPS = 1000, 4.0e6


def results(fold: int, test: float, prune: dict | None = None, *, flops: float = DENSE_FLOPS,
            params: float = DENSE_PARAMS, speedup: float | None = None, budget: dict | None = None) -> dict:
    """A results.json with the keys and layout gtsp train writes (a subset of them)."""
    cfg = {"model": "gps", "dataset": "NCI1", "seed": 0, "epochs": 6, "out": f"runs/{fold}", "folds": 10,
           "fold": fold, "threads": 1, "device": "auto", "model_args": {}, "prune": prune or {}, "prune_args": {},
           "budget": {k: v for k, v in (budget or {}).items() if k in ("latency", "flops", "trials")}}
    doc = {"dataset": "NCI1", "model": "gps", "seed": 0, "epochs": 6, "config": cfg, "device": "cpu",
           "metric": {"name": "accuracy", "higher_is_better": True, "val": 0.8, "test": test},
           "params": {"dense": DENSE_PARAMS, "nonzero": params if not prune else DENSE_PARAMS},
           "flops_per_graph": {"dense": DENSE_FLOPS, "pruned": flops},
           "throughput_graphs_per_s": 5000.0 * (speedup or 1.0)}
    if prune:
        doc["params"]["compacted_nonzero"] = params
        doc["speedup"] = {"measured": speedup, "dense_graphs_per_s": 5000.0, "compacted_graphs_per_s": 5000.0 * speedup}
    if budget:
        doc["budget"] = {"kind": budget["kind"], "target": budget["target"], "measured_cost": budget["got"],
                         "within_budget": budget["got"] <= budget["target"]}
    return doc


def write(root: Path, name: str, doc: dict, log: list[dict] | None = None) -> None:
    (root / name).mkdir(parents=True)
    (root / name / "results.json").write_text(json.dumps(doc))
    if log is not None:
        (root / name / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in log))


def ci(values: np.ndarray) -> tuple[float, float, float, float]:
    """Mean, sample std and the t-based 95 % interval, by the textbook formula."""
    mean, std = values.mean(), values.std(ddof=1)
    half = T975[len(values) - 1] * std / np.sqrt(len(values))
    return mean, std, mean - half, mean + half


def setting(report: dict, label: str) -> dict:
    (match,) = [g for g in report["datasets"]["NCI1"] if g["setting"] == label]
    return match


DENSE = {0: 0.80, 1: 0.70, 2: 0.90}            # folds with a dense run
HEAD = {0: 0.78, 1: 0.71, 2: 0.85, 3: 0.99}   # fold 3 has no dense partner
HEAD_FLOPS = {0: 3.0e6, 1: 3.2e6, 2: 2.8e6, 3: 1.0e6}
HEAD_SPEEDUP = {0: 1.2, 1: 1.3, 2: 1.1, 3: 5.0}


@pytest.fixture
def report(tmp_path) -> dict:
    root = tmp_path / "runs"
    for fold, test in DENSE.items():
        write(root, f"fold-{fold}_prune-none", results(fold, test))
    for fold, test in HEAD.items():
        write(root, f"fold-{fold}_prune-head", results(fold, test, {"head": 0.5}, flops=HEAD_FLOPS[fold],
                                                      params=800 - fold, speedup=HEAD_SPEEDUP[fold]))
    assert main(["report", str(root), "--out", str(tmp_path / "report")]) == 0
    return json.loads((tmp_path / "report" / "report.json").read_text())


def test_units_without_a_dense_partner_are_listed_apart_never_averaged(report):
    head = setting(report, "head 0.5")
    paired = head["paired"]
    assert paired["n"] == 3 and sorted(u["fold"] for u in paired["units"]) == [0, 1, 2]
    assert [(u["fold"], u["reason"]) for u in head["unpaired"]] == [(3, "no dense run of this seed and fold")]
    diffs = np.array([HEAD[f] - DENSE[f] for f in DENSE])
    assert paired["test_diff"]["mean"] == pytest.approx(diffs.mean())
    # neither fold 3 nor the unpaired means (mean over 4 head folds minus mean over 3 dense folds) leak in
    assert paired["test_diff"]["mean"] != pytest.approx(np.mean(list(HEAD.values())) - np.mean(list(DENSE.values())))
    assert paired["speedup"]["mean"] == pytest.approx(np.mean([HEAD_SPEEDUP[f] for f in DENSE]))
    assert head["test"]["n"] == 4  # the description covers every run; the comparison only the pairs


def test_known_paired_differences_give_their_mean_std_and_t_interval(report):
    paired = setting(report, "head 0.5")["paired"]
    for measure, values in (("test_diff", [HEAD[f] - DENSE[f] for f in DENSE]),
                            ("flops_rel", [HEAD_FLOPS[f] / DENSE_FLOPS for f in DENSE]),
                            ("params_rel", [(800 - f) / DENSE_PARAMS for f in DENSE]),
                            ("speedup", [HEAD_SPEEDUP[f] for f in DENSE])):
        mean, std, low, high = ci(np.array(values))
        got = paired[measure]
        assert got["n"] == 3 and got["mean"] == pytest.approx(mean), measure
        assert got["std"] == pytest.approx(std) and got["ci95"] == pytest.approx([low, high], rel=1e-5), measure
    for unit in paired["units"]:
        assert unit["test_diff"] == pytest.approx(HEAD[unit["fold"]] - DENSE[unit["fold"]])
        assert Path(unit["dense_run"]).name == f"fold-{unit['fold']}_prune-none"


def log(vals: list[float], losses: list[float], tests: list[float], first_selectable: int = 1) -> list[dict]:
    """metrics.jsonl lines; best_epoch stays -1 before the first selectable epoch, as the trainer logs it."""
    return [{"epoch": e, "loss": 0.5, "val": v, "val_loss": vl, "test": t,
             "best_epoch": -1 if e < first_selectable else first_selectable}
            for e, (v, vl, t) in enumerate(zip(vals, losses, tests), start=1)]


def test_dense_is_reselected_in_the_pruned_runs_epoch_window_with_the_trainers_tie_rule(tmp_path):
    root = tmp_path / "runs"
    # dense: epoch 1 is best overall; from epoch 3 on, epochs 3-5 tie on val, 4 and 5 tie on val_loss: 5 wins
    dense_log = log([0.9, 0.7, 0.8, 0.8, 0.8, 0.6], [0.1, 0.5, 0.4, 0.3, 0.3, 0.2], [0.95, 0.6, 0.7, 0.71, 0.72, 0.5])
    for fold, window_start in ((0, 3), (1, 3), (2, 6)):
        write(root, f"fold-{fold}_prune-none", results(fold, 0.95), dense_log)
        pruned = results(fold, 0.80 + 0.01 * fold, {"weight": 0.5}, flops=2.0e6, params=500, speedup=1.0)
        write(root, f"fold-{fold}_prune-weight", pruned, log([0.5] * 6, [0.5] * 6, [0.5] * 6, window_start))
    write(root, "fold-3_prune-none", results(3, 0.9))          # no metrics.jsonl on either side: no window
    write(root, "fold-3_prune-weight", results(3, 0.9, {"weight": 0.5}, flops=2.0e6, params=500, speedup=1.0))
    assert main(["report", str(root), "--out", str(tmp_path / "report")]) == 0
    paired = setting(json.loads((tmp_path / "report" / "report.json").read_text()), "weight 0.5")["paired"]
    units = {u["fold"]: u for u in paired["units"]}
    assert [units[f]["dense_window_epoch"] for f in range(3)] == [5, 5, 6]
    assert units[3]["dense_window_epoch"] is None and units[3]["test_diff_window"] is None
    window = np.array([0.80 - 0.72, 0.81 - 0.72, 0.82 - 0.5])
    mean, std, low, high = ci(window)
    assert paired["test_diff_window"]["n"] == 3 and paired["test_diff_window"]["mean"] == pytest.approx(mean)
    assert paired["test_diff_window"]["ci95"] == pytest.approx([low, high], rel=1e-5)
    assert paired["test_diff"]["n"] == 4  # the all-epochs comparison keeps every unit
    md = (tmp_path / "report" / "report.md").read_text()
    assert "epochs ≥ 3-6" in md and "for 1 of 4 paired units the epoch window could not be recovered" in md


def test_a_missed_budget_is_marked_in_the_table_and_the_json(tmp_path):
    root = tmp_path / "runs"
    for fold, got in ((0, 0.45), (1, 0.504)):
        write(root, f"fold-{fold}_prune-none", results(fold, 0.8))
        budget = {"kind": "latency", "target": 0.5, "got": got, "latency": 0.5}
        write(root, f"fold-{fold}_budget", results(fold, 0.79, {"head": 0.5}, speedup=2.0, budget=budget))
    assert main(["report", str(root), "--out", str(tmp_path / "report")]) == 0
    md = (tmp_path / "report" / "report.md").read_text()
    assert "| gps | budget latency=0.5 (chosen per run) † |" in md
    assert "† budget latency=0.5 (chosen per run): fold-1_budget: missed budget: asked latency <= 0.5 of dense, " \
           "got 0.504" in md and "fold-0_budget: missed" not in md
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    group = setting(report, "budget latency=0.5 (chosen per run)")
    assert [Path(m["run"]).name for m in group["missed_budget"]] == ["fold-1_budget"]


def test_a_previous_report_is_not_overwritten_without_overwrite(tmp_path, capsys):
    root = tmp_path / "runs"
    write(root, "fold-0_prune-none", results(0, 0.8))
    write(root, "fold-0_prune-head", results(0, 0.7, {"head": 0.5}, speedup=1.2))
    out = tmp_path / "report"
    assert main(["report", str(root), "--out", str(out)]) == 0
    (out / "report.md").write_text("my edits")
    (out / "notes.txt").write_text("mine")
    (out / "pareto-latency-NCI1.png").write_bytes(b"an older report's figure")
    capsys.readouterr()
    assert main(["report", str(root), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already holds files" in err[0] and "--overwrite" in err[0]
    assert (out / "report.md").read_text() == "my edits"
    assert main(["report", str(root), "--out", str(out), "--overwrite"]) == 0
    assert (out / "report.md").read_text().startswith("# gtsp report") and (out / "notes.txt").read_text() == "mine"
    assert not (out / "pareto-latency-NCI1.png").exists()
    capsys.readouterr()
    assert main(["report", str(root), "--out", str(out / "notes.txt")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "notes.txt is a file" in err[0]


def test_runs_of_older_code_compare_with_newer_ones():
    """A field added later holds its default in new runs and is absent in old ones: same setting. A FLOPs
    budget searched before budgets priced executed FLOPs (no ``priced`` in its record) is flops_nominal."""
    from gtsp.report.collect import normalised_config

    old = {"config": {"epochs": 10, "budget": {"flops": 0.5}}, "budget": {"kind": "flops", "within_budget": True}}
    new = {"config": {"epochs": 10, "select_from": 1, "budget": {"flops": 0.5}},
           "budget": {"kind": "flops", "priced": "flops", "within_budget": True}}
    assert normalised_config(old) == {"epochs": 10, "budget": {"flops_nominal": 0.5}}
    assert normalised_config(new) == {"epochs": 10, "budget": {"flops": 0.5}}
    later = {"config": {"epochs": 10, "select_from": 5}}
    assert normalised_config(later)["select_from"] == 5
    assert old["config"]["budget"] == {"flops": 0.5}  # the run's own record is left as it was
