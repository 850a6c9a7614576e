"""``gtsp report`` over synthetic results.json files: numbers recomputed here, figures embedded, errors clear."""
from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import numpy as np
import pytest

from gtsp.cli import main
from gtsp.report.plots import pareto_front

DENSE_PARAMS, DENSE_FLOPS = 10_000, 2.0e6


def results(dataset: str, model: str, seed: int, test: float, prune: dict | None = None, attention: bool = True,
            params: float = DENSE_PARAMS, flops: float = DENSE_FLOPS, structural: float | None = None,
            speedup: float | None = None, graphs_per_s: float = 1000.0, metric=("accuracy", True)) -> dict:
    """A results.json as gtsp train writes it (only the keys a report reads, plus some noise)."""
    model_args = {"hidden": 16} if attention else {"hidden": 16, "attention": False}
    doc = {"dataset": dataset, "model": model, "seed": seed, "epochs": 3,
           "config": {"model": model, "dataset": dataset, "seed": seed, "epochs": 3, "out": f"/x/{seed}",
                      "folds": 0, "fold": 0, "threads": 1, "device": "auto", "model_args": model_args,
                      "prune": prune or {}, "prune_args": {}},
           "metric": {"name": metric[0], "higher_is_better": metric[1], "val": test - 0.01, "test": test},
           "params": {"dense": DENSE_PARAMS if prune else params, "nonzero": params},
           "flops_per_graph": {"dense": DENSE_FLOPS if prune else flops, "flop_counter": flops},
           "throughput_graphs_per_s": graphs_per_s, "device": "cpu", "machine": {"threads": 1}}
    if prune:
        doc["params"]["compacted_nonzero"] = params
        doc["flops_per_graph"].update(pruned=flops, structural=structural if structural is not None else flops)
        doc["speedup"] = {"measured": speedup, "dense_graphs_per_s": graphs_per_s / speedup,
                          "compacted_graphs_per_s": graphs_per_s}
    return doc


# (folder, results): one dataset with every kind of run, a second one where lower is better
RUNS = {
    **{f"d1/dense-s{s}": results("D1", "gps", s, t, graphs_per_s=g)
       for s, t, g in ((0, 0.80, 1000.0), (1, 0.84, 1100.0), (2, 0.78, 900.0))},
    **{f"d1/head-s{s}": results("D1", "gps", s, t, {"head": 0.5}, params=8000, flops=1.5e6, speedup=sp)
       for s, t, sp in ((0, 0.79, 1.20), (1, 0.85, 1.25), (2, 0.74, 1.22))},
    **{f"d1/weight-s{s}": results("D1", "gps", s, t, {"weight": 0.5, "head": 0.0}, params=5000, flops=1.1e6,
                                  structural=DENSE_FLOPS, speedup=1.0)
       for s, t in ((0, 0.81, ), (1, 0.80, ))},
    **{f"d1/noattn-s{s}": results("D1", "gps", s, t, attention=False, params=7000, flops=0.8e6, graphs_per_s=g)
       for s, t, g in ((0, 0.70, 3000.0), (1, 0.72, 3300.0), (2, 0.69, 2700.0))},
    "d1/joint-s0": results("D1", "gps", 0, 0.77, {"head": 0.5, "layer": 0.5}, params=4000, flops=0.9e6,
                           speedup=1.9),
    **{f"d2/dense-s{s}": results("D2", "graphtrans", s, t, metric=("rmse", False)) for s, t in ((0, 1.1), (1, 1.3))},
    **{f"d2/token-s{s}": results("D2", "graphtrans", s, t, {"token": 0.5}, flops=1.4e6, speedup=1.1,
                                 metric=("rmse", False)) for s, t in ((1, 1.0), (2, 1.6))},
}


