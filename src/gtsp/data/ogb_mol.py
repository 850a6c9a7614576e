"""Molecular datasets in OGB's own format, built from MoleculeNet-style CSV files.

A CSV with a SMILES column and one or more label columns is turned into the
on-disk layout of the Open Graph Benchmark (Hu et al. 2020, "Open Graph
Benchmark: Datasets for Machine Learning on Graphs"), so that OGB's unmodified
``PygGraphPropPredDataset`` loads it and OGB's ``Evaluator`` scores it::

    <dir>/RELEASE_v1.txt            OGB's version marker (without it OGB asks on stdin)
    <dir>/meta.json                 the OGB meta-info (usable as ``meta_dict``)
    <dir>/mapping/mol.csv.gz        labels, SMILES and molecule id per graph
    <dir>/raw/edge.csv.gz           one row per bond, one direction (OGB adds the inverse)
    <dir>/raw/edge-feat.csv.gz      3 bond features per bond
    <dir>/raw/node-feat.csv.gz      9 atom features per atom
    <dir>/raw/num-node-list.csv.gz  atoms per molecule
    <dir>/raw/num-edge-list.csv.gz  bonds per molecule
    <dir>/raw/graph-label.csv.gz    one row per molecule, one column per task, empty = missing
    <dir>/split/<split>/{train,valid,test}.csv.gz

Features are OGB's (``atom_to_feature_vector`` / ``bond_to_feature_vector``, the
ones ``ogb.utils.smiles2graph`` uses). The default split is the scaffold split of
MoleculeNet (Wu et al. 2018, "MoleculeNet: a benchmark for molecular machine
learning") as OGB ships it: molecules are grouped by their Bemis-Murcko scaffold
(Bemis & Murcko 1996, "The properties of known drugs. 1. Molecular frameworks"),
chirality included; groups are taken largest first (equal sizes: larger first
row index first) and poured into train until 80% would be exceeded, then into
valid until train+valid would exceed 90%, the rest into test. From
``moleculenet/hiv.csv`` this reproduces ogbg-molhiv's 32901 / 4113 / 4113.

Official names (``ogbg-molhiv``...) are laid out exactly where OGB looks for them
(``<root>/ogbg_molhiv``) with OGB's own ``master.csv`` meta-info, so OGB loads the
local copy and never downloads. Molecules a recent RDKit refuses to sanitise
(some metal complexes in HIV) are kept, partially sanitised, and logged.
"""
from __future__ import annotations

import json
import logging
import math
import os
import pickle
import re
import shutil
import socket
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd
import torch
from ogb.graphproppred import Evaluator, PygGraphPropPredDataset
from ogb.utils.features import atom_to_feature_vector, bond_to_feature_vector
from rdkit import Chem, rdBase
from rdkit.Chem.Scaffolds import MurckoScaffold
from torch_geometric.data.data import DataEdgeAttr, DataTensorAttr
from torch_geometric.data.storage import GlobalStorage
from torch_geometric.io import fs

from gtsp.data.paths import cache_root as resolve_cache
from gtsp.data.paths import data_root as resolve_data
from gtsp.data.threads import single_thread
from gtsp.errors import GtspError

log = logging.getLogger("gtsp.data")

# OGB saves a pickled PyG ``Data`` and reads it back with a plain ``torch.load``, which
# torch >= 2.6 runs with weights_only=True. PyG allow-lists ``Data`` but not these
# plain helper classes its pickle also contains; they hold no code, so allowing them is safe.
torch.serialization.add_safe_globals([DataEdgeAttr, DataTensorAttr, GlobalStorage])

# Official OGB datasets that can be rebuilt from a CSV under the data root: the CSV
# must be MoleculeNet's file in OGB's row order (the graph index is the row index).
OGB_FROM_CSV: dict[str, dict] = {
    "ogbg-molhiv": {"csv": "moleculenet/hiv.csv", "smiles_col": "smiles", "label_cols": ["HIV_active"]},
    "ogbg-molbbbp": {"csv": "moleculenet/bbbp.csv", "smiles_col": "smiles", "label_cols": ["p_np"]},
}

