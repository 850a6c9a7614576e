"""What a model and a trainer need to know about a dataset, in one plain object."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from gtsp.errors import GtspError


@dataclass(frozen=True)
class DatasetInfo:
    """Shape and task of a dataset.

    Attributes:
        name: dataset name as the user gave it.
        num_node_features: width of ``x`` (OGB molecules: 9 categorical columns).
        num_edge_features: width of ``edge_attr`` (0 when edges carry none).
        molecular: True for OGB featurised molecules (atom/bond encoders apply).
        task: ``"multiclass"`` (one integer label), ``"binary"`` (multi-task 0/1 with NaN
            for missing) or ``"regression"``.
        num_outputs: logits (multiclass: classes) or tasks.
        metric: metric name (``"accuracy"``, ``"rocauc"``, ``"ap"``, ``"mae"``, ``"rmse"``).
        higher_is_better: direction of the metric.
        target_mean: regression only: per-task mean of the training split's known labels.
            The model learns ``(y - mean) / std``; predictions are mapped back before any
            metric, so metrics are always in the labels' own units.
        target_std: regression only: per-task standard deviation of the same labels
            (1.0 for a task whose training labels are constant).
    """

    name: str
    num_node_features: int
    num_edge_features: int
    molecular: bool
    task: str
    num_outputs: int
    metric: str
    higher_is_better: bool
    target_mean: tuple[float, ...] | None = None
    target_std: tuple[float, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready fields (tuples become lists in JSON)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> DatasetInfo:
        """The info saved by :meth:`to_dict` (e.g. read back from results.json or a model file)."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(record) - names)
        if unknown:
            raise GtspError(f"dataset info has unknown field(s) {unknown}: it was written by a newer gtsp; "
                            "upgrade gtsp to read it")
        values = dict(record)
        for key in ("target_mean", "target_std"):
            if values.get(key) is not None:
                values[key] = tuple(float(v) for v in values[key])
        try:
            return cls(**values)
        except TypeError as err:
            raise GtspError(f"dataset info is incomplete ({err}): re-create the file with this gtsp") from None