@pytest.fixture
def runs_dir(tmp_path) -> Path:
    root = tmp_path / "runs"
    for folder, doc in RUNS.items():
        (root / folder).mkdir(parents=True)
        (root / folder / "results.json").write_text(json.dumps(doc))
    for s in range(3):  # training curves for the dense D1 runs; one line cut short by a kill
        lines = [json.dumps({"epoch": e, "loss": 1.0 / e + s, "val": 0.5 + 0.1 * e, "val_loss": 1.2 / e})
                 for e in (1, 2, 3)]
        (root / f"d1/dense-s{s}/metrics.jsonl").write_text("\n".join(lines) + '\n{"epoch": 4, "lo')
    (root / "broken").mkdir()
    (root / "broken" / "results.json").write_text('{"dataset": "D1", "mod')  # a run still writing
    return root


def group(report: dict, dataset: str, setting: str) -> dict:
    matches = [g for g in report["datasets"][dataset] if g["setting"] == setting]
    assert len(matches) == 1, [g["setting"] for g in report["datasets"][dataset]]
    return matches[0]


def folder_values(prefix: str, key) -> list[float]:
    return [key(doc) for folder, doc in RUNS.items() if folder.startswith(prefix)]


def test_report_numbers_equal_a_recomputation(runs_dir, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["report", str(runs_dir), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "skipped" in printed and "broken/results.json" in printed
    assert f"report of {len(RUNS)} runs in 7 settings" in printed
    report = json.loads((out / "report.json").read_text())
    test = lambda doc: doc["metric"]["test"]  # noqa: E731

    dense = group(report, "D1", "dense")
    values = folder_values("d1/dense", test)
    assert dense["test"]["mean"] == pytest.approx(np.mean(values))
    assert dense["test"]["std"] == pytest.approx(np.std(values, ddof=1))
    assert dense["paired"] is None and dense["dense_reference"] is None

    head = group(report, "D1", "head 0.5")["paired"]
    diffs = np.array(folder_values("d1/head", test)) - np.array(values)  # seeds 0, 1, 2 in both
    assert head["n"] == 3 and head["test_diff"]["mean"] == pytest.approx(diffs.mean())
    assert head["test_diff"]["std"] == pytest.approx(diffs.std(ddof=1))
    assert head["params_rel"]["mean"] == pytest.approx(0.8) and head["flops_rel"]["mean"] == pytest.approx(0.75)
    speedups = folder_values("d1/head", lambda d: d["speedup"]["measured"])
    assert head["speedup"]["mean"] == pytest.approx(np.mean(speedups))
    assert head["speedup"]["std"] == pytest.approx(np.std(speedups, ddof=1))

    base = group(report, "D1", "baseline (no attention)")["paired"]
    assert base["speedup"] is None  # never timed beside dense in one process: no speed-up at all
    assert [u["params_rel"] for u in base["units"]] == pytest.approx([7000 / DENSE_PARAMS] * 3)
    assert base["test_diff"]["mean"] == pytest.approx(np.mean(np.array([0.70, 0.72, 0.69]) - values))

    weight = group(report, "D1", "weight 0.5")  # head: 0.0 is not pruning: same setting as weight alone
    assert weight["paired"]["flops_structural_rel"]["mean"] == pytest.approx(1.0)
    assert weight["paired"]["flops_rel"]["mean"] == pytest.approx(1.1e6 / DENSE_FLOPS)
    assert group(report, "D1", "head 0.5 + layer 0.5")["kind"] == "joint"

    token = group(report, "D2", "token 0.5")  # only seed 1 has a dense partner: one pair, no spread
    assert token["paired"]["test_diff"] == {"mean": pytest.approx(1.0 - 1.3), "std": None, "n": 1, "ci95": None}
    assert [u["seed"] for u in token["unpaired"]] == [2] and "no dense run" in token["unpaired"][0]["reason"]
    assert len(report["runs"]) == len(RUNS) and len(report["skipped"]) == 1


def test_markdown_table_shows_the_same_numbers(runs_dir, tmp_path):
    out = tmp_path / "report"
    assert main(["report", str(runs_dir), "--out", str(out)]) == 0
    md = (out / "report.md").read_text()
    d1 = md[md.index("## D1"):md.index("## D2")]
    assert "| backbone | setting | runs (paired) | test accuracy, all runs | Δ test accuracy vs dense | " \
           "Δ vs dense, same epoch window | params vs dense | FLOPs vs dense | structural FLOPs vs dense | " \
           "speed-up (one process) |" in d1
    assert "ms/graph" not in md  # absolute latencies of different runs are never compared
    row = next(line for line in d1.splitlines() if line.startswith("| gps | head 0.5 |"))
    values = [0.79, 0.85, 0.74]
    assert f"| 3 (3) | {np.mean(values):.4f} ± {np.std(values, ddof=1):.4f} |" in row
    assert "| 0.80x [0.80, 0.80] | 0.75x [0.75, 0.75] |" in row
    d2 = md[md.index("## D2"):]
    assert "structural" not in d2 and "test rmse" in d2  # no weight masks there
    assert "| graphtrans | token 0.5 | 2 (1) |" in d2 and "| -0.3000, no interval |" in d2
    assert "| graphtrans | token 0.5 | token-s2 | 2 |" in d2  # listed apart, not averaged in


def test_html_page_embeds_every_png_and_needs_no_other_file(runs_dir, tmp_path):
    out = tmp_path / "report"
    assert main(["report", str(runs_dir), "--out", str(out)]) == 0
    page = (out / "report.html").read_text()
    pngs = sorted(out.glob("*.png"))
    kinds = ("effects", "cost-flops", "cost-speedup", "ratio")
    per_dataset = {f"{kind}-{d}.png" for kind in kinds for d in ("D1", "D2")}
    assert {p.name for p in pngs} == per_dataset | {"curves-D1-gps.png"}  # D2 runs logged no metrics.jsonl
    for png in pngs:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert base64.b64encode(png.read_bytes()).decode() in page
    sources = re.findall(r"src='([^']*)'", page)
    assert len(sources) == len(pngs) and all(s.startswith("data:image/png;base64,") for s in sources)
    assert "<table>" in page and "baseline (no attention)" in page and "href=" not in page


@pytest.mark.parametrize("higher, front", [(True, [(1, 0.5), (2, 0.7), (4, 0.9)]), (False, [(1, 0.5), (3, 0.3)])])
def test_pareto_front_keeps_only_points_nothing_beats(higher, front):
    points = [(2, 0.7), (1, 0.5), (3, 0.6), (4, 0.9), (3, 0.3), (5, 0.9), (1, 0.55 if not higher else 0.4)]
    assert pareto_front(points, higher) == front


def test_no_results_is_one_clear_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty"), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"gtsp: error: no readable results.json under {tmp_path / 'empty'}: run gtsp train or gtsp "
                   "sweep into it first"]


def test_budget_runs_of_every_fold_form_one_setting_and_proxy_runs_are_left_out(tmp_path):
    from gtsp.report.collect import collect

    root = tmp_path / "runs"
    for s, chosen in ((0, {"head": 0.5, "layer": 0.25}), (1, {"weight": 0.7})):
        doc = results("D1", "gps", s, 0.8, chosen, flops=1.0e6, speedup=1.5)
        doc["config"]["budget"] = {"flops": 0.5, "trials": 4}
        (root / f"budget-s{s}" / "budget" / "proxy-head=0.5").mkdir(parents=True)
        (root / f"budget-s{s}" / "results.json").write_text(json.dumps(doc))
        proxy = results("D1", "gps", s, 0.6, {"head": 0.5}, flops=1.0e6, speedup=1.5)
        (root / f"budget-s{s}" / "budget" / "proxy-head=0.5" / "results.json").write_text(json.dumps(proxy))
    (root / "dense-s0").mkdir()
    (root / "dense-s0" / "results.json").write_text(json.dumps(results("D1", "gps", 0, 0.8)))
    runs, _ = collect(root)
    assert len(runs) == 3 and {r.kind for r in runs} == {"dense", "budget"}
    assert len({r.setting for r in runs if r.kind == "budget"}) == 1
    assert main(["report", str(root), "--out", str(tmp_path / "report")]) == 0
    table = (tmp_path / "report" / "report.md").read_text()
    assert "budget flops=0.5 (chosen per run)" in table and "proxy" not in table
