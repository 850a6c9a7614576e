"""Every bad input gets one clear line on stderr and exit status 2, never a traceback."""
import pytest

from gtsp.cli import build_parser, config_from_args, main


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
    assert code == 2 and "--epochs must be at least 1 (got -3)" in err[0]


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
                        "--dataset", "MUTAG", "--out", str(tmp_path))
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
