"""The on-disk layout and meta-info of the Open Graph Benchmark, written from featurised molecules.

OGB's unmodified ``PygGraphPropPredDataset`` loads this layout and its ``Evaluator``
scores it (Hu et al. 2020, "Open Graph Benchmark: Datasets for Machine Learning on Graphs")::

    <dir>/RELEASE_v1.txt            OGB's version marker (without it OGB asks on stdin)
    <dir>/meta.json                 the OGB meta-info (usable as ``meta_dict``) plus gtsp's notes
    <dir>/mapping/mol.csv.gz        labels, SMILES and CSV row index per graph
    <dir>/raw/edge.csv.gz           one row per bond, one direction (OGB adds the inverse)
    <dir>/raw/edge-feat.csv.gz      3 bond features per bond
    <dir>/raw/node-feat.csv.gz      9 atom features per atom
    <dir>/raw/num-node-list.csv.gz  atoms per molecule
    <dir>/raw/num-edge-list.csv.gz  bonds per molecule
    <dir>/raw/graph-label.csv.gz    one row per molecule, one column per task, empty = missing
    <dir>/split/<split>/{train,valid,test}.csv.gz

Official names (``ogbg-molhiv``...) get OGB's own ``master.csv`` meta-info, so that OGB
loads a local copy laid out where it looks (``<root>/ogbg_molhiv``) and never downloads.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gtsp.data.featurize import NUM_BOND_FEATURES, MolGraphs
from gtsp.data.mol_csv import BINARY, Task
from gtsp.errors import GtspError

# Level 6 writes much faster than pandas' default 9 for hardly bigger files; mtime 0 makes
# rebuilds byte-identical.
_GZIP = {"method": "gzip", "compresslevel": 6, "mtime": 0}


def _master() -> pd.DataFrame:
    import ogb.graphproppred as gpp

    return pd.read_csv(Path(gpp.__file__).parent / "master.csv", index_col=0, keep_default_na=False)


def official_names() -> list[str]:
    """OGB's molecular graph-property datasets (``ogbg-mol*``)."""
    return [c for c in _master().columns if c.startswith("ogbg-mol")]


def official_meta(name: str) -> dict[str, str] | None:
    """OGB's ``master.csv`` entry for ``name`` (all values as text, as OGB reads them), or None."""
    master = _master()
    return {k: str(v) for k, v in master[name].items()} if name in master.columns else None


def meta_for(name: str, num_tasks: int, task: Task, split: str, csv_name: str) -> dict[str, str]:
    """The meta-info of dataset ``name``: OGB's own for an official name (checked against the
    data), else one in the same format for a custom dataset."""
    official = official_meta(name)
    if official is None:
        return {"num tasks": str(num_tasks), "eval metric": task.metric, "download_name": name, "version": "1",
                "url": "", "add_inverse_edge": "True", "data type": "mol", "has_node_attr": "True",
                "has_edge_attr": "True", "task type": task.type, "num classes": str(task.num_classes),
                "split": split, "additional node files": "None", "additional edge files": "None",
                "binary": "False"}
    # An official name must describe the official data, or OGB's loader/evaluator would disagree.
    if int(official["num tasks"]) != num_tasks or official["task type"] != task.type:
        raise GtspError(f"{csv_name} does not match {name} ({official['num tasks']} task(s), "
                        f"{official['task type']}): check the label columns or choose another name")
    if official["split"] != split:
        raise GtspError(f"{name} uses the {official['split']!r} split, not {split!r}: "
                        "drop the split option or choose another name")
    return official


def _write_csv(array: Any, path: Path) -> None:
    pd.DataFrame(np.asarray(array)).to_csv(path, header=False, index=False, compression=_GZIP)


def write_layout(folder: Path, graphs: MolGraphs, smiles: list[str], labels: np.ndarray,
                 label_cols: list[str], split_name: str, split: dict[str, np.ndarray], task_type: str) -> None:
    """Write ``graphs`` (with their ``labels`` and ``smiles``, one row per graph) in OGB's layout."""
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
    stored = labels.astype(np.int64) if as_int else labels
    _write_csv(stored, raw / "graph-label.csv.gz")
    for part, index in split.items():
        _write_csv(index, folder / "split" / split_name / f"{part}.csv.gz")
    mapping = pd.DataFrame(stored, columns=label_cols)
    mapping["smiles"], mapping["mol_id"] = smiles, graphs.rows
    mapping.to_csv(folder / "mapping" / "mol.csv.gz", index=False, compression=_GZIP)


def write_markers(folder: Path, meta: dict[str, str], notes: dict[str, str], release_line: str) -> None:
    """OGB's release marker and ``meta.json`` (OGB's meta-info plus gtsp's ``notes``)."""
    (folder / f"RELEASE_v{meta['version']}.txt").write_text(release_line + "\n")
    (folder / "meta.json").write_text(json.dumps({**meta, **notes}, indent=1) + "\n")


def is_dataset_folder(folder: Path) -> bool:
    """Whether ``folder`` holds a dataset built here (or by OGB), i.e. may be replaced by a rebuild."""
    return (folder / "meta.json").is_file() or any(folder.glob("RELEASE_v*.txt"))


def replace_folder(built: Path, out_dir: Path) -> None:
    """Move the finished build to ``out_dir`` so a half-written layout is never visible."""
    if out_dir.exists():
        if any(out_dir.iterdir()) and not is_dataset_folder(out_dir):
            raise GtspError(f"{out_dir} exists and is not a dataset folder built here: "
                            "choose another output folder or remove it")
        shutil.rmtree(out_dir)  # empty, or stale graphs and processed/ caches that must not survive
    os.replace(built, out_dir)
