import numpy as np
import pytest
from numbers_fixtures import planted

from convergent.basis import principal_basis
from convergent.numbers.fourier import (
    detrend,
    dft_power_at,
    period_powers,
    spectrum,
    trend_cutoff,
)


def test_spectrum_matches_the_papers_dft_formula():
    values = np.random.default_rng(1).standard_normal((120, 7)) + 0.3
    spec = spectrum(principal_basis(values))
    assert spec.frequency[-1] == pytest.approx(0.5)
    for k in (0, 1, 7, 12, 60):
        assert spec.power[k] == pytest.approx(dft_power_at(values, k / 120), rel=1e-9)
    assert np.median(spec.magnitude[1:]) == pytest.approx(1.0)


def test_wide_matrices_use_the_gram_basis_without_changing_the_spectrum():
    values = np.random.default_rng(2).standard_normal((40, 90))
    spec = spectrum(principal_basis(values))
    direct = [dft_power_at(values, k / 40) for k in range(21)]
    np.testing.assert_allclose(spec.power, direct, rtol=1e-8)


def test_phi_is_the_sum_over_harmonics():
    values = planted(n=500, dim=10, seed=3)
    powers = period_powers(principal_basis(values), [5, 10], permutations=0)
    for period in (5, 10):
        centred = values - values.mean(axis=0)
        expected = sum(dft_power_at(centred, ell / period) for ell in range(1, period))
        assert powers[period].phi == pytest.approx(expected, rel=1e-9)


def test_planted_periods_spike_and_others_do_not():
    values = planted(n=600, dim=24, periods=(2, 5), amplitude=2.0, seed=4)
    powers = period_powers(principal_basis(values), range(2, 11), permutations=199, seed=0)
    for period in (2, 5, 10):  # 10 contains the harmonics of both 2 and 5
        assert powers[period].spike > 5
        assert powers[period].p_value == pytest.approx(1 / 200)
    for period in (3, 7, 9):
        assert powers[period].spike < 2
        assert powers[period].p_value > 0.01


def test_null_means_are_the_averages_over_random_orderings():
    values = np.random.default_rng(5).standard_normal((60, 4))
    basis = principal_basis(values)
    observed = period_powers(basis, [3, 4], permutations=0)
    residual, size = detrend(basis.coords, trend_cutoff([3, 4]))
    scale2 = 60 / (60 - size)
    rng = np.random.default_rng(0)
    raw, detrended = {3: [], 4: []}, {3: [], 4: []}
    for _ in range(3000):
        order = rng.permutation(60)
        raw_p = period_powers(principal_basis(values[order]), [3, 4], permutations=0)
        res_p = period_powers(principal_basis(residual[order]), [3, 4], permutations=0)
        for period in (3, 4):
            raw[period].append(raw_p[period].phi)
            detrended[period].append(scale2 * res_p[period].phi)
    for period in (3, 4):
        got = observed[period]
        assert got.phi / got.spike_raw == pytest.approx(np.mean(raw[period]), rel=0.04)
        assert got.phi_detrended / got.spike == pytest.approx(
            np.mean(detrended[period]), rel=0.04
        )


def test_peaks_list_off_harmonic_frequencies_strongest_first():
    n = np.arange(1000)
    rng = np.random.default_rng(6)
    values = 0.5 * rng.standard_normal((1000, 8)) + 0.02 * n[:, None]  # an ordinal ramp
    for v, amplitude in ((0.31, 3.0), (0.38, 2.0), (0.475, 1.5)):
        values += amplitude * np.outer(np.cos(2 * np.pi * v * n), rng.standard_normal(8))
    spec = spectrum(principal_basis(values))
    top = spec.peaks[:3]
    assert [p.frequency for p in top] == pytest.approx([0.31, 0.38, 0.475])
    assert all(p.harmonic_of is None for p in top)
    assert top[0].magnitude > 4 and spec.to_dict()["peaks"][0]["period"] == pytest.approx(1 / 0.31)
