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
    """Percentile bootstrap interval of kappa over the held-out predictions (rows resampled)."""
    rng = np.random.default_rng(seed)
    n = truth.size
    idx = rng.integers(0, n, size=(resamples, n))
    t, p = truth[idx], predicted[idx]
    observed = np.mean(t == p, axis=1)
    rows = np.repeat(np.arange(resamples), n)
    p_true = np.bincount(rows * classes + t.ravel(), minlength=resamples * classes)
    p_pred = np.bincount(rows * classes + p.ravel(), minlength=resamples * classes)
    expected = np.sum(
        p_true.reshape(resamples, classes) * p_pred.reshape(resamples, classes), axis=1
    ) / (n * n)
    with np.errstate(divide="ignore", invalid="ignore"):
        kappa = np.where(expected < 1, (observed - expected) / (1 - expected), 0.0)
    alpha = (1 - level) / 2
    low, high = np.quantile(kappa, [alpha, 1 - alpha])
    return float(low), float(high)
