"""``benchmarks/campaign.py``: job files parse strictly and archives carry what a resume needs."""
from __future__ import annotations

import sys
import tarfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import campaign  # noqa: E402


def test_job_file_gives_prepare_steps_and_resumable_train_jobs(tmp_path):
    jobs_file = tmp_path / "jobs.txt"
    jobs_file.write_text("# comment\n@prepare --config c.yaml\n\na-s0 --dataset MUTAG --epochs 2  # why\n"
                         "b-s1 --dataset NCI1 --prune head=0.5\n")
    prepares, jobs = campaign.read_jobs(jobs_file, tmp_path / "out")
    assert [p.argv[-4:] for p in prepares] == [["data", "prepare", "--config", "c.yaml"]]
    assert [j.name for j in jobs] == ["a-s0", "b-s1"]
    assert jobs[0].argv[3:] == ["train", "--dataset", "MUTAG", "--epochs", "2", "--out",
                                str(tmp_path / "out" / "a-s0"), "--quiet", "--resume"]


@pytest.mark.parametrize("text", ["a --out x\n", "a --seed 0\na --seed 1\n"])
def test_job_file_refuses_own_out_and_repeated_names(tmp_path, text):
    jobs_file = tmp_path / "jobs.txt"
    jobs_file.write_text(text)
    with pytest.raises(SystemExit):
        campaign.read_jobs(jobs_file, tmp_path / "out")


def test_archives_split_results_from_checkpoints_of_unfinished_runs(tmp_path):
    out = tmp_path / "out"
    for name, finished in (("done-s0", True), ("cut-s0", False)):
        (out / name).mkdir(parents=True)
        (out / name / "metrics.jsonl").write_text("{}\n")
        (out / name / "checkpoint.pt").write_bytes(b"x")
        (out / name / "model.pt").write_bytes(b"x")
        if finished:
            (out / name / "results.json").write_text("{}")
    campaign.archive(out, tmp_path / "a.tgz")
    campaign.archive(out, tmp_path / "c.tgz", checkpoints=True)
    files = {p: {m.name for m in tarfile.open(tmp_path / p) if m.isfile()} for p in ("a.tgz", "c.tgz")}
    assert files["a.tgz"] == {"out/done-s0/metrics.jsonl", "out/done-s0/results.json", "out/cut-s0/metrics.jsonl"}
    assert files["c.tgz"] == {"out/cut-s0/checkpoint.pt"}