BINARY = "binary classification"
REGRESSION = "regression"
SPLITS = ("scaffold", "random")
FRACTIONS = (0.8, 0.1, 0.1)
NUM_BOND_FEATURES = 3
_MISSING = {"", "nan", "na"}  # label cells that mean "not measured"
_CUSTOM_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_DOWNLOAD_TIMEOUT_S = 60.0
# Level 6 writes much faster than pandas' default 9 for hardly bigger files.
_GZIP = {"method": "gzip", "compresslevel": 6, "mtime": 0}


# ---------------------------------------------------------------- reading the CSV

def _read_csv(csv_path: Path, smiles_col: str, label_cols: list[str]) -> tuple[list[str], np.ndarray]:
    """SMILES strings and a float label matrix (NaN = missing) from ``csv_path``."""
    if not csv_path.is_file():
        raise GtspError(f"CSV file {csv_path} does not exist: check the path (or --data-root / GTSP_DATA)")
    if not label_cols:
        raise GtspError(f"{csv_path.name}: no label column given: pass at least one, e.g. --label-cols y")
    # Everything as text: pandas must not guess types or turn "NA" into NaN before we check it.
    try:
        frame = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise GtspError(f"{csv_path}: not a readable CSV file ({err}): fix the file") from None
    wanted = [smiles_col, *label_cols]
    missing = [c for c in wanted if c not in frame.columns]
    if missing:
        raise GtspError(f"{csv_path.name}: column(s) {', '.join(map(repr, missing))} not found; "
                        f"the CSV has columns {', '.join(map(repr, frame.columns))}: pass the right names")
    smiles = [s.strip() for s in frame[smiles_col].tolist()]
    labels = np.stack([_parse_labels(frame[c].tolist(), csv_path.name, c) for c in label_cols], axis=1)
    return smiles, labels


def _parse_labels(cells: list[str], csv_name: str, column: str) -> np.ndarray:
    values = np.empty(len(cells), dtype=np.float64)
    for row, cell in enumerate(cells):
        value = _number(cell)
        if value is None:
            raise GtspError(f"{csv_name} line {row + 2} (row {row}), column {column!r}: label {cell!r} is "
                            "not a number: fix that cell or leave it empty for a missing label")
        values[row] = value
    if np.isnan(values).all():
        raise GtspError(f"{csv_name}: label column {column!r} has no values: fill it or drop that column")
    return values


def _number(cell: str) -> float | None:
    """The label in ``cell``: NaN when empty (missing), None when it is not a finite number."""
    text = cell.strip()
    if text.lower() in _MISSING:
        return math.nan
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _task_info(labels: np.ndarray, task_type: str | None, csv_name: str) -> tuple[str, str, int]:
    """(task type, eval metric, num classes) as OGB names them; auto-detected when not given."""
    known = labels[~np.isnan(labels)]
    is_binary = bool(np.isin(known, (0.0, 1.0)).all())
    if task_type is None:
        task_type = BINARY if is_binary else REGRESSION
    task_type = {"binary": BINARY, "classification": BINARY}.get(task_type, task_type)
    if task_type == BINARY:
        if not is_binary:
            raise GtspError(f"{csv_name}: task type {BINARY!r} needs labels 0/1 but other values occur: "
                            "fix the labels or use task type 'regression'")
        return BINARY, "rocauc", 2
    if task_type == REGRESSION:
        return REGRESSION, "rmse", -1
    raise GtspError(f"unknown task type {task_type!r}: use {BINARY!r} or {REGRESSION!r}")


# ---------------------------------------------------------------- molecules -> graphs

