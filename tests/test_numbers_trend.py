"""The spike test under an ordinal trend: periods found at any trend strength, no false spikes."""

import numpy as np
import pytest
from numbers_fixtures import planted

from convergent.basis import principal_basis
from convergent.numbers import analyze_numbers
from convergent.numbers.fourier import period_powers


def _trend(n: int, shape: str) -> np.ndarray:
    x = np.arange(n, dtype=float)
    curve = {"linear": x / n, "quadratic": (x / n) ** 2, "log": np.log1p(x) / np.log(n)}[shape]
    return curve - curve.mean()


def _with_trend(values: np.ndarray, shape: str, size: float, seed: int) -> np.ndarray:
    direction = np.random.default_rng(seed).standard_normal(values.shape[1])
    direction /= np.linalg.norm(direction)
    return values + size * np.outer(_trend(values.shape[0], shape), direction)


@pytest.mark.parametrize("size", [0.0, 300.0, 3000.0])
def test_both_periods_are_found_beside_a_strong_ramp(size):
    values = _with_trend(planted(n=400, dim=16, periods=(5, 7), amplitude=0.6, seed=1),
                         "linear", size, seed=2)
    powers = period_powers(principal_basis(values), [3, 5, 7], permutations=199, seed=0)
    for period in (5, 7):
        assert powers[period].p_value <= 0.01
        assert powers[period].spike > 1.5
    assert powers[3].p_value > 0.01
    if size >= 300:  # what the plain shuffle null reported: no spike at all
        assert powers[5].spike_raw < 0.2 and powers[7].spike_raw < 0.2


def test_a_separable_period_is_never_reported_without_a_spike_because_of_a_trend():
    values = _with_trend(planted(n=300, dim=12, periods=(5,), amplitude=2.0, seed=3),
                         "linear", 300.0, seed=4)
    result = analyze_numbers(values, range(300), moduli=[3, 5], permutations=99)
    assert result.periods[5].kappa > 80  # Theorem 1, necessity: separable ...
    assert result.periods[5].p_value <= 0.01 and result.periods[5].spike > 5  # ... so a spike
    assert result.to_dict()["periods"]["5"]["spike_raw"] < 0.5  # the plain shuffle missed it
    assert result.periods[3].kappa < 20


@pytest.mark.parametrize("shape", ["linear", "quadratic", "log"])
def test_a_pure_trend_plus_noise_gives_uniform_p_values(shape):
    p_values = []
    for seed in range(40):
        noise = np.random.default_rng(100 + seed).standard_normal((100, 8))
        values = _with_trend(noise, shape, 100.0, seed)
        powers = period_powers(principal_basis(values), [5, 10], permutations=99, seed=seed)
        p_values += [powers[5].p_value, powers[10].p_value]
    p = np.array(p_values)
    # 80 p-values (two periods, 40 seeds): a uniform law puts 4 below 0.05; P(>= 12) < 1e-3
    assert np.sum(p < 0.05) <= 11
    assert 0.35 < p.mean() < 0.65
