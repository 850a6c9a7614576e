import json
import os
import stat
from pathlib import Path

import pytest
import torch

from gtsp.cli import main
from gtsp.errors import GtspError
from gtsp.inference import evaluate_exported, export_run
from gtsp.models.files import load_model, read_spec


@pytest.fixture(scope="module")
def mutag_run(tmp_path_factory, cache_root):
    run_dir = tmp_path_factory.mktemp("inference") / "run"
    assert main(["train", "--dataset", "MUTAG", "--epochs", "2", "--hidden", "32", "--layers", "2",
                 "--cache-root", str(cache_root), "--out", str(run_dir), "--quiet"]) == 0
    return run_dir


def test_train_export_evaluate_round_trip(mutag_run, tmp_path, cache_root):
    out = tmp_path / "m.safetensors"
    assert main(["export", str(mutag_run), "--out", str(out)]) == 0
    spec = read_spec(out)
    assert spec["dataset"] == "MUTAG" and spec["features"] == ["rwse"] and spec["plan"] is None
    assert json.loads((tmp_path / "m.safetensors.json").read_text()) == spec
    result = evaluate_exported(out, cache_root=str(cache_root))
    recorded = json.loads((mutag_run / "results.json").read_text())
    assert result["test"] == pytest.approx(recorded["metric"]["test"])
    assert result["graphs"] == recorded["split_sizes"]["test"]


def test_model_file_rebuilds_the_same_function(mutag_run):
    model, spec = load_model(mutag_run / "model.safetensors")
    again, _ = load_model(mutag_run / "model.safetensors")
    for (name, a), (_, b) in zip(model.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a, b), name
    assert spec["hparams"]["hidden"] == 32 and spec["hparams"]["layers"] == 2


def test_export_needs_a_finished_run(tmp_path):
    with pytest.raises(GtspError, match="no results.json"):
        export_run(tmp_path, tmp_path / "m.safetensors")
    with pytest.raises(GtspError, match="does not exist"):
        read_spec(tmp_path / "missing.safetensors")


@pytest.mark.parametrize("content", ['{"metric": {}}', "just some text\n", ""])
def test_evaluate_refuses_files_that_are_not_models(tmp_path, capsys, content):
    bogus = tmp_path / "results.json"
    bogus.write_text(content)
    assert main(["evaluate", str(bogus)]) == 2
    assert "is not a gtsp model file" in capsys.readouterr().err


def test_evaluate_refuses_a_dataset_of_another_shape(mutag_run, cache_root, capsys):
    code = main(["evaluate", str(mutag_run / "model.safetensors"), "--dataset", "IMDB-BINARY",
                 "--cache-root", str(cache_root)])
    err = capsys.readouterr().err
    assert code == 2 and "trained on MUTAG and does not fit IMDB-BINARY" in err


def test_edited_weights_are_refused(mutag_run, tmp_path):
    from safetensors.torch import load_file, save_file

    path = tmp_path / "edited.safetensors"
    state = load_file(str(mutag_run / "model.safetensors"))
    state.pop(next(k for k in state if k.endswith(".weight")))
    save_file(state, str(path), metadata={"gtsp_spec": json.dumps(read_spec(mutag_run / "model.safetensors"))})
    with pytest.raises(GtspError, match="do not fit the architecture"):
        load_model(path)


def test_export_never_replaces_a_file_silently(mutag_run, tmp_path, capsys):
    out = tmp_path / "m.safetensors"
    out.write_text("an earlier export")
    assert main(["export", str(mutag_run), "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err and out.read_text() == "an earlier export"
    assert main(["export", str(mutag_run), "--out", str(out), "--overwrite"]) == 0
    assert read_spec(out)["dataset"] == "MUTAG"
    mask = os.umask(0o022)
    os.umask(mask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~mask  # readable as any file the user creates
    assert stat.S_IMODE((mutag_run / "results.json").stat().st_mode) == 0o666 & ~mask


@pytest.mark.parametrize("name", ["results.json", "model.safetensors", "model.safetensors.json"])
def test_export_refuses_to_replace_the_runs_own_files(mutag_run, capsys, name):
    before = (mutag_run / name).read_bytes()
    for extra in ([], ["--overwrite"]):
        assert main(["export", str(mutag_run), "--out", str(mutag_run / name), *extra]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "of the run folder" in err, err
    assert (mutag_run / name).read_bytes() == before


def test_a_full_disk_during_export_is_one_line_and_leaves_nothing(mutag_run, tmp_path, capsys, monkeypatch):
    import errno

    import gtsp.inference

    def write_half_then_fail(state, target, metadata):
        Path(target).write_bytes(b"\0" * 50)
        raise OSError(errno.ENOSPC, "No space left on device", str(target))

    monkeypatch.setattr(gtsp.inference, "save_file", write_half_then_fail)
    out = tmp_path / "full" / "m.safetensors"
    assert main(["export", str(mutag_run), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("gtsp: error: the disk is full writing ") and "Traceback" not in err
    assert list((tmp_path / "full").iterdir()) == []  # no half-written file, no temporary file


def test_flipped_weights_or_an_edited_spec_are_refused(mutag_run, tmp_path, capsys):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    out = tmp_path / "m.safetensors"
    assert main(["export", str(mutag_run), "--out", str(out)]) == 0
    with safe_open(str(out), framework="pt") as handle:
        metadata = handle.metadata()
    state = load_file(str(out))
    assert load_model(out)[0] is not None

    flipped = dict(state)
    name = next(k for k, v in state.items() if v.is_floating_point() and v.numel() > 1)
    flipped[name] = state[name].clone()
    flipped[name].view(-1)[0] = -flipped[name].view(-1)[0] + 1.0
    save_file(flipped, str(tmp_path / "flipped.safetensors"), metadata=metadata)
    assert main(["evaluate", str(tmp_path / "flipped.safetensors")]) == 2
    assert "the weights in" in capsys.readouterr().err

    spec = json.loads(metadata["gtsp_spec"])
    spec["hparams"]["pool"] = "max" if spec["hparams"].get("pool") != "max" else "mean"
    save_file(state, str(tmp_path / "edited.safetensors"), metadata={**metadata, "gtsp_spec": json.dumps(spec)})
    with pytest.raises(GtspError, match="was changed after gtsp wrote it"):
        load_model(tmp_path / "edited.safetensors")

    old = {k: v for k, v in metadata.items() if not k.endswith("_sha256")}  # a file from before digests
    save_file(state, str(tmp_path / "old.safetensors"), metadata=old)
    model, _ = load_model(tmp_path / "old.safetensors")
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())
