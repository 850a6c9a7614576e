"""Seeded, reproducible train/validation/test splits, and the check that a split can be scored.

- TU datasets: stratified 80/10/10, or stratified K-fold where fold ``k`` is the test
  set and a stratified ninth of the rest is the validation set.
- Molecules: MoleculeNet's scaffold split as OGB ships it (Wu et al. 2018, "MoleculeNet:
  a benchmark for molecular machine learning"; Bemis & Murcko 1996 scaffolds), or a
  seeded random 80/10/10 split.

Every function returns sorted index arrays ``{"train", "valid", "test"}``.
"""
from __future__ import annotations

import numpy as np
from sklearn.model_selection import StratifiedKFold, train_test_split

from gtsp.errors import GtspError

PARTS = ("train", "valid", "test")
FRACTIONS = (0.8, 0.1, 0.1)
MOL_SPLITS = ("scaffold", "random")


def stratified_split(labels: np.ndarray, seed: int, folds: int = 0, fold: int = 0) -> dict[str, np.ndarray]:
    """Indices for class ``labels``: stratified 80/10/10, or fold ``fold`` of ``folds`` as the test set."""
    index = np.arange(len(labels))
    if folds:
        if not 0 <= fold < folds or folds < 2:
            raise GtspError(f"fold {fold} does not exist for {folds} folds: use 0 <= --fold < --folds, --folds >= 2")
        splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
        rest, test = list(splitter.split(index, labels))[fold]
        train, valid = train_test_split(rest, test_size=1 / 9, stratify=labels[rest], random_state=seed)
    else:
        train, rest = train_test_split(index, test_size=0.2, stratify=labels, random_state=seed)
        valid, test = train_test_split(rest, test_size=0.5, stratify=labels[rest], random_state=seed)
    return {"train": np.sort(train), "valid": np.sort(valid), "test": np.sort(test)}


def scaffold_split(scaffolds: list[str]) -> dict[str, np.ndarray]:
    """OGB's 80/10/10 scaffold split of molecules given their scaffold strings.

    Molecules are grouped by scaffold; groups are taken largest first (equal sizes: the
    group whose first molecule comes later goes first, the order of MoleculeNet's and
    OGB's reference splitter) and poured into train until 80% would be exceeded, then
    into valid until train+valid would exceed 90%, the rest into test. From
    ``moleculenet/hiv.csv`` this reproduces ogbg-molhiv's 32901 / 4113 / 4113.
    """
    groups: dict[str, list[int]] = {}
    for index, scaffold in enumerate(scaffolds):
        groups.setdefault(scaffold, []).append(index)
    ordered = sorted(groups.values(), key=lambda g: (len(g), g[0]), reverse=True)
    n = len(scaffolds)
    train_cut, valid_cut = FRACTIONS[0] * n, (FRACTIONS[0] + FRACTIONS[1]) * n
    parts: dict[str, list[int]] = {part: [] for part in PARTS}
    for group in ordered:
        if len(parts["train"]) + len(group) <= train_cut:
            parts["train"] += group
        elif len(parts["train"]) + len(parts["valid"]) + len(group) <= valid_cut:
            parts["valid"] += group
        else:
            parts["test"] += group
    return {k: np.array(sorted(v), dtype=np.int64) for k, v in parts.items()}


def random_split(n: int, seed: int) -> dict[str, np.ndarray]:
    """A seeded random 80/10/10 split of ``n`` molecules."""
    order = np.random.default_rng(seed).permutation(n)
    n_train, n_valid = int(FRACTIONS[0] * n), int(FRACTIONS[1] * n)
    cuts = {"train": order[:n_train], "valid": order[n_train:n_train + n_valid],
            "test": order[n_train + n_valid:]}
    return {k: np.sort(v).astype(np.int64) for k, v in cuts.items()}


def unscorable_tasks(labels: np.ndarray, index: np.ndarray, binary: bool) -> list[tuple[int, str]]:
    """Tasks (column, why) whose metric cannot be computed on the rows ``index`` of ``labels``.

    A task with no known label there has no metric at all; a binary task also needs both
    classes (ROC-AUC and AP are undefined otherwise, and OGB's evaluator skips such a
    task, or raises when every task is like that).
    """
    part = labels[index]
    problems = []
    for task in range(part.shape[1]):
        known = part[:, task][~np.isnan(part[:, task])]
        if known.size == 0:
            problems.append((task, "no known label"))
        elif binary and np.unique(known).size < 2:
            problems.append((task, f"only class {known[0]:g} ({known.size} labelled)"))
    return problems
