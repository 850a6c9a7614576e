"""RunConfig.validate: every field typed and ranged, YAML 1.1 numbers read as numbers, resume rules."""
import dataclasses

import pytest

from gtsp.config import RunConfig, check_resume, load_yaml, merge, resume_changes
from gtsp.errors import GtspError
from gtsp.models import MODELS
from gtsp.models.params import hyperparameters


def config_from_yaml(tmp_path, text: str) -> RunConfig:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return merge(RunConfig(), load_yaml(path)).validate()


def test_yaml_1_1_numbers_are_read_as_numbers(tmp_path):
    # PyYAML (YAML 1.1) reads 1e-3 and 1e2 as strings; 1.0e-5 as a float
    cfg = config_from_yaml(tmp_path, "lr: 1e-3\nepochs: 1e2\nweight_decay: 1.0e-5\ngrad_clip: '2'\n"
                                     "model_args:\n  dropout: 1e-1\n  hidden: 32.0\n")
    assert cfg.lr == 0.001 and type(cfg.lr) is float
    assert cfg.epochs == 100 and type(cfg.epochs) is int
    assert cfg.weight_decay == 1e-5 and cfg.grad_clip == 2.0
    assert cfg.model_args == {"dropout": 0.1, "hidden": 32} and type(cfg.model_args["hidden"]) is int


# one wrong-typed value per field: a field added without a type check makes test_every_field_is_covered fail
BAD_TYPES = {
    "model": (3, "is not a text"), "dataset": (["MUTAG"], "is not a text"), "data_root": (1, "is not a text"),
    "cache_root": (True, "is not a text"), "out": (None, "is not a text"), "seed": ("zero", "is not an integer"),
    "epochs": ("ten", "is not an integer"), "batch_size": (12.5, "is not an integer"),
    "lr": ("fast", "is not a number"), "weight_decay": (True, "is not a number"),
    "warmup_epochs": ("five", "is not an integer"), "grad_clip": ("inf", "is not a number"),
    "select_from": ("late", "is not an integer"),
    "bucket_pool": ("x", "is not an integer"), "threads": (1.5, "is not an integer"),
    "device": (0, "is not a text"), "folds": ("ten", "is not an integer"), "fold": ([], "is not an integer"),
    "resume": ("yes please", "is not true or false"), "overwrite": (1, "is not true or false"),
    "model_args": ([1], "is not a mapping"), "prune": ("head", "is not a mapping"),
    "prune_args": (["layer"], "is not a mapping"), "budget": ("flops=0.5", "is not a mapping"),
}


def test_every_field_is_covered():
    assert set(BAD_TYPES) == {f.name for f in dataclasses.fields(RunConfig)}


@pytest.mark.parametrize("name", sorted(BAD_TYPES))
def test_each_field_refuses_a_wrong_type_naming_field_and_value(name):
    value, phrase = BAD_TYPES[name]
    with pytest.raises(GtspError) as err:
        RunConfig(**{name: value}).validate()
    message = str(err.value)
    assert message.startswith(f"{name}={value!r} {phrase}") and "takes" in message


@pytest.mark.parametrize("name,value,allowed", [
    ("epochs", 0, "an integer >= 1"), ("batch_size", -1, "an integer >= 1"), ("lr", 0.0, "a number > 0"),
    ("weight_decay", -1e-4, "a number >= 0"), ("warmup_epochs", -1, "an integer >= 0"),
    ("grad_clip", -1.0, "a number >= 0"), ("bucket_pool", 0, "an integer >= 1"), ("threads", 0, "an integer >= 1"),
    ("device", "tpu", "auto, cpu or cuda"), ("folds", 1, "or an integer >= 2"), ("seed", -1, "[0, 2**32)"),
])
def test_ranges_name_field_value_and_what_is_allowed(name, value, allowed):
    with pytest.raises(GtspError) as err:
        RunConfig(**{name: value}).validate()
    message = str(err.value)
    assert message.startswith(f"{name}={value!r} is not allowed: {name} (--{name.replace('_', '-')}) takes ")
    assert allowed in message