@dataclass
class _Graphs:
    """All molecules of a dataset as OGB's flat arrays (bonds stored once, OGB adds the inverse)."""

    node_feat: list[list[int]] = field(default_factory=list)
    edges: list[tuple[int, int]] = field(default_factory=list)
    edge_feat: list[list[int]] = field(default_factory=list)
    num_nodes: list[int] = field(default_factory=list)
    num_edges: list[int] = field(default_factory=list)
    scaffolds: list[str] = field(default_factory=list)
    partial_rows: list[int] = field(default_factory=list)

    def add(self, mol: Chem.Mol, scaffold: str) -> None:
        # Same features and bond order as ogb.utils.smiles2graph, which keeps
        # (i, j) and (j, i) for every bond; OGB's files keep only (i, j).
        self.node_feat.extend(atom_to_feature_vector(atom) for atom in mol.GetAtoms())
        for bond in mol.GetBonds():
            self.edges.append((bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()))
            self.edge_feat.append(bond_to_feature_vector(bond))
        self.num_nodes.append(mol.GetNumAtoms())
        self.num_edges.append(mol.GetNumBonds())
        self.scaffolds.append(scaffold)


def _featurise(smiles: list[str], csv_name: str) -> _Graphs:
    graphs = _Graphs()
    with rdBase.BlockLogs():  # RDKit would print one line per unsanitisable molecule
        for row, text in enumerate(smiles):
            mol, partial = _to_mol(text, csv_name, row)
            if partial:
                graphs.partial_rows.append(row)
            graphs.add(mol, _scaffold(mol))
    return graphs


def _to_mol(smiles: str, csv_name: str, row: int) -> tuple[Chem.Mol, bool]:
    """The RDKit molecule of ``smiles`` and whether it needed partial sanitisation."""
    where = f"{csv_name} line {row + 2} (row {row})"
    if not smiles:
        raise GtspError(f"{where}: empty SMILES: fix or remove that row")
    mol = Chem.MolFromSmiles(smiles)
    if mol is not None:
        return mol, False
    mol = _partially_sanitised(smiles)
    if mol is None:
        raise GtspError(f"{where}: RDKit cannot parse SMILES {smiles!r} even without sanitisation: "
                        "fix or remove that row")
    return mol, True


def _partially_sanitised(smiles: str) -> Chem.Mol | None:
    """``smiles`` sanitised with every RDKit step that succeeds; None if it does not even parse.

    Recent RDKit rejects valences that older versions accepted (e.g. six-bonded Al in
    HIV's metal complexes). The official datasets contain those molecules, so we
    skip only the failing steps (typically the valence check) and keep the molecule.
    """
    flags = Chem.SanitizeFlags.SANITIZE_ALL
    for _ in range(16):  # each round drops one failing step; RDKit has fewer steps than that
        mol = Chem.MolFromSmiles(smiles, sanitize=False)
        if mol is None:
            return None
        # Non-strict: computes implicit valences (needed for the H-count feature) without raising.
        mol.UpdatePropertyCache(strict=False)
        failed = Chem.SanitizeMol(mol, flags, catchErrors=True)
        if failed == Chem.SanitizeFlags.SANITIZE_NONE:
            break
        flags ^= failed
    if not flags & Chem.SanitizeFlags.SANITIZE_SYMMRINGS:
        Chem.FastFindRings(mol)  # ring perception was dropped: the in-ring feature still needs rings
    return mol


def _scaffold(mol: Chem.Mol) -> str:
    """Bemis-Murcko scaffold SMILES with chirality, as MoleculeNet/OGB compute it."""
    try:
        return MurckoScaffold.MurckoScaffoldSmiles(mol=mol, includeChirality=True)
    except ValueError:
        # RDKit's helper re-checks valences strictly; for partially sanitised molecules
        # take the same decomposition with a lenient property update.
        core = Chem.MurckoDecompose(mol)
        core.UpdatePropertyCache(strict=False)
        Chem.GetSymmSSSR(core)
        return Chem.MolToSmiles(core, isomericSmiles=True)


# ---------------------------------------------------------------- splits

