"""SMILES CSV -> a molecular dataset in OGB's layout, checked, with a summary of what was built.

The pipeline: read the table (:mod:`gtsp.data.mol_csv`), decide the task type, featurise
with OGB's features (:mod:`gtsp.data.featurize`), split (:mod:`gtsp.data.splits`),
check that validation and test can be scored, write OGB's layout
(:mod:`gtsp.data.ogb_layout`) into a temporary folder and move it into place.
``gtsp data build-mol`` calls :func:`build_custom`; official names rebuilt from
MoleculeNet's CSV (ogbg-molhiv, ogbg-molbbbp) go through :func:`build_mol_dataset`.
"""
from __future__ import annotations

import logging
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gtsp.data.featurize import MolGraphs, featurize_table, featurizer_id
from gtsp.data.mol_csv import BINARY, LabelTable, Task, csv_line, infer_task, read_table
from gtsp.data.ogb_layout import meta_for, replace_folder, write_layout, write_markers
from gtsp.data.paths import cache_root as resolve_cache
from gtsp.data.paths import data_root as resolve_data
from gtsp.data.splits import MOL_SPLITS, PARTS, random_split, scaffold_split, unscorable_tasks
from gtsp.data.tu import KNOWN_TU, local_raw_dir
from gtsp.errors import GtspError

log = logging.getLogger("gtsp.data")

_CUSTOM_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
SHOWN_ROWS = 5  # invalid rows listed by line in messages and summaries


@dataclass
class BuildSummary:
    """What a build read, kept, inferred and split; :meth:`lines` is what ``build-mol`` prints."""

    name: str
    folder: Path
    csv_name: str
    rows: int
    task: Task
    label_cols: list[str]
    labels: np.ndarray  # the kept molecules' labels, as stored
    split_name: str
    split: dict[str, np.ndarray]
    invalid: list[tuple[int, str]] = field(default_factory=list)  # (CSV line, SMILES), skipped
    partial_rows: list[int] = field(default_factory=list)
    meta: dict[str, str] = field(default_factory=dict)

    def lines(self) -> list[str]:
        kept = self.rows - len(self.invalid)
        out = [f"built {self.name} at {self.folder} from {self.csv_name}",
               f"molecules: {kept} of {self.rows} rows; invalid SMILES skipped: {len(self.invalid)}"
               + (f" ({_invalid_list(self.invalid)})" if self.invalid else ""),
               f"partially sanitised (kept): {len(self.partial_rows)}",
               f"task: {self.task.type}, metric {self.task.metric} (why: {self.task.reason})"]
        for column, values in zip(self.label_cols, self.labels.T):
            known = values[~np.isnan(values)]
            positives = f", {int(known.sum())} positive" if self.task.type == BINARY else ""
            out.append(f"  {column}: {known.size} labels{positives}, {values.size - known.size} missing")
        sizes = " / ".join(str(len(self.split[p])) for p in PARTS)
        out.append(f"split: {self.split_name}, {sizes} (train / valid / test)")
        return out


def _invalid_list(invalid: list[tuple[int, str]]) -> str:
    shown = "; ".join(f"line {line}: {smiles!r}" for line, smiles in invalid[:SHOWN_ROWS])
    return shown + ("; ..." if len(invalid) > SHOWN_ROWS else "")


def build_mol_dataset(csv_path: str | os.PathLike, out_dir: str | os.PathLike, *, smiles_col: str,
                      label_cols: list[str], task_type: str | None = None, split: str = "scaffold",
                      seed: int = 0, name: str | None = None, skip_invalid: bool = False) -> BuildSummary:
    """Write OGB's dataset layout for ``csv_path`` into ``out_dir`` (replacing a dataset there).

    ``name`` defaults to the CSV's stem. An official OGB name gets OGB's own meta-info;
    for OGB to find it without ``meta_dict``, ``out_dir`` must then be
    ``<root>/<name with '-' -> '_'>``. ``summary.meta`` (also in ``out_dir/meta.json``)
    works as ``PygGraphPropPredDataset(name=name, meta_dict=summary.meta)``.
    ``task_type``: None (inferred), ``"binary"`` or ``"regression"``.
    """
    csv_path, out_dir = Path(csv_path).expanduser(), Path(out_dir).expanduser().resolve()
    if split not in MOL_SPLITS:
        raise GtspError(f"unknown split {split!r}: use one of {', '.join(MOL_SPLITS)}")
    name = name or csv_path.stem
    table = read_table(csv_path, smiles_col, list(label_cols))
    task, labels = infer_task(table, task_type)
    meta = dict(meta_for(name, labels.shape[1], task, split, table.csv_name))
    graphs = featurize_table(table.smiles)
    invalid = [(csv_line(r), table.smiles[r]) for r in graphs.invalid_rows]
    _check_graphs(graphs, invalid, table.csv_name, skip_invalid)
    kept = labels[graphs.rows]
    parts = scaffold_split(graphs.scaffolds) if split == "scaffold" else random_split(len(graphs.rows), seed)
    _check_scorable(kept, parts, task, table.columns, split)
    summary = BuildSummary(name, out_dir, table.csv_name, len(table.smiles), task, table.columns, kept,
                           split, parts, invalid, graphs.partial_rows, meta)
    _write(summary, graphs, table, csv_path, smiles_col, seed)
    _log_partial(table.csv_name, graphs.partial_rows)
    return summary


