"""Budget mode: ratios chosen by gtsp under a FLOPs or latency budget, on tiny MUTAG models."""
from __future__ import annotations

import json

import pytest

from gtsp.budget import check_budget
from gtsp.budget.cost import flops_candidates, structural_model
from gtsp.budget.search import first_trials, shortlist
from gtsp.cli import main
from gtsp.errors import GtspError

TINY = ["--dataset", "MUTAG", "--hidden", "16", "--layers", "2", "--heads", "2", "--epochs", "3",
        "--batch-size", "32", "--warmup-epochs", "1", "--device", "cpu", "--quiet"]


@pytest.mark.parametrize("budget,phrase", [
    ({"flops": 1.5}, "is not a fraction in (0, 1)"), ({"flops": 0.5, "latency": 0.5}, "exactly one cost"),
    ({"speed": 0.5}, "unknown budget entries ['speed']"), ({"flops": 0.5, "trials": 0}, "trials=0"),
    ({"trials": 3}, "exactly one cost"), ({"flops": 0.5, "flops_nominal": 0.5}, "exactly one cost"), ({"flops": 0.5, "proxy_epochs": 2}, "integer >= 3"), ({"latency": "half"}, "is not a fraction"),
])
def test_bad_budgets_are_refused_with_the_fix(budget, phrase):
    with pytest.raises(GtspError) as err:
        check_budget(budget)
    assert phrase in str(err.value) and "e.g." in str(err.value)


def test_budget_and_explicit_ratios_contradict(tmp_path, cache_root, capsys):
    assert main(["train", *TINY, "--model", "gps", "--budget", "flops=0.5", "--prune", "head=0.5",
                 "--out", str(tmp_path / "run"), "--cache-root", str(cache_root)]) == 2
    assert "drop one of them" in capsys.readouterr().err


@pytest.fixture(scope="module")
def mutag(cache_root):
    from gtsp.train.run import prepare_data
    from gtsp.config import RunConfig

    return prepare_data(RunConfig(dataset="MUTAG", model="gps", cache_root=str(cache_root)).validate())


def test_prices_are_the_counted_flops_of_the_compacted_architecture(mutag):
    from gtsp.accounting.flops import analytic_flops_per_graph

    hparams = {"hidden": 16, "layers": 2, "heads": 2}
    candidates = flops_candidates("gps", mutag.info, hparams, mutag.valid)
    by_label = {c.label: c.cost for c in candidates}
    assert by_label["dense"] == pytest.approx(1.0)
    assert not any("weight" in c.ratios for c in candidates)  # executed FLOPs: weight zeros save nothing
    nominal = {c.label: c.cost for c in flops_candidates("gps", mutag.info, hparams, mutag.valid, nominal=True)}
    assert nominal["weight=0.5,head=0.5"] < nominal["head=0.5"] < 1.0  # weights priced on top of structure
    assert nominal["head=0.5"] == pytest.approx(by_label["head=0.5"])
    dense = analytic_flops_per_graph(structural_model("gps", mutag.info, hparams, {}), mutag.valid, 16)["pruned"]
    layer = analytic_flops_per_graph(structural_model("gps", mutag.info, hparams, {"layer": 0.5}), mutag.valid,
                                     16)["pruned"]
    assert by_label["layer=0.5"] == pytest.approx(layer / dense)
    short = shortlist(candidates, 0.5)
    assert short and all(0.35 <= c.cost <= 0.5 for c in short)
    singles = [c for c in first_trials(short) if len(c.ratios) == 1]
    assert {next(iter(c.ratios)) for c in singles} == {next(iter(c.ratios)) for c in short if len(c.ratios) == 1}
    assert first_trials(short) and all(c in short for c in first_trials(short))
    nominal_short = shortlist(flops_candidates("gps", mutag.info, hparams, mutag.valid, nominal=True), 0.5)
    assert [c for c in first_trials(nominal_short) if len(c.ratios) == 1]  # e.g. weight alone
    with pytest.raises(GtspError, match="raise the budget"):
        shortlist(candidates, 0.001)


@pytest.mark.parametrize("model", ["gps", "graphtrans", "graphormer"])
def test_flops_budget_yields_a_compacted_model_within_it(model, tmp_path, cache_root):
    out = tmp_path / model
    assert main(["train", *TINY, "--model", model, "--budget", "flops=0.5,trials=2,proxy_epochs=3",
                 "--out", str(out), "--cache-root", str(cache_root)]) == 0
    results = json.loads((out / "results.json").read_text())
    budget = results["budget"]
    assert budget["chosen"] == results["config"]["prune"] and budget["chosen"]
    assert budget["predicted_cost"] <= 0.5 and len(budget["trials"]) == 2
    flops = results["flops_per_graph"]
    assert budget["priced"] == "flops" and "weight" not in budget["chosen"]
    assert budget["measured_cost"] == pytest.approx(flops["executed"] / flops["dense"])
    assert budget["measured"]["flops_nominal"] == pytest.approx(flops["nominal"] / flops["dense"])
    assert budget["measured_cost"] <= 0.5 * 1.02 and budget["within_budget"] in (True, False)
    assert len(list((out / "budget").glob("proxy-*/results.json"))) == 2


