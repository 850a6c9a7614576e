"""Every bad input gets one clear line on stderr and exit status 2, never a traceback."""
import pytest
import torch

from gtsp.cli import build_parser, config_from_args, main
from gtsp.config import RunConfig


def run_cli(capsys, *argv):
    code = main(list(argv))
    err = capsys.readouterr().err.strip().splitlines()
    return code, err


def test_unknown_dataset_lists_known(capsys, tmp_path):
    code, err = run_cli(capsys, "train", "--dataset", "nope", "--cache-root", str(tmp_path), "--out", str(tmp_path))
    assert code == 2 and len(err) == 1
    assert "unknown dataset 'nope'" in err[0] and "NCI1" in err[0] and "ogbg-mol" in err[0]


def test_heads_that_do_not_divide_hidden(capsys, tmp_path):
    code, err = run_cli(capsys, "train", "--hidden", "64", "--heads", "3", "--out", str(tmp_path))
    assert code == 2 and err == ["gtsp: error: 3 attention heads do not divide the hidden size 64: "
                                 "choose --heads that divides --hidden"]


def test_negative_epochs(capsys, tmp_path):
    code, err = run_cli(capsys, "train", "--epochs", "-3", "--out", str(tmp_path))
    assert code == 2 and err == ["gtsp: error: epochs=-3 is not allowed: epochs (--epochs) takes an integer >= 1"]


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def fake_checkpoint(out, **config):
    """A checkpoint whose run started with ``config`` (the settings check reads nothing else)."""
    out.mkdir()
    torch.save({"model": {}, "optimizer": {}, "scheduler": {}, "trainer": {"epoch": 1}, "rng": {},
                "run": {"config": RunConfig(**config).validate().to_dict()}}, out / "checkpoint.pt")


@pytest.mark.parametrize("make_argv,message", [
    (lambda p: ["--config", write(p, "c.yaml", 'epochs: "ten"\n')],
     "epochs='ten' is not an integer: epochs (--epochs) takes an integer >= 1"),
    (lambda p: ["--config", write(p, "c.yaml", "prune: {head: abc}\n"), "--epochs", "1"], "prune.head='abc' is not a number"),
    (lambda p: ["--model-arg", "hidden=abc", "--epochs", "1"], "model_args.hidden='abc' is not an integer"),
    (lambda p: ["--dropout", "2", "--epochs", "1"], "model_args.dropout=2.0 is outside [0, 1)"),
    (lambda p: ["--fold", "2", "--epochs", "1"], "--fold 2 needs --folds"),
    (lambda p: ["--prune-arg", "layer.criterion=cka", "--epochs", "1"], "layer is not pruned"),
    (lambda p: ["--resume", "--overwrite", "--epochs", "1"], "--resume and --overwrite contradict each other"),
    (lambda p: ["--prune", "token=0.5,token=0.2"], "--prune names token twice (token=0.5,token=0.2): give each key once"),
    (lambda p: ["--budget", "flops=0.5,flops=0.3"], "--budget names flops twice"),
])
def test_bad_settings_get_one_line_and_no_traceback(capsys, tmp_path, make_argv, message):
    code, err = run_cli(capsys, "train", "--out", str(tmp_path / "run"), *make_argv(tmp_path))
    assert code == 2 and len(err) == 1 and message in err[0]
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("argv,change", [
    (["--hidden", "16"], "model_args.hidden: 32 -> 16"),
    (["--hidden", "32", "--dataset", "NCI1"], "dataset: 'MUTAG' -> 'NCI1'"),
    (["--hidden", "32", "--epochs", "1", "--batch-size", "64", "--seed", "3"], "batch_size: 128 -> 64, seed: 0 -> 3"),
])
def test_resume_with_other_settings_lists_them(capsys, tmp_path, argv, change):
    fake_checkpoint(tmp_path / "run", epochs=1, model_args={"hidden": 32})
    code, err = run_cli(capsys, "train", "--resume", "--out", str(tmp_path / "run"), *argv)
    assert code == 2 and len(err) == 1
    assert err[0].startswith(f"gtsp: error: --resume: settings differ from the checkpoint's ({change})")


def test_yaml_numbers_in_exponent_form_are_numbers(tmp_path):
    args = build_parser().parse_args(["train", "--config", write(tmp_path, "c.yaml", "lr: 1e-3\nweight_decay: 5e-4\n")])
    cfg = config_from_args(args).validate()
    assert (cfg.lr, cfg.weight_decay) == (0.001, 0.0005)


