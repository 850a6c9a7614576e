"""Loss and evaluation metric that follow the dataset's task.

TU classification: cross-entropy and accuracy. OGB datasets: masked binary
cross-entropy (NaN labels are missing) and OGB's own ``Evaluator`` metric
(ROC-AUC for molhiv, RMSE for regression).

Regression: the model learns standardised targets ``(y - mean) / std`` with the
training split's per-task mean and std (``DatasetInfo.target_mean/target_std``),
so every task has unit scale whatever its units, and the output layer starts near
the right range. :func:`predictions` maps outputs back, so every metric is in the
labels' own units. The loss is MSE on the standardised targets: on lipophilicity
(scaffold split) it gave a lower test RMSE than L1 (docs/data.md), and MSE is what
RMSE, the reported metric, measures.
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
    if not known.any():
        # a batch without any label (sparse multi-task data): no signal, but a finite loss
        return logits.sum() * 0.0
    if info.task == "binary":
        return F.binary_cross_entropy_with_logits(logits[known], y[known])
    return F.mse_loss(logits[known], standardise(info, y)[known])


def standardise(info: DatasetInfo, y: Tensor) -> Tensor:
    """Regression labels ``y`` (graphs x tasks) in units of the training split's std around its mean."""
    mean, std = _target_scale(info, y)
    return (y - mean) / std


def destandardise(info: DatasetInfo, z: Tensor) -> Tensor:
    """The inverse of :func:`standardise`: model outputs back in the labels' units."""
    mean, std = _target_scale(info, z)
    return z * std + mean


def _target_scale(info: DatasetInfo, like: Tensor) -> tuple[Tensor, Tensor]:
    if info.target_mean is None or info.target_std is None:
        return torch.zeros((), dtype=like.dtype), torch.ones((), dtype=like.dtype)
    mean = torch.tensor(info.target_mean, dtype=like.dtype, device=like.device)
    std = torch.tensor(info.target_std, dtype=like.dtype, device=like.device)
    return mean, std


def predictions(info: DatasetInfo, logits: Tensor) -> Tensor:
    """What the metric scores: class ids (multiclass), raw scores (binary: OGB evaluators take
    logits) or values in the labels' units (regression)."""
    if info.task == "multiclass":
        return logits.argmax(-1)
    if info.task == "regression":
        return destandardise(info, logits)
    return logits


def score(info: DatasetInfo, y_true: Tensor, y_pred: Tensor, evaluator=None) -> float:
    """The dataset's metric over a whole split (regression: ``y_pred`` in the labels' units)."""
    if evaluator is not None:
        result = evaluator.eval({"y_true": y_true.view(y_pred.shape).numpy(), "y_pred": y_pred.numpy()})
        return float(result[evaluator.eval_metric])
    if info.metric == "accuracy":
        return float((y_true.view(-1) == y_pred.view(-1)).float().mean())
    known = ~torch.isnan(y_true)
    errors = (y_true[known] - y_pred.view(y_true.shape)[known]).double().numpy()
    if info.metric == "rmse":
        return float(np.sqrt(np.mean(errors ** 2)))
    return float(np.abs(errors).mean())
