"""Losses with missing labels, regression standardisation, metrics in the labels' own units."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from gtsp.data.info import DatasetInfo
from gtsp.errors import GtspError
from gtsp.train.metrics import destandardise, predictions, score, standardise, task_loss

NAN = math.nan


def _info(task: str, metric: str, mean=None, std=None, outputs: int = 2) -> DatasetInfo:
    return DatasetInfo("toy", 9, 3, True, task, outputs, metric, metric not in ("rmse", "mae"),
                       target_mean=mean, target_std=std)


def test_binary_loss_ignores_missing_labels():
    logits = torch.tensor([[0.5, -1.0], [2.0, 0.3], [-0.7, 1.5]])
    y = torch.tensor([[1.0, NAN], [0.0, 1.0], [NAN, 0.0]])
    # by hand: -[y log s(x) + (1 - y) log(1 - s(x))] over the four known entries only
    known = [(0.5, 1.0), (2.0, 0.0), (0.3, 1.0), (1.5, 0.0)]
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    expected = -sum(t * math.log(sig(x)) + (1 - t) * math.log(1 - sig(x)) for x, t in known) / 4
    assert float(task_loss(_info("binary", "rocauc"), logits, y)) == pytest.approx(expected, rel=1e-6)


def test_regression_loss_is_mse_on_standardised_known_targets():
    info = _info("regression", "rmse", mean=(10.0, -2.0), std=(4.0, 0.5))
    logits = torch.tensor([[0.5, 1.0], [-1.0, 0.0], [0.25, 2.0]])
    y = torch.tensor([[12.0, NAN], [6.0, -2.5], [NAN, -1.0]])
    z = [(0.5, (12 - 10) / 4), (-1.0, (6 - 10) / 4), (0.0, (-2.5 + 2) / 0.5), (2.0, (-1 + 2) / 0.5)]
    expected = sum((out - t) ** 2 for out, t in z) / 4
    assert float(task_loss(info, logits, y)) == pytest.approx(expected, rel=1e-6)


def test_batch_without_any_label_gives_a_finite_zero_loss_with_gradient():
    logits = torch.randn(3, 2, requires_grad=True)
    for info in (_info("binary", "rocauc"), _info("regression", "rmse", (0.0, 0.0), (1.0, 1.0))):
        loss = task_loss(info, logits, torch.full((3, 2), NAN))
        loss.backward()
        assert float(loss) == 0.0 and torch.isfinite(logits.grad).all()


def test_standardisation_round_trip_and_metric_in_original_units():
    info = _info("regression", "rmse", mean=(3.0,), std=(2.0,), outputs=1)
    y = torch.tensor([[1.0], [5.0], [NAN], [4.0]])
    assert torch.allclose(destandardise(info, standardise(info, y))[[0, 1, 3]], y[[0, 1, 3]])
    model_out = torch.tensor([[-1.0], [0.5], [0.0], [1.0]])  # what a model trained on z would emit
    pred = predictions(info, model_out)
    assert pred.view(-1).tolist() == [1.0, 4.0, 3.0, 5.0]  # out * std + mean
    direct = math.sqrt(((1 - 1) ** 2 + (5 - 4) ** 2 + (4 - 5) ** 2) / 3)  # the NaN row is left out
    assert score(info, y, pred) == pytest.approx(direct)
    from gtsp.data.ogb_load import _CustomEvaluator  # OGB's own RMSE gives the same number

    assert score(info, y, pred, _CustomEvaluator("toy", 1, "rmse")) == pytest.approx(direct)


def test_classification_outputs_are_not_rescaled():
    logits = torch.tensor([[0.2, 0.9], [1.5, -0.5]])
    assert torch.equal(predictions(_info("binary", "rocauc"), logits), logits)
    assert predictions(_info("multiclass", "accuracy"), logits).tolist() == [1, 0]


def test_dataset_info_round_trips_through_json():
    info = _info("regression", "rmse", mean=(2.16,), std=(1.21,), outputs=1)
    again = DatasetInfo.from_dict(json.loads(json.dumps(info.to_dict())))
    assert again == info and isinstance(again.target_mean, tuple)
    plain = DatasetInfo("tiny", 7, 4, False, "multiclass", 2, "accuracy", True)  # older positional form
    assert DatasetInfo.from_dict(plain.to_dict()) == plain and plain.target_mean is None
    with pytest.raises(GtspError, match="unknown field"):
        DatasetInfo.from_dict({**plain.to_dict(), "colour": "red"})
    with pytest.raises(GtspError, match="incomplete"):
        DatasetInfo.from_dict({"name": "x"})


def test_mae_and_rmse_without_evaluator_differ_as_they_should():
    y, pred = torch.tensor([[0.0], [0.0]]), torch.tensor([[1.0], [3.0]])
    assert score(_info("regression", "mae", outputs=1), y, pred) == pytest.approx(2.0)
    assert score(_info("regression", "rmse", outputs=1), y, pred) == pytest.approx(np.sqrt(5.0))