def test_unknown_model(capsys, tmp_path):
    code, err = run_cli(capsys, "train", "--model", "gat", "--out", str(tmp_path))
    assert code == 2 and "unknown model 'gat'" in err[0] and "gps" in err[0]


def test_missing_ogb_files_name_the_expected_csv(capsys, tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr("ogb.graphproppred.dataset_pyg.download_url", no_network)
    code, err = run_cli(capsys, "train", "--dataset", "ogbg-molhiv", "--data-root", str(tmp_path / "empty"),
                        "--cache-root", str(tmp_path / "cache"), "--out", str(tmp_path))
    assert code == 2 and len(err) == 1
    assert str(tmp_path / "empty" / "moleculenet" / "hiv.csv") in err[0]


def test_csv_without_the_named_columns(capsys, tmp_path):
    csv = tmp_path / "mols.csv"
    csv.write_text("smiles,activity\nCCO,1\nc1ccccc1,0\n")
    code, err = run_cli(capsys, "data", "build-mol", "--csv", str(csv), "--smiles-col", "SMILES",
                        "--label-cols", "activity", "--name", "mine", "--cache-root", str(tmp_path / "c"))
    assert code == 2 and len(err) == 1 and "SMILES" in err[0] and "activity" in err[0]


def test_bad_config_file_and_bad_prune_spec(capsys, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("epochs: 3\nlearning_rate: 0.1\n")
    code, err = run_cli(capsys, "train", "--config", str(bad), "--out", str(tmp_path))
    assert code == 2 and "unknown keys ['learning_rate']" in err[0]
    code, err = run_cli(capsys, "train", "--prune", "head:0.5", "--out", str(tmp_path))
    assert code == 2 and "not key=value" in err[0]


def test_flags_override_the_yaml_file(tmp_path):
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("epochs: 7\nlr: 0.01\nmodel_args:\n  hidden: 32\n  heads: 4\n")
    args = build_parser().parse_args(["train", "--config", str(cfg_file), "--epochs", "3", "--heads", "8",
                                      "--model-arg", "local=gin", "--prune", "head=0.5"])
    cfg = config_from_args(args)
    assert (cfg.epochs, cfg.lr) == (3, 0.01)
    assert cfg.model_args == {"hidden": 32, "heads": 8, "local": "gin"}
    assert cfg.prune == {"head": 0.5}


def test_prune_arg_sets_one_option_and_keeps_the_yaml_ones(tmp_path, capsys):
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("prune_args:\n  layer:\n    criterion: cka\n    drop_prob: 0.1\n")
    args = build_parser().parse_args(["train", "--config", str(cfg_file), "--prune", "layer=0.25",
                                      "--prune-arg", "layer.drop_prob=0.2,head.mode=topk"])
    cfg = config_from_args(args)
    assert cfg.prune_args == {"layer": {"criterion": "cka", "drop_prob": 0.2}, "head": {"mode": "topk"}}
    code, err = run_cli(capsys, "train", "--prune-arg", "drop_prob=0.2", "--out", str(tmp_path))
    assert code == 2 and "name the dimension and the option" in err[0]
    code, err = run_cli(capsys, "train", "--prune", "layer=0.25", "--prune-arg", "layer.foo=1",
                        "--dataset", "MUTAG", "--out", str(tmp_path / "run"))
    assert code == 2 and "unknown layer pruning option(s) ['foo']" in err[0] and "finetune_drop_prob" in err[0]


def test_help_explains_every_train_option(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    for flag in ("--dataset", "--data-root", "--epochs", "--resume", "--prune", "--device", "--config"):
        assert flag in text


def test_unknown_hyper_parameter_names_the_valid_ones(capsys, tmp_path):
    code, err = run_cli(capsys, "train", "--dataset", "MUTAG", "--model-arg", "hiden=32", "--cache-root",
                        str(tmp_path), "--out", str(tmp_path))
    assert code == 2 and len(err) == 1
    assert "no hyper-parameter hiden" in err[0] and "hidden" in err[0]


def test_data_prepare_caches_the_encodings_the_model_needs(capsys, tmp_path):
    code = main(["data", "prepare", "--dataset", "MUTAG", "--model", "gps", "--cache-root", str(tmp_path)])
    assert code == 0
    assert "MUTAG ready for gps" in capsys.readouterr().out
    processed = {p.name for p in tmp_path.rglob("processed*") if p.is_dir()}
    assert any("rwse" in name for name in processed), processed
