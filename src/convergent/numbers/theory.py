"""Theorem 1 of Fu et al. (2026): Fourier sparsity is necessary but not sufficient.

Construction: n = r + m T (r = n mod T), e(n) = A r + B m. The A r term puts power
Phi_T = N A^2 Var(r) at the harmonics l/T; B m is invisible there (its DFT vanishes at
every l/T) and only inflates the within-class scatter. So (A, B small) and (A, B large)
have the same Phi_T, yet the first is perfectly mod-T separable and the second is not.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from convergent.errors import ConvergentError


def construction(n: int, period: int, a: float, b: float) -> np.ndarray:
    """The 1-D embedding e(n) = a (n mod T) + b floor(n / T), as an [n, 1] matrix."""
    if period < 2 or n < period:
        raise ConvergentError(f"construction: need period >= 2 and n >= period, got {period}, {n}")
    numbers = np.arange(n)
    return (a * (numbers % period) + b * (numbers // period)).astype(np.float64)[:, None]


def embed_construction(
    values: np.ndarray, dim: int, noise: float = 0.0, seed: int = 0
) -> np.ndarray:
    """Place a 1-D embedding along a random unit direction of R^dim, plus isotropic noise."""
    rng = np.random.default_rng(seed)
    direction = rng.standard_normal(dim)
    direction /= np.linalg.norm(direction)
    lifted = values[:, :1] * direction[None, :]
    return lifted + noise * rng.standard_normal(lifted.shape)


def best_linear_accuracy_1d(x: np.ndarray, labels: np.ndarray, classes: int) -> float:
    """Exact best training accuracy of any T-class linear classifier on 1-D inputs.

    In 1-D, argmax_k (w_k x + c_k) splits the line into intervals, one class each, each class
    at most once (any such labelled partition is realisable). A dynamic programme over the
    sorted points and the set of classes used finds the best partition in O(N 2^T T).
    """
    if classes > 14:
        raise ConvergentError(f"best_linear_accuracy_1d: {classes} classes is too many (max 14)")
    order = np.argsort(x, kind="stable")
    xs, ys = np.asarray(x)[order], np.asarray(labels)[order]
    _, starts = np.unique(xs, return_index=True)
    groups = np.split(ys, starts[1:])
    subsets = 1 << classes
    dp = np.full((subsets, classes), -np.inf)
    first = np.bincount(groups[0], minlength=classes)
    for c in range(classes):
        dp[1 << c, c] = first[c]
    without = [np.array([s for s in range(subsets) if not s >> c & 1]) for c in range(classes)]
    for group in groups[1:]:
        counts = np.bincount(group, minlength=classes)
        best = dp.max(axis=1)
        new = dp + counts[None, :]
        for c in range(classes):
            source = without[c]
            target = source | (1 << c)
            new[target, c] = np.maximum(new[target, c], best[source] + counts[c])
        dp = new
    return float(dp.max() / len(labels))


@dataclass(frozen=True)
class ConstructionCase:
    """One (A, B) construction: its Phi_T and how separable it is."""

    a: float
    b: float
    phi: float
    best_linear_accuracy: float
    probe_accuracy: float
    probe_kappa: float
    lambda_max: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True, eq=False)
class TheoremDemo:
    """The two constructions side by side (same Phi_T, opposite separability)."""

    period: int
    n: int
    dim: int
    noise: float
    separable: ConstructionCase
    inseparable: ConstructionCase
    analyses: tuple  # (NumberAnalysis, NumberAnalysis) for the figure

    def to_dict(self) -> dict[str, object]:
        return {
            "period": self.period,
            "n": self.n,
            "dim": self.dim,
            "noise": self.noise,
            "separable": self.separable.to_dict(),
            "inseparable": self.inseparable.to_dict(),
        }


def demonstrate(
    period: int = 10,
    n: int = 1000,
    a: float = 5.0,
    b_small: float = 0.03,
    b_large: float = 31.0,
    dim: int = 1,
    noise: float = 0.0,
    seed: int = 0,
) -> TheoremDemo:
    """Build both constructions, measure Phi_T, exact 1-D accuracy, probe and Fisher."""
    from convergent.numbers.analysis import analyze_numbers

    if n % period:
        raise ConvergentError(f"theory: n = {n} must be divisible by the period {period}")
    numbers = np.arange(n)
    cases, analyses = [], []
    for b in (b_small, b_large):
        line = construction(n, period, a, b)
        values = line if dim == 1 and noise == 0 else embed_construction(line, dim, noise, seed)
        result = analyze_numbers(
            values, numbers, moduli=[period], seed=seed, permutations=0, name=f"A={a:g}, B={b:g}"
        )
        cases.append(
            ConstructionCase(
                a=a,
                b=b,
                phi=result.periods[period].phi,
                best_linear_accuracy=100
                * best_linear_accuracy_1d(line[:, 0], numbers % period, period),
                probe_accuracy=result.periods[period].accuracy,
                probe_kappa=result.periods[period].kappa,
                lambda_max=result.fisher[period].lambda_max,
            )
        )
        analyses.append(result)
    return TheoremDemo(period, n, dim, noise, cases[0], cases[1], tuple(analyses))
