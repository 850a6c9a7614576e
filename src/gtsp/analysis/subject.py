"""What an analysis looks at: a trained model, the same model before compaction, and its test graphs.

``RUN`` is a run folder of ``gtsp train`` or a model file written by ``gtsp export``:

- ``after``: the model the run delivers (:func:`gtsp.inference.run_model_file`), loaded with
  :func:`gtsp.models.files.load_model` (for a pruned run, the compacted model);
- ``before``: for a pruned run folder, the same run's model before compaction, rebuilt from its
  checkpoint (the trained weights of the selected epoch, with the sparsifiers' gates and layer
  wrappers), every layer running again, so removed layers and heads can be compared with the kept
  ones; None for an exported file or a dense run (nothing was removed);
- ``plan``: the compaction plan (kept layers, heads, neurons, token settings) from the model's spec;
- ``sample``: a fixed sample of the test split, the same for every analysis and every run of a dataset.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn
from torch_geometric.data import Batch, Data

from gtsp.data.info import DatasetInfo
from gtsp.data.registry import GraphDataset, load_dataset
from gtsp.errors import GtspError
from gtsp.inference import check_dataset_fits, run_model_file
from gtsp.models import build_model
from gtsp.models.files import load_model
from gtsp.sparsify import build_sparsifier
from gtsp.sparsify import CompactionPlan

log = logging.getLogger(__name__)


@dataclass
class Subject:
    """A model to analyse, its uncompacted form when known, its plan and its test sample.

    Attributes:
        after: the delivered (compacted) model, eval mode.
        before: the uncompacted model with every layer running, or None.
        spec: the model file's spec.
        plan: the compaction plan (empty for a dense model).
        data: the dataset the model was trained on (its split).
        sample: positions in ``data.test`` of the analysed graphs.
        source: the run folder or model file given.
        cache_root: the processed-data cache the dataset was loaded from (None: the default).
    """

    after: nn.Module
    before: nn.Module | None
    spec: dict[str, Any]
    plan: CompactionPlan
    data: GraphDataset
    sample: list[int]
    source: Path
    cache_root: str | None = None

    @property
    def graphs(self) -> list[Data]:
        return [self.data.test[i] for i in self.sample]

    def batch(self) -> Batch:
        return Batch.from_data_list(self.graphs)

    def dataset_index(self, position: int) -> int | None:
        """Index in the whole dataset of test graph ``position`` (None when the split is unknown)."""
        test = self.data.split.get("test")
        return int(test[position]) if test is not None else None


def sample_positions(num_test: int, count: int) -> list[int]:
    """``count`` positions spread evenly over a test split of ``num_test`` graphs (all when fewer)."""
    if count <= 0:
        raise GtspError(f"--graphs {count}: analyse at least one graph, e.g. --graphs 32")
    if num_test == 0:
        raise GtspError("the test split is empty: nothing to analyse")
    return sorted(set(np.linspace(0, num_test - 1, min(count, num_test)).round().astype(int).tolist()))


def load_subject(source: str | Path, graphs: int = 32, data_root: str | None = None,
                 cache_root: str | None = None) -> Subject:
    """The :class:`Subject` for a run folder or model file ``source``, with ``graphs`` test graphs."""
    source = Path(source)
    if not source.exists():
        raise GtspError(f"{source} does not exist: give a run folder of gtsp train or a file of gtsp export")
    model_file = run_model_file(source) if source.is_dir() else source
    after, spec = load_model(model_file)
    config = spec.get("config") or {}
    data = load_dataset(spec["dataset"], data_root=data_root, cache_root=cache_root, features=spec["features"],
                        seed=config.get("seed", 0), folds=config.get("folds", 0), fold=config.get("fold", 0))
    check_dataset_fits(spec, data.info, spec["dataset"])
    plan = CompactionPlan.from_dict(spec.get("plan"))
    before = uncompacted_model(source, spec) if source.is_dir() and spec.get("plan") else None
    return Subject(after, before, spec, plan, data, sample_positions(len(data.test), graphs), source,
                   cache_root)


def uncompacted_model(run_dir: Path, spec: dict[str, Any]) -> nn.Module | None:
    """The run's trained model before compaction, rebuilt from its checkpoint; None when it cannot be."""
    from gtsp.train import load_checkpoint

    config = spec.get("config") or {}
    try:
        state = load_checkpoint(run_dir)
    except GtspError as err:
        log.warning("%s: analysing the compacted model only", err)
        return None
    if state is None or not config.get("prune"):
        log.warning("%s has no checkpoint: analysing the compacted model only", run_dir)
        return None
    weights = state.get("best_model") or state["model"]
    model = build_model(spec["backbone"], DatasetInfo.from_dict(spec["dataset_info"]), **spec["hparams"])
    sparsifier = build_sparsifier(config["prune"], config.get("prune_args"), config.get("seed", 0))
    if sparsifier is not None:
        model = sparsifier.prepare(model)
    try:
        model.load_state_dict(weights, strict=True)
    except RuntimeError as err:
        log.warning("the checkpoint in %s does not fit the run's architecture (%s): analysing the compacted "
                    "model only", run_dir, str(err).splitlines()[0])
        return None
    if sparsifier is not None:
        sparsifier.unmask(model)
    return model.eval()


def num_layers_before(subject: Subject) -> int:
    """Layers of the model before layer pruning (from the backbone's hyper-parameters)."""
    return int(subject.spec["hparams"].get("layers", len(subject.after.layers)))


def kept(plan: CompactionPlan, dimension: str) -> list | None:
    """What ``plan`` keeps of ``dimension`` (its fragment's ``kept``), None when it was not pruned."""
    fragment = plan.get(dimension)
    return None if fragment is None else fragment.kept


def original_layers(subject: Subject) -> list[int]:
    """For each layer of the delivered model, its index in the model before layer pruning."""
    layers = kept(subject.plan, "layer")
    return list(layers) if layers is not None else list(range(len(subject.after.layers)))
