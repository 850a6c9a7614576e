"""A SMILES table read from CSV: label parsing and the task type the labels call for.

Every cell is read as text, so that nothing is guessed: an empty cell, ``nan`` or
``NA`` (any case) is a missing label; anything else must be a finite number that
float32 (the dtype labels are trained with) can hold. Locations in messages are
1-based CSV line numbers (line 1 is the header), as an editor shows them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from gtsp.errors import GtspError

BINARY = "binary classification"  # OGB's names of the task types
REGRESSION = "regression"
TASK_CHOICES = ("binary", "regression")
MISSING = frozenset({"", "nan", "na"})  # label cells that mean "not measured" (compared lower-cased)
FLOAT32_MAX = float(np.finfo(np.float32).max)
# Integer labels with at most this many distinct values look like classes (or codes), not
# measurements: the task type is then asked for rather than guessed.
FEW_INTEGER_VALUES = 10


def csv_line(row: int) -> int:
    """The 1-based line of data row ``row`` (0-based) in a CSV file with one header line."""
    return row + 2


@dataclass(frozen=True)
class LabelTable:
    """SMILES and labels of a CSV file: ``labels`` is rows x tasks, float64, NaN = missing."""

    csv_name: str
    smiles: list[str]
    labels: np.ndarray
    columns: list[str]


def read_table(csv_path: Path, smiles_col: str, label_cols: list[str]) -> LabelTable:
    """The SMILES column and the label columns of ``csv_path``; one clear error for any bad cell."""
    if not csv_path.is_file():
        raise GtspError(f"CSV file {csv_path} does not exist: check the path (or --data-root / GTSP_DATA)")
    if not label_cols:
        raise GtspError(f"{csv_path.name}: no label column given: pass at least one, e.g. --label-cols y")
    try:
        frame = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise GtspError(f"{csv_path}: not a readable CSV file ({err}): fix the file") from None
    wanted = [smiles_col, *label_cols]
    missing = [c for c in wanted if c not in frame.columns]
    if missing:
        raise GtspError(f"{csv_path.name}: column(s) {', '.join(map(repr, missing))} not found; "
                        f"the CSV has columns {', '.join(map(repr, frame.columns))}: pass the right names")
    if frame.empty:
        raise GtspError(f"{csv_path.name}: no data rows: add molecules below the header")
    smiles = [s.strip() for s in frame[smiles_col].tolist()]
    labels = np.stack([_parse_column(frame[c].tolist(), csv_path.name, c) for c in label_cols], axis=1)
    return LabelTable(csv_path.name, smiles, labels, list(label_cols))


def _parse_column(cells: list[str], csv_name: str, column: str) -> np.ndarray:
    values = np.array([_label(cell, f"{csv_name} line {csv_line(row)} (row {row}), column {column!r}")
                       for row, cell in enumerate(cells)], dtype=np.float64)
    if np.isnan(values).all():
        raise GtspError(f"{csv_name}: label column {column!r} has no values: fill it or drop that column")
    return values


def _label(cell: str, where: str) -> float:
    """The label in ``cell``: NaN for a missing marker; an error for anything not a usable number."""
    text = cell.strip()
    if text.lower() in MISSING:
        return math.nan
    try:
        value = float(text)
    except ValueError:
        raise GtspError(f"{where}: label {cell!r} is not a number: fix that cell or leave it empty "
                        "for a missing label") from None
    if math.isnan(value):
        raise GtspError(f"{where}: label {cell!r} is not a missing-value marker gtsp knows: "
                        "leave the cell empty (or write NA) for a missing label")
    if math.isinf(value) or abs(value) > FLOAT32_MAX:
        raise GtspError(f"{where}: label {cell!r} is not finite in float32 (largest {FLOAT32_MAX:.3g}), "
                        "the precision labels are trained in: fix the value or rescale the column")
    return value


@dataclass(frozen=True)
class Task:
    """The task type as OGB names it, its metric, and why it was chosen."""

    type: str
    metric: str
    num_classes: int
    reason: str


def infer_task(table: LabelTable, requested: str | None) -> tuple[Task, np.ndarray]:
    """The task for ``table``'s labels and the labels to store (``--task binary`` maps -1/1 to 0/1).

    Without ``requested``: labels all 0/1 are binary; labels that are a few distinct
    integers ({-1, 1}, {0, 1, 2}, ...) are refused, since they may be classes or codes
    and silently fitting them as numbers would be wrong; anything else is regression.
    """
    labels = table.labels
    values = np.unique(labels[~np.isnan(labels)])
    if requested is not None and requested not in TASK_CHOICES:
        raise GtspError(f"unknown task {requested!r}: use one of {', '.join(TASK_CHOICES)}")
    if requested == "regression":
        return Task(REGRESSION, "rmse", -1, "set by --task regression"), labels
    if np.isin(values, (0.0, 1.0)).all():
        why = "set by --task binary" if requested else "every known label is 0 or 1"
        return Task(BINARY, "rocauc", 2, why), labels
    if requested == "binary":
        if np.isin(values, (-1.0, 1.0)).all():
            return (Task(BINARY, "rocauc", 2, "set by --task binary; labels -1/1 stored as 0/1"),
                    np.where(labels == -1.0, 0.0, labels))
        raise GtspError(f"{table.csv_name}: --task binary needs labels 0/1 (or -1/1, stored as 0/1), but the "
                        f"labels take the values {_some(values)}: fix the labels or use --task regression")
    integers = bool(np.all(values == np.round(values)))
    if integers and len(values) <= FEW_INTEGER_VALUES:
        raise GtspError(f"{table.csv_name}: the labels are the integers {_some(values)}, which may be classes "
                        "rather than measured values: pass --task binary (labels 0/1, or -1/1 stored as 0/1) "
                        "or --task regression to fit them as numbers")
    kind = f"more than {FEW_INTEGER_VALUES} distinct integers" if integers else "not only integers"
    return Task(REGRESSION, "rmse", -1, f"{len(values)} distinct label values, {kind}"), labels


def _some(values: np.ndarray) -> str:
    shown = ", ".join(f"{v:g}" for v in values[:6])
    return "{" + shown + (", ..." if len(values) > 6 else "") + "}"