def scaffold_split(scaffolds: list[str]) -> dict[str, np.ndarray]:
    """OGB's 80/10/10 scaffold split of molecules given their scaffold strings."""
    groups: dict[str, list[int]] = {}
    for index, scaffold in enumerate(scaffolds):
        groups.setdefault(scaffold, []).append(index)
    # Largest group first; among equal sizes the group whose first molecule comes
    # later goes first (the order of MoleculeNet's and OGB's reference splitter).
    ordered = sorted(groups.values(), key=lambda g: (len(g), g[0]), reverse=True)
    n = len(scaffolds)
    train_cut, valid_cut = FRACTIONS[0] * n, (FRACTIONS[0] + FRACTIONS[1]) * n
    parts: dict[str, list[int]] = {"train": [], "valid": [], "test": []}
    for group in ordered:
        if len(parts["train"]) + len(group) <= train_cut:
            parts["train"] += group
        elif len(parts["train"]) + len(parts["valid"]) + len(group) <= valid_cut:
            parts["valid"] += group
        else:
            parts["test"] += group
    return {k: np.array(sorted(v), dtype=np.int64) for k, v in parts.items()}


def random_split(n: int, seed: int) -> dict[str, np.ndarray]:
    """A seeded random 80/10/10 split of ``n`` molecules."""
    order = np.random.default_rng(seed).permutation(n)
    n_train, n_valid = int(FRACTIONS[0] * n), int(FRACTIONS[1] * n)
    cuts = {"train": order[:n_train], "valid": order[n_train:n_train + n_valid],
            "test": order[n_train + n_valid:]}
    return {k: np.sort(v).astype(np.int64) for k, v in cuts.items()}


# ---------------------------------------------------------------- meta-info

def _master() -> pd.DataFrame:
    import ogb.graphproppred as gpp

    return pd.read_csv(Path(gpp.__file__).parent / "master.csv", index_col=0, keep_default_na=False)


def official_meta(name: str) -> dict[str, str] | None:
    """OGB's ``master.csv`` entry for ``name`` (all values as text, as OGB reads them), or None."""
    master = _master()
    return {k: str(v) for k, v in master[name].items()} if name in master.columns else None


def _custom_meta(name: str, num_tasks: int, task: tuple[str, str, int], split: str) -> dict[str, str]:
    task_type, metric, num_classes = task
    return {"num tasks": str(num_tasks), "eval metric": metric, "download_name": name, "version": "1",
            "url": "", "add_inverse_edge": "True", "data type": "mol", "has_node_attr": "True",
            "has_edge_attr": "True", "task type": task_type, "num classes": str(num_classes),
            "split": split, "additional node files": "None", "additional edge files": "None",
            "binary": "False"}


def _meta_for(name: str, num_tasks: int, task: tuple[str, str, int], split: str, csv_name: str) -> dict:
    official = official_meta(name)
    if official is None:
        return _custom_meta(name, num_tasks, task, split)
    # An official name must describe the official data, or OGB's loader/evaluator would disagree.
    if int(official["num tasks"]) != num_tasks or official["task type"] != task[0]:
        raise GtspError(f"{csv_name} does not match {name} ({official['num tasks']} task(s), "
                        f"{official['task type']}): check the label columns or choose another name")
    if official["split"] != split:
        raise GtspError(f"{name} uses the {official['split']!r} split, not {split!r}: "
                        "drop the split option or choose another name")
    return official


# ---------------------------------------------------------------- writing OGB's layout

def _write_csv(array: Any, path: Path) -> None:
    # No header, as OGB reads them; mtime 0 makes rebuilds byte-identical.
    pd.DataFrame(np.asarray(array)).to_csv(path, header=False, index=False, compression=_GZIP)


