"""The object :func:`gtsp.fit` and :func:`gtsp.prune` return: metrics, models, plan, cost and speed."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from gtsp.data.info import DatasetInfo
from gtsp.sparsify.plan import CompactionPlan


@dataclass
class Result:
    """One finished training (or fine-tuning) run, in memory.

    Attributes:
        results: the full ``results.json`` record (see the README's ``results.json`` section).
        model: the trained model at its best epoch (with its masks and gates when pruned).
        compacted: the physically smaller model a pruned run compacts to (None when dense).
        plan: what compaction kept (heads, neurons, layers, token settings; None when dense).
        info: the dataset's :class:`gtsp.data.info.DatasetInfo`.
        spec: the model file spec :meth:`save` writes with the weights.
        out: the run folder (None when the run trained in a temporary folder).

    Example:
        >>> import gtsp
        >>> result = gtsp.fit("MUTAG", epochs=2, model_args={"hidden": 16, "layers": 1}, prune={"head": 0.5})
        >>> sorted(result.metrics)
        ['test', 'test_compacted', 'val']
        >>> result.deployed is result.compacted
        True
    """

    results: dict[str, Any]
    model: nn.Module
    compacted: nn.Module | None
    plan: CompactionPlan | None
    info: DatasetInfo
    spec: dict[str, Any]
    out: Path | None

    def __repr__(self) -> str:
        pruned = {k: v for k, v in (self.results.get("sparsity") or {}).items() if v}
        metrics = ", ".join(f"{k}={v:.4f}" for k, v in self.metrics.items())
        return (f"Result({self.results['model']} on {self.results['dataset']}, {self.results['metric']['name']}: "
                f"{metrics}, pruned={pruned or 'no'}, out={self.out})")

    @property
    def deployed(self) -> nn.Module:
        """The model to use: the compacted one when the run pruned, else the trained one."""
        return self.compacted if self.compacted is not None else self.model

    @property
    def metrics(self) -> dict[str, float]:
        """Validation and test metric of the best epoch (and the compacted model's test metric when pruned)."""
        metric = self.results["metric"]
        return {k: float(metric[k]) for k in ("val", "test", "test_compacted") if k in metric}

    @property
    def cost(self) -> dict[str, Any]:
        """Parameter counts and FLOPs per graph (dense, and pruned / compacted when pruned)."""
        return {"params": self.results["params"], "flops_per_graph": self.results["flops_per_graph"]}

    @property
    def speed(self) -> dict[str, Any]:
        """Measured inference throughput (graphs/s), and the speed-up over dense when pruned."""
        speed = {"graphs_per_s": self.results["throughput_graphs_per_s"]}
        if "speedup" in self.results:
            speed["speedup"] = self.results["speedup"]["measured"]
        return speed

    def save(self, path: str | os.PathLike) -> Path:
        """Write :attr:`deployed` as a model file (safetensors + JSON spec) that :func:`gtsp.load_model` reads."""
        from gtsp.models.files import save_model

        return save_model(self.deployed, self.spec, path)
