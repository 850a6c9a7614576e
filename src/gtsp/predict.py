"""Predictions of a model file for new molecules (``gtsp predict``).

The SMILES of a CSV are featurised exactly as the model's training data were (the featuriser
recorded in the model file must be the one installed), with the precomputed encodings the
model needs. The output CSV keeps every input row and column, adds one prediction column per
output (probabilities for classification, values in the labels' units for regression) and an
``error`` column that marks rows whose SMILES cannot be parsed, or whose molecule is over the
size limit (:data:`MAX_ATOMS`); their predictions are empty.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from gtsp.data.batching import eval_batches
from gtsp.data.info import DatasetInfo
from gtsp.errors import GtspError
from gtsp.models.files import load_model
from gtsp.train.metrics import destandardise

ERROR_COLUMN = "error"
# molecules larger than this are marked, not predicted: the datasets gtsp trains on have at most a few
# hundred atoms, and attention (and the shortest paths some models need) grows with the square of the atoms
MAX_ATOMS = 1000
MAX_SMILES_CHARS = 20 * MAX_ATOMS  # longer text is not even parsed


@dataclass(frozen=True)
class PredictSummary:
    """How many rows were predicted and how many had an unparseable SMILES."""

    out: Path
    predicted: int
    invalid: int
    too_large: int = 0

    def line(self) -> str:
        large = f", {self.too_large} over the size limit ({MAX_ATOMS:,} atoms) marked" if self.too_large else ""
        return f"wrote {self.out}: {self.predicted} molecules predicted, {self.invalid} invalid SMILES marked{large}"


def predict_csv(model_file: str | os.PathLike, csv: str | os.PathLike, out: str | os.PathLike, *,
                smiles_col: str = "smiles", batch_size: int = 128, threads: int = 1,
                overwrite: bool = False) -> PredictSummary:
    """Write ``out``: the rows of ``csv`` with the predictions of ``model_file`` for their SMILES."""
    csv, out = Path(csv), Path(out)
    _check_out(csv, out, overwrite)
    torch.set_num_threads(threads)
    model, spec = load_model(model_file)
    check_molecular(spec, model_file)
    frame = _read_smiles(csv, smiles_col)
    from gtsp.data.featurize import featurize_smiles  # imports RDKit: molecular models only

    smiles = frame[smiles_col].tolist()
    too_large = _too_large(smiles)
    graphs, invalid = featurize_smiles(["" if row in too_large else s for row, s in enumerate(smiles)],
                                       spec["features"])
    info = DatasetInfo.from_dict(spec["dataset_info"])
    values = predict_graphs(model, info, graphs, batch_size)
    table = _output_table(frame, values, invalid, info, spec)
    for row, reason in too_large.items():
        table.loc[row, ERROR_COLUMN] = reason
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, index=False)
    return PredictSummary(out, len(graphs), len(invalid) - len(too_large), len(too_large))


def _too_large(smiles: list[str]) -> dict[int, str]:
    """Rows whose molecule is over the size limit, with the reason (attention grows with the square of atoms)."""
    from rdkit import Chem, rdBase

    reasons = {}
    with rdBase.BlockLogs():
        for row, text in enumerate(smiles):
            if len(text) > MAX_SMILES_CHARS:
                reasons[row] = f"SMILES over the {MAX_SMILES_CHARS:,}-character limit ({len(text):,} characters)"
                continue
            mol = Chem.MolFromSmiles(text, sanitize=False)
            if mol is not None and mol.GetNumAtoms() > MAX_ATOMS:
                reasons[row] = f"molecule over the {MAX_ATOMS:,}-atom limit ({mol.GetNumAtoms():,} atoms)"
    return reasons


@torch.no_grad()
def predict_graphs(model: torch.nn.Module, info: DatasetInfo, graphs: list, batch_size: int) -> torch.Tensor:
    """``[graphs, outputs]``: probabilities (binary: sigmoid, multiclass: softmax) or regression values."""
    if not graphs:
        return torch.empty(0, info.num_outputs)
    batches, order = eval_batches(graphs, batch_size)
    model.eval()
    logits = torch.cat([model(batch).float() for batch in batches])
    logits = logits[torch.argsort(order)]  # back to the input order
    if info.task == "binary":
        return torch.sigmoid(logits)
    if info.task == "multiclass":
        return torch.softmax(logits, dim=-1)
    return destandardise(info, logits)


def output_columns(info: DatasetInfo, spec: dict[str, Any]) -> list[str]:
    """Names of the prediction columns: ``prob_<task>`` / ``prob_class_<k>`` / ``pred_<task>``."""
    if info.task == "multiclass":
        return [f"prob_class_{k}" for k in range(info.num_outputs)]
    tasks = spec.get("tasks") or [f"task{k}" for k in range(info.num_outputs)]
    prefix = "prob" if info.task == "binary" else "pred"
    return [f"{prefix}_{task}" for task in tasks]


def _output_table(frame: pd.DataFrame, values: torch.Tensor, invalid: list[int], info: DatasetInfo,
                  spec: dict[str, Any]) -> pd.DataFrame:
    table = frame.copy()
    bad = set(invalid)
    valid_rows = [row for row in range(len(frame)) if row not in bad]
    for k, column in enumerate(output_columns(info, spec)):
        cells = [""] * len(frame)
        for row, value in zip(valid_rows, values[:, k].tolist()):
            cells[row] = repr(float(value))
        table[column] = cells
    table[ERROR_COLUMN] = ["invalid SMILES" if row in bad else "" for row in range(len(frame))]
    return table


def _check_out(csv: Path, out: Path, overwrite: bool) -> None:
    if out.resolve() == csv.resolve():
        raise GtspError(f"--out {out} is the input CSV: write the predictions to another file")
    if out.exists() and not overwrite:
        raise GtspError(f"--out {out} already exists: choose another file, or pass --overwrite to replace it")


def check_molecular(spec: dict[str, Any], model_file: str | os.PathLike) -> None:
    """Refuse a model that was not trained on molecules, or on features this installation computes differently."""
    from gtsp.data.featurize import featurizer_id

    if not spec["dataset_info"].get("molecular"):
        raise GtspError(f"{model_file} was trained on {spec['dataset']}, which is not a molecular dataset: "
                        "gtsp predict needs a model trained on SMILES (an ogbg-mol* or build-mol dataset)")
    recorded, installed = spec.get("featurizer"), featurizer_id()
    if recorded != installed:
        raise GtspError(f"{model_file} was trained with the featuriser {recorded}, but this installation has "
                        f"{installed}: install the recorded versions, or retrain the model here")


def _read_smiles(csv: Path, smiles_col: str) -> pd.DataFrame:
    if not csv.is_file():
        raise GtspError(f"CSV file {csv} does not exist: check the --csv path")
    try:
        frame = pd.read_csv(csv, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise GtspError(f"{csv}: not a readable CSV file ({err}): fix the file") from None
    if smiles_col not in frame.columns:
        raise GtspError(f"{csv.name}: no column {smiles_col!r}; the CSV has columns "
                        f"{', '.join(map(repr, frame.columns))}: pass --smiles-col with the SMILES column")
    if frame.empty:
        raise GtspError(f"{csv.name}: no data rows: add molecules below the header")
    taken = [c for c in (ERROR_COLUMN,) if c in frame.columns]
    if taken:
        raise GtspError(f"{csv.name} already has a column {taken[0]!r}, which gtsp predict writes: rename it")
    return frame
