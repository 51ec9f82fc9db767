import itertools

import numpy as np
import pytest

from convergent.errors import ConvergentError
from convergent.numbers.theory import best_linear_accuracy_1d, construction, demonstrate


def brute_force(x, labels, classes):
    """Best accuracy over every labelled interval partition of the sorted distinct values."""
    values = np.unique(x)
    best = 0
    for cuts in range(classes):
        for positions in itertools.combinations(range(1, values.size), cuts):
            edges = [values[0] - 1, *[values[p] for p in positions], values[-1] + 1]
            for order in itertools.permutations(range(classes), cuts + 1):
                predicted = np.empty_like(labels)
                for k, label in enumerate(order):
                    predicted[(x >= edges[k]) & (x < edges[k + 1])] = label
                predicted[x >= edges[-1]] = order[-1]
                best = max(best, int(np.sum(predicted == labels)))
    return best / labels.size


def test_dynamic_programme_matches_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(5):
        x = rng.integers(0, 7, 12).astype(float)
        labels = rng.integers(0, 3, 12)
        assert best_linear_accuracy_1d(x, labels, 3) == pytest.approx(brute_force(x, labels, 3))


def test_papers_construction_numbers():
    numbers = np.arange(1000)
    separable = construction(1000, 10, 5, 0.03)[:, 0]
    inseparable = construction(1000, 10, 5, 31)[:, 0]
    assert best_linear_accuracy_1d(separable, numbers % 10, 10) == 1.0
    assert best_linear_accuracy_1d(inseparable, numbers % 10, 10) == pytest.approx(0.109)


def test_same_phi_opposite_separability_in_high_dimension():
    demo = demonstrate(dim=32, noise=0.3)
    assert demo.separable.phi == pytest.approx(demo.inseparable.phi, rel=1e-9)
    assert demo.separable.phi > 200_000
    assert demo.separable.probe_accuracy > 90
    assert demo.inseparable.probe_accuracy < 15
    assert demo.separable.lambda_max > 100 * demo.inseparable.lambda_max


def test_one_dimensional_demo_matches_the_paper():
    demo = demonstrate()
    assert demo.separable.phi == pytest.approx(206250)
    assert demo.inseparable.phi == pytest.approx(206250)
    assert demo.inseparable.best_linear_accuracy == pytest.approx(10.9)


def test_bad_construction_inputs():
    with pytest.raises(ConvergentError, match="divisible"):
        demonstrate(n=1001)
    with pytest.raises(ConvergentError, match="period"):
        construction(10, 1, 1.0, 1.0)
