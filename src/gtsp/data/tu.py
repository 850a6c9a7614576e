"""TU graph-classification datasets (Morris et al. 2020) through PyG's ``TUDataset``.

Raw files are looked up, in order, under ``<data root>/TUDataset/NAME/raw``,
``<data root>/NAME/raw`` and (MUTAG only) the copy embedded in the package; they
are linked into the writable cache, where PyG processes them. When no local copy
exists PyG's real download runs. Datasets without node features get one-hot
degree features, as the graph-classification literature does (Xu et al. 2019).
"""
from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

import torch
from torch_geometric.data import Data
from torch_geometric.datasets import TUDataset
from torch_geometric.transforms import OneHotDegree
from torch_geometric.utils import degree

from gtsp.data.info import DatasetInfo
from gtsp.data.paths import EMBEDDED_ROOT
from gtsp.data.safe_load import QuietProcessing, whole_or_nothing
from gtsp.data.threads import single_thread
from gtsp.errors import GtspError

log = logging.getLogger("gtsp.data")

# TU names known to work here; any other TU name is tried through PyG's download.
KNOWN_TU = ("MUTAG", "NCI1", "IMDB-BINARY", "PROTEINS", "DD", "NCI109", "IMDB-MULTI", "REDDIT-BINARY")


class _CachedTU(QuietProcessing, TUDataset):
    """TUDataset whose processed folder is keyed by the pre-transform, so choices never mix."""

    def __init__(self, root: str, name: str, tag: str, pre_transform: Callable | None) -> None:
        self.tag = tag
        super().__init__(root, name, pre_transform=pre_transform)

    @property
    def processed_dir(self) -> str:
        return os.path.join(self.root, self.name, f"processed_{self.tag}")

    def download(self) -> None:
        try:
            super().download()
        except Exception as err:  # fsspec/aiohttp raise many types; all mean "not downloadable here"
            raise _DownloadFailed(str(err) or type(err).__name__) from err

    def process(self) -> None:
        log.info("processing %s into %s (once: later runs read it from there)", self.name, self.processed_dir)
        with single_thread(), whole_or_nothing(Path(self.processed_dir)):
            super().process()  # thousands of tiny per-graph ops: threads only add contention


class _DownloadFailed(Exception):
    pass


def local_raw_dir(name: str, data_root: Path | None) -> Path | None:
    """The first folder holding ``NAME_A.txt`` among the known places, or None."""
    candidates = []
    if data_root is not None:
        candidates += [data_root / "TUDataset" / name / "raw", data_root / name / "raw"]
    candidates.append(EMBEDDED_ROOT / name / "raw")
    return next((c for c in candidates if (c / f"{name}_A.txt").is_file()), None)


def load_tu(name: str, data_root: Path | None, cache: Path, pre_transform: Callable | None,
            tag: str) -> tuple[list[Data], DatasetInfo]:
    """All graphs of TU dataset ``name`` (pre-transformed, cached) and its :class:`DatasetInfo`."""
    root = cache / "TUDataset"
    raw = root / name / "raw"
    source = local_raw_dir(name, data_root)
    if source is not None:
        _link_raw_files(source, raw)
    try:
        dataset = _CachedTU(str(root), name, tag, pre_transform)
    except _DownloadFailed as err:
        expected = (data_root or Path("$GTSP_DATA")) / "TUDataset" / name / "raw" / f"{name}_A.txt"
        raise GtspError(f"TU dataset {name} is not available locally and its download failed ({err}): "
                        f"put its raw files at {expected} or pass --data-root") from None
    graphs = [dataset[i] for i in range(len(dataset))]
    if dataset.num_node_features == 0:
        graphs = _degree_features(graphs)
    info = DatasetInfo(name=name, num_node_features=graphs[0].num_node_features,
                       num_edge_features=dataset.num_edge_features, molecular=False, task="multiclass",
                       num_outputs=dataset.num_classes, metric="accuracy", higher_is_better=True)
    return graphs, info


def _link_raw_files(source: Path, raw: Path) -> None:
    raw.mkdir(parents=True, exist_ok=True)
    for file in source.glob("*.txt"):
        target = raw / file.name
        if not target.exists():
            os.symlink(file, target)


def _degree_features(graphs: list[Data]) -> list[Data]:
    """One-hot node degree, capped at the dataset's largest degree."""
    max_degree = max(int(degree(g.edge_index[0], g.num_nodes).max()) if g.num_edges else 0 for g in graphs)
    log.info("no node features: using one-hot degree (max degree %d)", max_degree)
    encode = OneHotDegree(max_degree)
    out = []
    for g in graphs:
        g = g.clone()
        g.x = torch.zeros(g.num_nodes, 0)
        out.append(encode(g))
    return out