@pytest.mark.parametrize("overrides,message", [
    ({"fold": 2}, "--fold 2 needs --folds"),
    ({"folds": 5, "fold": 5}, "fold=5 does not exist for 5 folds"),
    ({"model_args": {"dropout": 2.0}}, "model_args.dropout=2.0 is outside [0, 1)"),
    ({"model_args": {"attn_dropout": 1.0}}, "model_args.attn_dropout=1.0 is outside [0, 1)"),
    ({"model_args": {"hidden": "abc"}}, "model_args.hidden='abc' is not an integer"),
    ({"model_args": {"local": 3}}, "model_args.local=3 is not a text"),
    ({"model_args": {"hidden": 0}}, "model_args.hidden=0 is below 1"),
    ({"model_args": {"hiden": 32}}, "gps has no hyper-parameter hiden"),
    ({"model_args": {"heads": 3}}, "3 attention heads do not divide the hidden size 64"),
    ({"prune": {"head": "abc"}}, "prune.head='abc' is not a number"),
    ({"prune": {"head": 1.0}}, "--prune head=1.0 is outside [0, 1)"),
    ({"prune": {"branch": 0.5}}, "unknown pruning dimension(s) ['branch']"),
    ({"prune_args": {"head": {"mode": "topk"}}}, "pruning options head.mode are given but head is not pruned"),
    ({"prune": {"head": 0.0}, "prune_args": {"head": {"mode": "topk"}}}, "head is not pruned"),
    ({"prune": {"layer": 0.5}, "prune_args": {"layer": "cka"}}, "prune_args.layer='cka' is not a mapping"),
    ({"model": "gat"}, "unknown model 'gat'"),
])
def test_settings_that_would_be_ignored_or_crash_are_refused(overrides, message):
    with pytest.raises(GtspError) as err:
        RunConfig(**overrides).validate()
    assert message in str(err.value)


def test_hyperparameter_types_follow_each_backbone():
    for name, cls in MODELS.items():
        declared = hyperparameters(cls.Params)
        assert {"hidden", "layers", "heads", "dropout", "attention"} <= set(declared)
        assert declared["hidden"].kind is int and declared["dropout"].kind is float
        assert declared["attention"].kind is bool
        # the defaults are the backbone's own: building with them equals building with none
        assert cls.Params() == cls.Params(**{k: v.default for k, v in declared.items()})
    assert hyperparameters(MODELS["graphtrans"].Params)["gnn_hidden"].optional
    assert hyperparameters(MODELS["graphormer"].Params)["spatial_init"].kind is str


def saved_config(**overrides) -> dict:
    return RunConfig(**overrides).validate().to_dict()


def test_resume_compares_settings_entry_by_entry_with_defaults_filled_in():
    saved = saved_config(model_args={"hidden": 32})
    # the backbone default written out, a zero ratio, and safe settings are no refused change
    cfg = RunConfig(model_args={"hidden": 32, "layers": hyperparameters(MODELS["gps"].Params)["layers"].default},
                    prune={"head": 0.0}, lr=0.01, threads=2, data_root="/elsewhere", epochs=80, resume=True).validate()
    assert check_resume(saved, cfg) == {"lr": (0.001, 0.01), "threads": (1, 2), "data_root": (None, "/elsewhere"),
                                        "epochs": (50, 80), "resume": (False, True)}


def test_resume_refuses_other_changes_listing_each():
    saved = saved_config(model_args={"hidden": 32})
    cfg = RunConfig(dataset="NCI1", model_args={"hidden": 16}, batch_size=64).validate()
    with pytest.raises(GtspError) as err:
        check_resume(saved, cfg)
    message = str(err.value)
    assert "batch_size: 128 -> 64" in message and "dataset: 'MUTAG' -> 'NCI1'" in message
    assert "model_args.hidden: 32 -> 16" in message and "--overwrite" in message
    assert set(resume_changes(saved, cfg)) == {"batch_size", "dataset", "model_args.hidden"}


@pytest.mark.parametrize("saved,new", [
    ({"epochs": 50}, {"epochs": 40}),  # fewer epochs: the cosine schedule would jump
    ({"epochs": 50, "prune": {"head": 0.5}}, {"epochs": 60, "prune": {"head": 0.5}}),  # pruning schedule
])
def test_epochs_may_only_grow_and_only_for_dense_runs(saved, new):
    with pytest.raises(GtspError, match="epochs: 50 -> "):
        check_resume(saved_config(**saved), RunConfig(**new).validate())