def _check_graphs(graphs: MolGraphs, invalid: list[tuple[int, str]], csv_name: str, skip_invalid: bool) -> None:
    if invalid and not skip_invalid:
        that = "that row" if len(invalid) == 1 else "those rows"
        raise GtspError(f"{csv_name}: {len(invalid)} invalid SMILES (empty, or RDKit cannot parse them even "
                        f"without sanitisation): {_invalid_list(invalid)}: fix or remove {that}, or pass "
                        "--skip-invalid to leave them out")
    if not graphs.rows:
        raise GtspError(f"{csv_name}: no valid molecule: check the SMILES column")
    if not graphs.edges:
        raise GtspError(f"{csv_name}: no molecule has a bond, which OGB's file format cannot store: "
                        "add molecules with bonds")


def _check_scorable(labels: np.ndarray, parts: dict[str, np.ndarray], task: Task, columns: list[str],
                    split: str) -> None:
    """Refuse a split whose training part lacks a task's labels, or whose validation or test part
    cannot score some task."""
    for part in PARTS:
        problems = unscorable_tasks(labels, parts[part], task.type == BINARY and part != "train")
        if problems:
            listed = "; ".join(f"task {columns[t]!r}: {why}" for t, why in problems)
            fix = ("another --seed or more data" if split == "random"
                   else "--split random (and another --seed if it happens again), or more data")
            raise GtspError(f"the {split} split leaves the {part} split ({len(parts[part])} molecules) "
                            f"without what a task needs: {listed}: use {fix}")


def _write(summary: BuildSummary, graphs: MolGraphs, table: LabelTable, csv_path: Path, smiles_col: str,
           seed: int) -> None:
    """Write the layout into a temporary sibling folder, then move it to ``summary.folder``."""
    out_dir, meta = summary.folder, summary.meta
    meta["dir_path"] = str(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    building = out_dir.parent / f".{out_dir.name}.building-{os.getpid()}"
    shutil.rmtree(building, ignore_errors=True)
    featurizer = featurizer_id()
    notes = {"gtsp source csv": str(csv_path.resolve()), "gtsp smiles col": smiles_col,
             "gtsp label cols": ",".join(table.columns), "gtsp seed": str(seed),
             "gtsp task reason": summary.task.reason,
             "gtsp featurizer": f"{featurizer['name']} ({featurizer['version']})",
             "gtsp partially sanitised rows": ",".join(map(str, graphs.partial_rows)),
             "gtsp skipped invalid rows": str(len(summary.invalid)),
             "gtsp skipped invalid lines": ",".join(str(line) for line, _ in summary.invalid)}
    kept_smiles = [table.smiles[r] for r in graphs.rows]
    try:
        write_layout(building, graphs, kept_smiles, summary.labels, table.columns, summary.split_name,
                     summary.split, summary.task.type)
        write_markers(building, meta, notes, f"{summary.name}: built by gtsp from {table.csv_name} "
                      f"({len(graphs.rows)} molecules, {summary.split_name} split)")
        replace_folder(building, out_dir)
    finally:
        shutil.rmtree(building, ignore_errors=True)


def _log_partial(csv_name: str, rows: list[int]) -> None:
    if rows:
        shown = ", ".join(map(str, rows[:10])) + (", ..." if len(rows) > 10 else "")
        log.info("%s: %d molecule(s) needed partial sanitisation (rows %s)", csv_name, len(rows), shown)


def custom_folder(name: str, cache_root: str | os.PathLike | None = None) -> Path:
    """Where dataset ``name`` made by ``build-mol`` lives: ``<cache>/custom/<name>``."""
    return resolve_cache(cache_root) / "custom" / name


def build_custom(csv: str | os.PathLike, *, smiles_col: str, label_cols: list[str], name: str,
                 cache_root: str | os.PathLike | None = None, data_root: str | os.PathLike | None = None,
                 split: str = "scaffold", seed: int = 0, task_type: str | None = None,
                 skip_invalid: bool = False, overwrite: bool = False) -> BuildSummary:
    """Build a user's CSV as dataset ``name`` under ``<cache_root>/custom/<name>`` (``gtsp data build-mol``).

    An existing dataset of that name is kept unless ``overwrite``.
    """
    _check_custom_name(name, data_root)
    out_dir = custom_folder(name, cache_root)
    if (out_dir / "meta.json").is_file() and not overwrite:
        raise GtspError(f"dataset {name!r} already exists at {out_dir}: pass --overwrite to rebuild it "
                        "(its processed caches go too), or choose another --name")
    return build_mol_dataset(csv, out_dir, smiles_col=smiles_col, label_cols=label_cols, task_type=task_type,
                             split=split, seed=seed, name=name, skip_invalid=skip_invalid)


def _check_custom_name(name: str, data_root: str | os.PathLike | None) -> None:
    """Refuse names that are not plain, or that a built-in dataset (OGB, TU) already uses."""
    if not _CUSTOM_NAME.fullmatch(name):
        raise GtspError(f"invalid dataset name {name!r}: use letters, digits, '.', '_' or '-', "
                        "starting with a letter or digit")
    if name.lower().startswith("ogbg-"):
        raise GtspError(f"dataset name {name!r} starts with 'ogbg-', which is reserved for OGB's datasets: "
                        "choose another --name")
    tu_names = {n.upper() for n in KNOWN_TU}
    if name.upper() in tu_names or local_raw_dir(name, resolve_data(data_root)) is not None:
        raise GtspError(f"dataset name {name!r} is a built-in TU dataset: choose another --name")
