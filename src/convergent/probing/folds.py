"""Seeded stratified k-fold assignment and Cohen's kappa with a bootstrap interval."""

from __future__ import annotations

import numpy as np


def stratified_folds(labels: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Fold index per row: each class is shuffled and dealt round-robin over the folds.

    The starting fold rotates from class to class so fold sizes differ by at most one.
    Equivalent in spirit to ``StratifiedKFold(shuffle=True)``; pass the returned assignment
    to scikit-learn (``PredefinedSplit``) to use the very same folds there.
    """
    rng = np.random.default_rng(seed)
    assignment = np.empty(labels.size, dtype=np.int64)
    offset = 0
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        rng.shuffle(members)
        assignment[members] = (np.arange(members.size) + offset) % folds
        offset += members.size
    return assignment


def cohen_kappa(truth: np.ndarray, predicted: np.ndarray, classes: int) -> float:
    """Cohen's kappa (p_o - p_e) / (1 - p_e), in [-1, 1]; 0 is chance agreement."""
    observed = float(np.mean(truth == predicted))
    p_true = np.bincount(truth, minlength=classes) / truth.size
    p_pred = np.bincount(predicted, minlength=classes) / truth.size
    expected = float(p_true @ p_pred)
    return 0.0 if expected >= 1 else (observed - expected) / (1 - expected)


def bootstrap_kappa_interval(
    truth: np.ndarray,
    predicted: np.ndarray,
    classes: int,
    seed: int,
    resamples: int = 1000,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap interval of kappa over the held-out predictions (rows resampled).

    Resampling rows only changes how many rows fall in each (truth, prediction) cell, so we
    draw the T x T cell counts from their multinomial directly: the same distribution as
    resampling rows, at a cost independent of the number of rows.
    """
    rng = np.random.default_rng(seed)
    n = truth.size
    cells = np.bincount(truth * classes + predicted, minlength=classes * classes) / n
    counts = rng.multinomial(n, cells, size=resamples).reshape(resamples, classes, classes)
    observed = np.trace(counts, axis1=1, axis2=2) / n
    expected = np.einsum("bk,bk->b", counts.sum(axis=2), counts.sum(axis=1)) / (n * n)
    with np.errstate(divide="ignore", invalid="ignore"):
        kappa = np.where(expected < 1, (observed - expected) / (1 - expected), 0.0)
    alpha = (1 - level) / 2
    low, high = np.quantile(kappa, [alpha, 1 - alpha])
    return float(low), float(high)
