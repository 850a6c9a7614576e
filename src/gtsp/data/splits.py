"""Seeded, reproducible train/validation/test splits for datasets without an official one.

Default: stratified 80/10/10. With ``folds=K``: stratified K-fold, fold ``k`` is the
test set and a stratified ninth of the rest is the validation set.
"""
from __future__ import annotations

import numpy as np
from sklearn.model_selection import StratifiedKFold, train_test_split

from gtsp.errors import GtspError


def stratified_split(labels: np.ndarray, seed: int, folds: int = 0, fold: int = 0) -> dict[str, np.ndarray]:
    """Indices ``{"train", "valid", "test"}`` for class ``labels``."""
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
