import numpy as np
import pytest
import scipy.linalg
from numbers_fixtures import planted

from convergent.basis import principal_basis
from convergent.numbers.fisher import fisher, scatter_matrices
from convergent.numbers.fourier import period_powers


def _fisher(values, period):
    basis = principal_basis(values)
    numbers = np.arange(values.shape[0])
    phi = period_powers(basis, [period], permutations=0)[period].phi
    return fisher(basis, numbers, period, phi), phi


@pytest.mark.parametrize("period", [2, 5, 10])
def test_trace_identity_holds_to_1e_9(period):
    values = planted(n=500, dim=12, seed=period)
    result, phi = _fisher(values, period)
    s_b, _ = scatter_matrices(values, np.arange(500), period)
    assert np.trace(s_b) == pytest.approx(phi / 500, rel=1e-9)
    assert result.trace_identity_error < 1e-9
    assert result.trace_sb == pytest.approx(np.trace(s_b), rel=1e-9)


def test_lambda_max_and_condition_match_the_definitions():
    values = planted(n=400, dim=15, seed=7)
    result, phi = _fisher(values, 10)
    s_b, s_w = scatter_matrices(values, np.arange(400), 10)
    eig = scipy.linalg.eigh(s_b, s_w, eigvals_only=True)
    within = np.linalg.eigvalsh(s_w)
    assert result.shrinkage == 0.0
    assert result.lambda_max == pytest.approx(eig[-1], rel=1e-8)
    assert result.cond_sw == pytest.approx(within[-1] / within[0], rel=1e-8)
    assert result.lower_bound <= result.lambda_max <= result.upper_bound
    assert result.upper_bound == pytest.approx(phi / (400 * within[0]), rel=1e-8)


@pytest.mark.parametrize("period", [4, 7])
def test_all_t_minus_1_eigenvalues_match_the_generalized_problem(period):
    values = planted(n=420, dim=15, periods=(4, 7), seed=8)
    result, _ = _fisher(values, period)
    s_b, s_w = scatter_matrices(values, np.arange(420), period)
    eig = scipy.linalg.eigh(s_b, s_w, eigvals_only=True)[::-1][: period - 1]
    assert len(result.eigenvalues) == period - 1
    np.testing.assert_allclose(result.eigenvalues, eig, rtol=1e-7, atol=1e-10)
    assert result.eigenvalues[0] == result.lambda_max
    assert result.to_dict()["eigenvalues"] == list(result.eigenvalues)


def test_singular_within_scatter_uses_sklearns_ledoit_wolf():
    sklearn_cov = pytest.importorskip("sklearn.covariance")
    values = np.random.default_rng(3).standard_normal((60, 80))  # d > N - T: S_W singular
    result, _ = _fisher(values, 4)
    labels = np.arange(60) % 4
    means = np.stack([values[labels == r].mean(axis=0) for r in range(4)])
    residual = values - means[labels]
    _, expected = sklearn_cov.ledoit_wolf(residual, assume_centered=True)
    assert result.shrinkage == pytest.approx(expected, rel=1e-6)
    s_b, s_w = scatter_matrices(values, np.arange(60), 4)
    shrunk = (1 - expected) * s_w + expected * np.trace(s_w) / 80 * np.eye(80)
    eig = scipy.linalg.eigh(s_b, shrunk, eigvals_only=True)
    assert result.lambda_max == pytest.approx(eig[-1], rel=1e-6)
    within = np.linalg.eigvalsh(shrunk)
    assert result.cond_sw == pytest.approx(within[-1] / within[0], rel=1e-6)
    assert result.lower_bound <= result.lambda_max <= result.upper_bound


def test_separable_planted_feature_has_large_fisher_ratio():
    strong, _ = _fisher(planted(n=500, dim=12, periods=(5,), amplitude=4, seed=1), 5)
    weak, _ = _fisher(planted(n=500, dim=12, periods=(5,), amplitude=4, seed=1), 7)
    assert strong.lambda_max > 50 * weak.lambda_max


def test_classes_that_are_points_have_infinite_fisher_ratio():
    rows = np.random.default_rng(0).standard_normal((10, 6))
    values = rows[np.arange(200) % 10]  # e(n) depends on n mod 10 only: S_W = 0
    result, _ = _fisher(values, 10)
    assert result.lambda_max == float("inf") and result.lambda_min_sw == 0.0
    assert result.trace_identity_error < 1e-9