def test_latency_budget_prunes_only_structure_and_reports_the_measured_share(tmp_path, cache_root):
    out = tmp_path / "latency"
    assert main(["train", *TINY, "--model", "gps", "--budget", "latency=0.6,trials=1,proxy_epochs=3",
                 "--out", str(out), "--cache-root", str(cache_root)]) == 0
    results = json.loads((out / "results.json").read_text())
    budget = results["budget"]
    assert "weight" not in budget["chosen"] and budget["predicted_cost"] <= 0.6
    # measured, not predicted: dense and compacted timed alongside (a ratio of noisy timings, so no bound)
    assert budget["measured_cost"] == pytest.approx(1.0 / results["speedup"]["measured"])
    record = json.loads((out / "budget" / "choice.json").read_text())
    assert "batch of 19 validation graphs (--batch-size 32) on cpu" in record["priced_on"]
    assert budget["priced_on"] == record["priced_on"]  # results.json says it too


def test_a_resumed_budget_run_trains_the_saved_choice_without_searching_again(tmp_path, cache_root):
    out = tmp_path / "run"
    argv = ["train", *TINY, "--model", "gps", "--budget", "flops=0.5,trials=1,proxy_epochs=3", "--out", str(out),
            "--cache-root", str(cache_root)]
    assert main(argv) == 0
    first = json.loads((out / "results.json").read_text())
    (out / "results.json").unlink()
    proxies = {p: p.stat().st_mtime_ns for p in (out / "budget").glob("proxy-*/results.json")}
    assert main([*argv, "--resume"]) == 0
    again = json.loads((out / "results.json").read_text())
    assert again["budget"]["chosen"] == first["budget"]["chosen"] == again["config"]["prune"]
    assert {p: p.stat().st_mtime_ns for p in (out / "budget").glob("proxy-*/results.json")} == proxies
    other = [a if a != "flops=0.5,trials=1,proxy_epochs=3" else "flops=0.4,trials=1,proxy_epochs=3" for a in argv]
    (out / "results.json").unlink()
    assert main([*other, "--resume"]) == 2  # another budget does not reuse this search


def _tiny_config(cache_root, out):
    from gtsp.config import RunConfig

    return RunConfig(dataset="MUTAG", model="gps", cache_root=str(cache_root), out=str(out), epochs=30,
                     model_args={"hidden": 16, "layers": 2, "heads": 2}, budget={"flops": 0.5, "trials": 3}).validate()


def test_a_failed_proxy_is_left_out_and_an_interrupted_one_is_retried(mutag, cache_root, tmp_path):
    from gtsp.budget.search import choose

    cfg = _tiny_config(cache_root, tmp_path)
    spec = check_budget(cfg.budget)
    calls = []

    def interrupted_then_fine(proxy):
        calls.append(dict(proxy.prune))
        assert proxy.epochs == 3 and proxy.budget == {} and proxy.out.startswith(str(tmp_path / "budget"))
        if len(calls) == 1:
            raise GtspError("too few epochs for this schedule")
        if len(calls) == 2:
            raise KeyboardInterrupt  # the search is killed during its second proxy run
        return {"metric": {"val": 0.5 + 0.1 * len(calls)}}

    with pytest.raises(KeyboardInterrupt):
        choose(cfg, mutag, spec, tmp_path, interrupted_then_fine)
    record = choose(cfg, mutag, spec, tmp_path, interrupted_then_fine)
    assert calls[2] == calls[1]  # the interrupted combination runs again first
    assert len(record["trials"]) == 2 and len(record["failed_trials"]) == 1
    assert record["failed_trials"][0]["ratios"] == calls[0] and "too few epochs" in record["failed_trials"][0]["error"]
    assert record["chosen"] == calls[3] and all(t["cost"] <= 0.5 for t in record["trials"])
    assert choose(cfg, mutag, spec, tmp_path, interrupted_then_fine) == record and len(calls) == 4  # saved


@pytest.mark.parametrize("kind, pruned_share, missed", [("flops", 0.6, True), ("flops", 0.45, False),
                                                         ("latency", 0.52, True)])
def test_a_missed_budget_is_said_at_the_end_of_the_run(kind, pruned_share, missed):
    from gtsp.budget.choice import achieved
    from gtsp.budget.spec import BudgetSpec
    from gtsp.train.results import missed_budget

    record = {"budget": BudgetSpec(kind, 0.5).to_dict(), "chosen": {"head": 0.5}, "predicted_cost": 0.48,
              "reason": "best proxy", "trials": []}
    share = 100.0 * pruned_share
    results = {"flops_per_graph": {"dense": 100.0, "pruned": share, "executed": share, "nominal": share},
               "speedup": {"measured": 1.0 / pruned_share}}
    entry = achieved(record, results)
    assert entry["within_budget"] is (not missed)
    line = missed_budget({"budget": entry})
    if not missed:
        assert line is None
        return
    assert f"asked {kind}=0.5" in line and f"measured {pruned_share:.3f}" in line and "predicted 0.480" in line
    lower = float(line.rsplit(f"--budget {kind}=", 1)[1].split(",")[0].rstrip("."))
    assert lower < 0.5 and "within_budget: false" in line


def test_an_unaffordable_budget_leaves_nothing_that_blocks_the_retry(tmp_path, cache_root, capsys):
    out = tmp_path / "run"
    argv = ["train", *TINY, "--model", "gps", "--budget", "flops=0.01", "--out", str(out),
            "--cache-root", str(cache_root)]
    assert main(argv) == 2
    assert "raise the budget" in capsys.readouterr().err
    assert list(out.iterdir()) == []  # no budget/prices.json left behind
    assert main(argv) == 2  # the retry gets the same answer, not "--out is not empty"
    assert "raise the budget" in capsys.readouterr().err
