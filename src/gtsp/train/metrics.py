"""Loss and evaluation metric that follow the dataset's task.

TU classification: cross-entropy and accuracy. OGB datasets: masked binary
cross-entropy (NaN labels are missing) and OGB's own ``Evaluator`` metric
(ROC-AUC for molhiv). Regression: L1 loss and MAE (or OGB's metric).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from gtsp.data.info import DatasetInfo


def task_loss(info: DatasetInfo, logits: Tensor, y: Tensor) -> Tensor:
    """Mean training loss of ``logits`` against labels ``y`` (missing labels ignored)."""
    if info.task == "multiclass":
        return F.cross_entropy(logits, y.view(-1).long())
    y = y.view(logits.shape).float()
    known = ~torch.isnan(y)
    if info.task == "binary":
        return F.binary_cross_entropy_with_logits(logits[known], y[known])
    return F.l1_loss(logits[known], y[known])


def predictions(info: DatasetInfo, logits: Tensor) -> Tensor:
    """What the metric scores: class ids (multiclass) or raw scores (OGB evaluators take logits)."""
    return logits.argmax(-1) if info.task == "multiclass" else logits


def score(info: DatasetInfo, y_true: Tensor, y_pred: Tensor, evaluator=None) -> float:
    """The dataset's metric over a whole split."""
    if evaluator is not None:
        result = evaluator.eval({"y_true": y_true.view(y_pred.shape).numpy(), "y_pred": y_pred.numpy()})
        return float(result[evaluator.eval_metric])
    if info.metric == "accuracy":
        return float((y_true.view(-1) == y_pred.view(-1)).float().mean())
    known = ~torch.isnan(y_true)
    return float(np.abs((y_true[known] - y_pred.view(y_true.shape)[known]).numpy()).mean())
