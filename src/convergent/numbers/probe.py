"""The mod-T linear probe: multinomial logistic regression, cross-validated.

Exactly: features are the embeddings centred and globally scaled so that the average
per-dimension variance is 1 (one scale for all dimensions: the probe sees the embedding's
geometry, and its result is invariant to any rotation of the embedding space); mean and
scale come from all rows and use no labels. For each modulus T the classes are n mod T;
folds are stratified by class (:func:`convergent.probing.stratified_folds`, seed + T). On
each training split we minimise sum_i CE(W^T x_i + b, y_i) + ||W||^2 / (2C), C = 1, with an
unpenalised intercept: scikit-learn's ``LogisticRegression(C=1.0)`` objective, solved by
:mod:`convergent.probing.logistic` (all folds x moduli jointly, L-BFGS capped at 30
iterations). Every row is predicted once, by the model that did not see it; accuracy and
Cohen's kappa (in percent) are computed on those pooled held-out predictions, with a 95%
percentile bootstrap interval over rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from convergent.basis import PrincipalBasis, principal_basis
from convergent.probing import (
    LogisticSettings,
    ProbeTask,
    bootstrap_kappa_interval,
    cohen_kappa,
    cross_validated_predictions,
    stratified_folds,
)


@dataclass(frozen=True)
class ProbeResult:
    """Held-out accuracy and kappa (percent) of the mod-T probe, with a 95% interval."""

    modulus: int
    accuracy: float
    kappa: float
    kappa_ci: tuple[float, float]
    evaluations: int

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class ProbeSettings:
    """How the probe was run (recorded in every result)."""

    model: str = "multinomial logistic regression, L2 (C=1), unpenalised intercept"
    features: str = "centred, one global scale to unit mean variance per dimension"
    folds: int = 5
    seed: int = 0
    solver: LogisticSettings = field(default_factory=LogisticSettings)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def probe_features(values: np.ndarray) -> np.ndarray:
    """The probe's feature transform on the raw matrix (for the scikit-learn reference)."""
    x = np.asarray(values, dtype=np.float64)
    centred = x - x.mean(axis=0)
    scale = float(np.sqrt(np.mean(centred.var(axis=0)))) or 1.0
    return centred / scale


def fold_assignments(
    numbers: np.ndarray, moduli: Sequence[int], folds: int, seed: int
) -> dict[int, np.ndarray]:
    """The stratified folds used for every modulus (the reference reuses them)."""
    return {t: stratified_folds(np.mod(numbers, t), folds, seed + t) for t in moduli}


def run_probes(
    basis: PrincipalBasis,
    numbers: np.ndarray,
    moduli: Sequence[int],
    settings: ProbeSettings,
) -> dict[int, ProbeResult]:
    """Cross-validated probes for every modulus, solved jointly."""
    assignments = fold_assignments(numbers, moduli, settings.folds, settings.seed)
    tasks = [ProbeTask(t, np.mod(numbers, t), assignments[t]) for t in moduli]
    predictions, evaluations = cross_validated_predictions(basis, tasks, settings.solver)
    results = {}
    for t in moduli:
        truth, predicted = np.mod(numbers, t), predictions[t]
        low, high = bootstrap_kappa_interval(truth, predicted, t, settings.seed + t)
        results[t] = ProbeResult(
            modulus=t,
            accuracy=100 * float(np.mean(predicted == truth)),
            kappa=100 * cohen_kappa(truth, predicted, t),
            kappa_ci=(100 * low, 100 * high),
            evaluations=evaluations,
        )
    return results


def probe_moduli(
    values: np.ndarray,
    numbers: Sequence[int],
    moduli: Sequence[int] = range(2, 11),
    folds: int = 5,
    seed: int = 0,
) -> dict[int, ProbeResult]:
    """Convenience: probes straight from a matrix (see :func:`run_probes`)."""
    basis = principal_basis(values)
    settings = ProbeSettings(folds=folds, seed=seed)
    return run_probes(basis, np.asarray(numbers, dtype=np.int64), list(moduli), settings)
