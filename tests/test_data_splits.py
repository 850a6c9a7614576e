"""The splits module: deterministic, covering, disjoint; and which tasks a split can score."""
from __future__ import annotations

import math

import numpy as np

from gtsp.data.splits import random_split, scaffold_split, stratified_split, unscorable_tasks


def _check_partition(split: dict[str, np.ndarray], n: int) -> None:
    together = np.concatenate([split["train"], split["valid"], split["test"]])
    assert sorted(together.tolist()) == list(range(n))
    assert all(np.array_equal(v, np.sort(v)) for v in split.values())


def test_every_split_is_deterministic_and_a_partition():
    rng = np.random.default_rng(3)
    scaffolds = [f"s{k}" for k in rng.integers(0, 40, size=300)]
    labels = rng.integers(0, 2, size=300)
    makers = [lambda: scaffold_split(scaffolds), lambda: random_split(300, seed=5),
              lambda: stratified_split(labels, seed=5), lambda: stratified_split(labels, 5, folds=4, fold=2)]
    for make in makers:
        first, second = make(), make()
        assert all(np.array_equal(first[k], second[k]) for k in ("train", "valid", "test"))
        _check_partition(first, 300)


def test_scaffold_groups_never_straddle_parts_and_train_stays_within_80_percent():
    rng = np.random.default_rng(0)
    scaffolds = [f"s{k}" for k in rng.integers(0, 60, size=500)]
    split = scaffold_split(scaffolds)
    owner = {}
    for part, index in split.items():
        for i in index:
            assert owner.setdefault(scaffolds[i], part) == part
    # train never passes 80%; smaller groups may still join it after valid has started (OGB's order)
    assert 380 <= len(split["train"]) <= 400 and len(split["valid"]) > 0 and len(split["test"]) > 0


def test_random_split_depends_on_the_seed():
    assert not np.array_equal(random_split(100, 1)["test"], random_split(100, 2)["test"])


def test_unscorable_tasks_names_missing_labels_and_single_classes():
    nan = math.nan
    labels = np.array([[1, nan, 0.5], [0, nan, 0.7], [1, 1, nan], [1, 0, nan]])
    assert unscorable_tasks(labels, np.array([0, 1]), binary=True) == [(1, "no known label")]
    assert unscorable_tasks(labels, np.array([2, 3]), binary=True) == [(0, "only class 1 (2 labelled)"),
                                                                        (2, "no known label")]
    assert unscorable_tasks(labels, np.array([2, 3]), binary=False) == [(2, "no known label")]