def _write_layout(folder: Path, graphs: _Graphs, smiles: list[str], labels: np.ndarray,
                  label_cols: list[str], split_name: str, split: dict[str, np.ndarray],
                  task_type: str) -> None:
    for sub in ("raw", "mapping", f"split/{split_name}"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    raw = folder / "raw"
    _write_csv(np.array(graphs.edges, dtype=np.int64).reshape(-1, 2), raw / "edge.csv.gz")
    _write_csv(np.array(graphs.node_feat, dtype=np.int64), raw / "node-feat.csv.gz")
    _write_csv(np.array(graphs.edge_feat, dtype=np.int64).reshape(-1, NUM_BOND_FEATURES),
               raw / "edge-feat.csv.gz")
    _write_csv(graphs.num_nodes, raw / "num-node-list.csv.gz")
    _write_csv(graphs.num_edges, raw / "num-edge-list.csv.gz")
    # Complete 0/1 labels as integers, like OGB's files (its loader then gives long labels);
    # with missing labels or regression targets as floats, where NaN is an empty cell.
    as_int = task_type == BINARY and not np.isnan(labels).any()
    _write_csv(labels.astype(np.int64) if as_int else labels, raw / "graph-label.csv.gz")
    for part, index in split.items():
        _write_csv(index, folder / "split" / split_name / f"{part}.csv.gz")
    mapping = pd.DataFrame(labels.astype(np.int64) if as_int else labels, columns=label_cols)
    mapping["smiles"], mapping["mol_id"] = smiles, np.arange(len(smiles))
    mapping.to_csv(folder / "mapping" / "mol.csv.gz", index=False, compression=_GZIP)


def _replace_folder(built: Path, out_dir: Path) -> None:
    """Move the finished build to ``out_dir`` so a half-written layout is never visible."""
    if out_dir.exists():
        if any(out_dir.iterdir()) and not _is_dataset_folder(out_dir):
            shutil.rmtree(built)
            raise GtspError(f"{out_dir} exists and is not a dataset folder built here: "
                            "choose another output folder or remove it")
        shutil.rmtree(out_dir)  # empty, or stale graphs and processed/ caches that must not survive
    os.replace(built, out_dir)


def _is_dataset_folder(folder: Path) -> bool:
    return (folder / "meta.json").is_file() or any(folder.glob("RELEASE_v*.txt"))


def build_mol_dataset(csv_path: str | os.PathLike, out_dir: str | os.PathLike, *, smiles_col: str,
                      label_cols: list[str], task_type: str | None = None, split: str = "scaffold",
                      seed: int = 0, name: str | None = None) -> dict:
    """Write OGB's dataset layout for ``csv_path`` into ``out_dir`` and return its OGB meta_dict.

    ``name`` defaults to the CSV's stem. An official OGB name gets OGB's own meta-info;
    for OGB to find it without ``meta_dict``, ``out_dir`` must then be
    ``<root>/<name with '-' -> '_'>``. The result (also in ``out_dir/meta.json``) works as
    ``PygGraphPropPredDataset(name=name, meta_dict=meta)``.
    """
    csv_path, out_dir = Path(csv_path).expanduser(), Path(out_dir).expanduser().resolve()
    if split not in SPLITS:
        raise GtspError(f"unknown split {split!r}: use one of {', '.join(SPLITS)}")
    name = name or csv_path.stem
    smiles, labels = _read_csv(csv_path, smiles_col, list(label_cols))
    task = _task_info(labels, task_type, csv_path.name)
    meta = dict(_meta_for(name, labels.shape[1], task, split, csv_path.name))
    graphs = _featurise(smiles, csv_path.name)
    if not graphs.edges:
        raise GtspError(f"{csv_path.name}: no molecule has a bond, which OGB's file format cannot store: "
                        "add molecules with bonds")
    _log_partial(csv_path.name, graphs.partial_rows)
    parts = scaffold_split(graphs.scaffolds) if split == "scaffold" else random_split(len(smiles), seed)
    meta["dir_path"] = str(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    building = out_dir.parent / f".{out_dir.name}.building-{os.getpid()}"
    shutil.rmtree(building, ignore_errors=True)
    try:
        _write_layout(building, graphs, smiles, labels, list(label_cols), split, parts, task[0])
        (building / f"RELEASE_v{meta['version']}.txt").write_text(
            f"{name}: built by gtsp from {csv_path.name} ({len(smiles)} molecules, {split} split)\n")
        extra = {"gtsp source csv": str(csv_path.resolve()), "gtsp smiles col": smiles_col,
                 "gtsp label cols": ",".join(label_cols), "gtsp seed": str(seed),
                 "gtsp partially sanitised rows": ",".join(map(str, graphs.partial_rows))}
        (building / "meta.json").write_text(json.dumps({**meta, **extra}, indent=1) + "\n")
        _replace_folder(building, out_dir)
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return meta


def _log_partial(csv_name: str, rows: list[int]) -> None:
    if rows:
        shown = ", ".join(map(str, rows[:10])) + (", ..." if len(rows) > 10 else "")
        log.info("%s: %d molecule(s) needed partial sanitisation (rows %s)", csv_name, len(rows), shown)


def build_custom(csv: str | os.PathLike, *, smiles_col: str, label_cols: list[str], name: str,
                 cache_root: str | os.PathLike | None = None, split: str = "scaffold", seed: int = 0,
                 task_type: str | None = None) -> Path:
    """Build a user's CSV as dataset ``name`` under ``<cache_root>/custom/<name>`` (``gtsp data build-mol``)."""
    if not _CUSTOM_NAME.fullmatch(name) or name.startswith("ogbg-"):
        raise GtspError(f"invalid dataset name {name!r}: use letters, digits, '.', '_' or '-', "
                        "not starting with 'ogbg-' (reserved for OGB's datasets)")
    out_dir = resolve_cache(cache_root) / "custom" / name
    build_mol_dataset(csv, out_dir, smiles_col=smiles_col, label_cols=label_cols, task_type=task_type,
                      split=split, seed=seed, name=name)
    return out_dir


# ---------------------------------------------------------------- loading

class _OgbDataset(PygGraphPropPredDataset):
    """OGB's dataset, with one processed folder per pre-transform so that choices never mix."""

    def __init__(self, name: str, root: str, meta_dict: dict | None, pre_transform: Callable | None,
                 tag: str) -> None:
        self.tag = tag
        try:
            super().__init__(name=name, root=root, pre_transform=pre_transform, meta_dict=meta_dict)
        except pickle.UnpicklingError:
            # torch >= 2.6 loads with weights_only=True; a pre-transform may store a class
            # PyG has not allow-listed. PyG's own loader retries (with a warning) for the
            # file this very process wrote into our cache.
            self.data, self.slices = fs.torch_load(self.processed_paths[0])

    @property
    def processed_dir(self) -> str:
        return os.path.join(self.root, f"processed_{self.tag}" if self.tag else "processed")

    def process(self) -> None:
        with single_thread():  # tens of thousands of tiny per-graph ops: threads only add contention
            super().process()


class _CustomEvaluator(Evaluator):
    """OGB's evaluator for a dataset missing from OGB's master.csv (the parent reads it by name)."""

    def __init__(self, name: str, num_tasks: int, eval_metric: str) -> None:
        self.name, self.num_tasks, self.eval_metric = name, num_tasks, eval_metric


def load_mol_dataset(name: str, *, data_root: str | os.PathLike | None = None,
                     cache_root: str | os.PathLike | None = None, pre_transform: Callable | None = None,
                     transform_tag: str = "") -> tuple[PygGraphPropPredDataset, dict, Evaluator]:
    """(dataset, split indices, evaluator) of an ``ogbg-*`` dataset or one built by ``build_custom``."""
    data, cache = resolve_data(data_root), resolve_cache(cache_root)
    if name.startswith("ogbg-"):
        return _load_official(name, data, cache, pre_transform, transform_tag)
    folder = cache / "custom" / name
    if not (folder / "meta.json").is_file():
        raise GtspError(f"unknown molecular dataset {name!r} (no {folder / 'meta.json'}): build it with "
                        "'gtsp data build-mol --csv FILE --smiles-col COL --label-cols A,B --name NAME' "
                        "or use an ogbg-* name")
    meta = json.loads((folder / "meta.json").read_text())
    meta["dir_path"] = str(folder)  # the cache may have moved since the build
    dataset = _OgbDataset(name, str(folder), meta, pre_transform, transform_tag)
    evaluator = _CustomEvaluator(name, int(meta["num tasks"]), meta["eval metric"])
    return dataset, dataset.get_idx_split(), evaluator


def _load_official(name: str, data: Path | None, cache: Path, pre_transform: Callable | None,
                   tag: str) -> tuple[PygGraphPropPredDataset, dict, Evaluator]:
    meta = official_meta(name)
    if meta is None:
        known = ", ".join(c for c in _master().columns if c.startswith("ogbg-mol"))
        raise GtspError(f"{name!r} is not an OGB graph-property dataset: use one of {known}")
    root = cache / "ogb"
    folder = _official_folder(root, name)
    if not _complete(folder, meta):
        # A leftover without OGB's RELEASE marker would make OGB ask on stdin; it is ours to remove.
        shutil.rmtree(folder, ignore_errors=True)
        folder = root / name.replace("-", "_")
        csv = _local_csv(name, data)
        if csv is not None:
            spec = OGB_FROM_CSV[name]
            build_mol_dataset(csv, folder, smiles_col=spec["smiles_col"], label_cols=spec["label_cols"],
                              split=meta["split"], name=name)
        else:
            return _download(name, root, folder, data, pre_transform, tag)
    dataset = _OgbDataset(name, str(root), None, pre_transform, tag)
    return dataset, dataset.get_idx_split(), Evaluator(name)


def _official_folder(root: Path, name: str) -> Path:
    """Where OGB looks for ``name`` under ``root`` (it prefers an existing ``*_pyg`` folder)."""
    plain = root / name.replace("-", "_")
    pyg = plain.with_name(plain.name + "_pyg")
    return pyg if pyg.exists() else plain


def _complete(folder: Path, meta: dict[str, str]) -> bool:
    raw = ["edge", "node-feat", "edge-feat", "num-node-list", "num-edge-list", "graph-label"]
    return ((folder / f"RELEASE_v{meta['version']}.txt").is_file()
            and all((folder / "raw" / f"{f}.csv.gz").is_file() for f in raw)
            and (folder / "split" / meta["split"]).is_dir())


def _local_csv(name: str, data: Path | None) -> Path | None:
    if data is None or name not in OGB_FROM_CSV:
        return None
    csv = data / OGB_FROM_CSV[name]["csv"]
    return csv if csv.is_file() else None


def _download(name: str, root: Path, folder: Path, data: Path | None, pre_transform: Callable | None,
              tag: str) -> tuple[PygGraphPropPredDataset, dict, Evaluator]:
    """Let OGB download ``name``; on failure leave no partial folder and say where a CSV would go."""
    try:
        with _socket_timeout(_DOWNLOAD_TIMEOUT_S):
            dataset = _OgbDataset(name, str(root), None, pre_transform, tag)
    except (Exception, SystemExit) as err:  # OGB exits when a download is declined
        shutil.rmtree(folder, ignore_errors=True)
        if name in OGB_FROM_CSV:
            expected = (data or Path("$GTSP_DATA")) / OGB_FROM_CSV[name]["csv"]
            fix = f"put MoleculeNet's CSV at {expected} (set GTSP_DATA or pass --data-root)"
        else:
            fix = "run once on a machine with network access and copy the cache folder"
        raise GtspError(f"{name} is not in the cache ({folder}) and its download failed "
                        f"({type(err).__name__}: {err}): {fix}") from None
    return dataset, dataset.get_idx_split(), Evaluator(name)


@contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    """OGB's urlopen has no timeout; on a firewalled machine it could hang for minutes."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds if previous is None else previous)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)
