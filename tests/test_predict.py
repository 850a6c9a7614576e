"""gtsp predict: the same numbers as the model on the dataset path, invalid rows kept and marked."""
import pandas as pd
import pytest
import torch

from gtsp.cli import main
from gtsp.config import RunConfig
from gtsp.data.batching import eval_batches
from gtsp.data.mol_build import build_custom
from gtsp.data.registry import load_dataset
from gtsp.models.files import MODEL_FILE, load_model
from gtsp.train.metrics import predictions
from gtsp.train.run import run
from gtsp.train.trainer import predict


@pytest.fixture(scope="module")
def lipo_model(data_root, tmp_path_factory):
    """A GPS trained one epoch on the first 60 molecules of lipo.csv, and their SMILES."""
    root = tmp_path_factory.mktemp("predict")
    rows = (data_root / "moleculenet" / "lipo.csv").read_text().splitlines()[:61]
    csv = root / "lipo60.csv"
    csv.write_text("\n".join(rows) + "\n")
    cache = root / "cache"
    build_custom(csv, smiles_col="smiles", label_cols=["lipo"], name="lipo60", cache_root=cache, split="random")
    cfg = RunConfig(dataset="lipo60", cache_root=str(cache), out=str(root / "run"), epochs=1, batch_size=16,
                    model_args={"hidden": 16, "layers": 1, "heads": 2})
    run(cfg, progress=False)
    return root / "run" / MODEL_FILE, cache, [r.split(",")[0] for r in rows[1:]]


def test_predictions_equal_the_model_on_the_dataset_path_and_invalid_rows_are_marked(lipo_model, tmp_path, capsys):
    model_file, cache, smiles = lipo_model
    new = tmp_path / "new.csv"
    pd.DataFrame({"id": range(len(smiles) + 1), "smiles": [*smiles[:30], "C1CC(", *smiles[30:]]}).to_csv(new, index=False)
    assert main(["predict", str(model_file), "--csv", str(new), "--out", str(tmp_path / "p.csv")]) == 0
    assert capsys.readouterr().out.strip().endswith("60 molecules predicted, 1 invalid SMILES marked")
    table = pd.read_csv(tmp_path / "p.csv", keep_default_na=False)
    assert list(table.columns) == ["id", "smiles", "pred_lipo", "error"] and len(table) == 61
    assert table.loc[30, "error"] == "invalid SMILES" and table.loc[30, "pred_lipo"] == ""
    predicted = torch.tensor(table.drop(index=30)["pred_lipo"].astype(float).to_numpy())

    model, spec = load_model(model_file)
    data = load_dataset("lipo60", cache_root=str(cache), features=spec["features"])
    by_index = torch.empty(60, dtype=torch.float64)
    for part in ("train", "valid", "test"):
        logits, _ = predict(model, eval_batches(getattr(data, part), 16), torch.device("cpu"))
        by_index[torch.as_tensor(data.split[part])] = predictions(data.info, logits).view(-1).double()
    assert torch.allclose(predicted, by_index, atol=1e-5)  # graph i of the dataset is CSV row i


def test_refusals_name_the_problem(lipo_model, tmp_path, capsys, monkeypatch):
    model_file, _, _ = lipo_model
    new = tmp_path / "new.csv"
    new.write_text("mol\nCCO\n")
    assert main(["predict", str(model_file), "--csv", str(new), "--out", str(tmp_path / "p.csv")]) == 2
    assert "no column 'smiles'; the CSV has columns 'mol'" in capsys.readouterr().err
    assert main(["predict", str(model_file), "--csv", str(new), "--out", str(new), "--smiles-col", "mol"]) == 2
    assert "is the input CSV" in capsys.readouterr().err
    monkeypatch.setattr("gtsp.data.featurize.featurizer_id", lambda: {"name": "other", "version": "0"})
    assert main(["predict", str(model_file), "--csv", str(new), "--out", str(tmp_path / "p.csv"),
                 "--smiles-col", "mol"]) == 2
    assert "but this installation has {'name': 'other'" in capsys.readouterr().err
    assert not (tmp_path / "p.csv").exists()


def test_molecules_over_the_size_limit_are_marked_fast_with_the_limit(lipo_model, tmp_path, capsys):
    import time

    from gtsp.predict import MAX_ATOMS, MAX_SMILES_CHARS

    model_file, _, smiles = lipo_model
    new = tmp_path / "big.csv"
    huge = "C" * 200_000  # a 200,000-atom chain
    large = "C" * (MAX_ATOMS + 1)
    pd.DataFrame({"smiles": [smiles[0], huge, large, smiles[1]]}).to_csv(new, index=False)
    start = time.monotonic()
    assert main(["predict", str(model_file), "--csv", str(new), "--out", str(tmp_path / "p.csv")]) == 0
    assert time.monotonic() - start < 30
    assert capsys.readouterr().out.strip().endswith(
        f"2 molecules predicted, 0 invalid SMILES marked, 2 over the size limit ({MAX_ATOMS:,} atoms) marked")
    table = pd.read_csv(tmp_path / "p.csv", keep_default_na=False)
    assert table.loc[1, "error"] == f"SMILES over the {MAX_SMILES_CHARS:,}-character limit (200,000 characters)"
    assert table.loc[2, "error"] == f"molecule over the {MAX_ATOMS:,}-atom limit ({MAX_ATOMS + 1:,} atoms)"
    assert table.loc[1, "pred_lipo"] == table.loc[2, "pred_lipo"] == ""
    assert table.loc[0, "pred_lipo"] != "" and table.loc[3, "pred_lipo"] != ""
