"""Loading molecular datasets through OGB's own loader: official ``ogbg-*`` names and custom ones.

An official name is taken, in order, from the cache, rebuilt exactly from MoleculeNet's
CSV under the data root (ogbg-molhiv, ogbg-molbbbp), or downloaded by OGB. A custom
name is a folder made by ``gtsp data build-mol`` under ``<cache>/custom/<name>``.
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import shutil
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from ogb.graphproppred import Evaluator, PygGraphPropPredDataset
from torch_geometric.data.data import DataEdgeAttr, DataTensorAttr
from torch_geometric.data.storage import GlobalStorage

from gtsp.data.mol_build import build_mol_dataset, custom_folder
from gtsp.data.ogb_layout import official_meta, official_names
from gtsp.data.paths import cache_root as resolve_cache
from gtsp.data.paths import data_root as resolve_data
from gtsp.data.safe_load import QuietProcessing, whole_or_nothing
from gtsp.data.threads import single_thread
from gtsp.errors import GtspError

log = logging.getLogger("gtsp.data")

# Official OGB datasets that can be rebuilt from a CSV under the data root: the CSV
# must be MoleculeNet's file in OGB's row order (the graph index is the row index).
OGB_FROM_CSV: dict[str, dict] = {
    "ogbg-molhiv": {"csv": "moleculenet/hiv.csv", "smiles_col": "smiles", "label_cols": ["HIV_active"]},
    "ogbg-molbbbp": {"csv": "moleculenet/bbbp.csv", "smiles_col": "smiles", "label_cols": ["p_np"]},
}
_DOWNLOAD_TIMEOUT_S = 60.0
# OGB saves a pickled PyG ``Data`` and reads it back with a plain ``torch.load``, which
# torch >= 2.6 runs with weights_only=True. PyG allow-lists ``Data`` but not these plain
# helper classes its pickle also contains; they hold no code. They are allowed only while
# OGB loads (torch's ``safe_globals`` context), never process-wide.
_PYG_PICKLE_CLASSES = [DataEdgeAttr, DataTensorAttr, GlobalStorage]


def ogb_safe_load() -> contextlib.AbstractContextManager:
    """Context in which OGB's own ``PygGraphPropPredDataset`` can read its processed file."""
    return torch.serialization.safe_globals(_PYG_PICKLE_CLASSES)


class _OgbDataset(QuietProcessing, PygGraphPropPredDataset):
    """OGB's dataset, with one processed folder per pre-transform so that choices never mix."""

    def __init__(self, name: str, root: str, meta_dict: dict | None, pre_transform: Callable | None,
                 tag: str) -> None:
        self.tag = tag
        # a file holding anything but data is refused (gtsp.data.safe_load), never read another way
        with ogb_safe_load():
            super().__init__(name=name, root=root, pre_transform=pre_transform, meta_dict=meta_dict)

    @property
    def processed_dir(self) -> str:
        return os.path.join(self.root, f"processed_{self.tag}" if self.tag else "processed")

    def process(self) -> None:
        log.info("processing %s into %s (once: later runs read it from there)", self.name, self.processed_dir)
        # OGB's own progress lines go to stdout; its progress bar (stderr) stays
        with single_thread(), whole_or_nothing(Path(self.processed_dir)), contextlib.redirect_stdout(io.StringIO()):
            super().process()  # tens of thousands of tiny per-graph ops: threads only add contention


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
    folder = custom_folder(name, cache)
    if not (folder / "meta.json").is_file():
        raise GtspError(f"unknown molecular dataset {name!r} (no {folder / 'meta.json'}): build it with "
                        "'gtsp data build-mol --csv FILE --smiles-col COL --label-cols A,B --name NAME' "
                        "or use an ogbg-* name")
    meta = json.loads((folder / "meta.json").read_text())
    meta["dir_path"] = str(folder)  # the cache may have moved since the build
    dataset = _OgbDataset(name, str(folder), meta, pre_transform, transform_tag)
    evaluator = _CustomEvaluator(name, int(meta["num tasks"]), meta["eval metric"])
    return dataset, dataset.get_idx_split(), evaluator


def label_names(name: str, cache_root: str | os.PathLike | None = None) -> list[str] | None:
    """The label columns a molecular dataset was built from (None when they are not recorded)."""
    if name in OGB_FROM_CSV:
        return list(OGB_FROM_CSV[name]["label_cols"])
    meta = custom_folder(name, resolve_cache(cache_root)) / "meta.json"
    columns = json.loads(meta.read_text()).get("gtsp label cols") if meta.is_file() else None
    return columns.split(",") if columns else None


def _load_official(name: str, data: Path | None, cache: Path, pre_transform: Callable | None,
                   tag: str) -> tuple[PygGraphPropPredDataset, dict, Evaluator]:
    meta = official_meta(name)
    if meta is None:
        raise GtspError(f"{name!r} is not an OGB graph-property dataset: use one of {', '.join(official_names())}")
    root = cache / "ogb"
    folder = _official_folder(root, name)
    if not _complete(folder, meta):
        # A leftover without OGB's RELEASE marker would make OGB ask on stdin; it is ours to remove.
        shutil.rmtree(folder, ignore_errors=True)
        folder = root / name.replace("-", "_")
        csv = _local_csv(name, data)
        if csv is None:
            return _download(name, root, folder, data, pre_transform, tag)
        spec = OGB_FROM_CSV[name]
        build_mol_dataset(csv, folder, smiles_col=spec["smiles_col"], label_cols=spec["label_cols"],
                          split=meta["split"], name=name)
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


@contextlib.contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    """OGB's urlopen has no timeout; on a firewalled machine it could hang for minutes."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds if previous is None else previous)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)
