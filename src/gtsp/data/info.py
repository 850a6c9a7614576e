"""What a model and a trainer need to know about a dataset, in one plain object."""
from __future__ import annotations

from dataclasses import asdict, dataclass


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
    """

    name: str
    num_node_features: int
    num_edge_features: int
    molecular: bool
    task: str
    num_outputs: int
    metric: str
    higher_is_better: bool

    def to_dict(self) -> dict:
        return asdict(self)
