import numpy as np
import pytest
from numbers_fixtures import planted

from convergent import analyze_numbers
from convergent.numbers.probe import fold_assignments, probe_features, probe_moduli
from convergent.probing.folds import bootstrap_kappa_interval, cohen_kappa, stratified_folds


def sklearn_reference(values, numbers, moduli, folds=5, seed=0):
    """The reference probe: sklearn LogisticRegression(C=1) on the same features and folds."""
    from sklearn.linear_model import LogisticRegression

    features = probe_features(values)
    assignments = fold_assignments(numbers, moduli, folds, seed)
    kappas = {}
    for t in moduli:
        truth = numbers % t
        predicted = np.empty_like(truth)
        for f in range(folds):
            train = assignments[t] != f
            model = LogisticRegression(C=1.0, max_iter=2000).fit(features[train], truth[train])
            predicted[~train] = model.predict(features[~train])
        kappas[t] = 100 * cohen_kappa(truth, predicted, t)
    return kappas


def test_cohen_kappa_matches_sklearn():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 4, 300)
    predicted = np.where(rng.random(300) < 0.6, truth, rng.integers(0, 4, 300))
    assert cohen_kappa(truth, predicted, 4) == pytest.approx(
        metrics.cohen_kappa_score(truth, predicted)
    )
    low, high = bootstrap_kappa_interval(truth, predicted, 4, seed=0)
    assert low < cohen_kappa(truth, predicted, 4) < high
    assert high - low < 0.2


def test_stratified_folds_are_balanced_and_seeded():
    labels = np.arange(103) % 7
    folds = stratified_folds(labels, 5, seed=3)
    assert np.array_equal(folds, stratified_folds(labels, 5, seed=3))
    assert not np.array_equal(folds, stratified_folds(labels, 5, seed=4))
    sizes = np.bincount(folds)
    assert sizes.max() - sizes.min() <= 1
    for cls in range(7):
        per_fold = np.bincount(folds[labels == cls], minlength=5)
        assert per_fold.max() - per_fold.min() <= 1


def test_planted_periods_are_separable_and_controls_are_not():
    values = planted(n=500, dim=20, periods=(2, 5), amplitude=2.0, noise=1.0, seed=2)
    result = probe_moduli(values, np.arange(500), moduli=range(2, 11))
    for period in (2, 5, 10):
        assert result[period].kappa > 80
    for period in (3, 7, 9):
        assert abs(result[period].kappa) < 15
    low, high = result[5].kappa_ci
    assert low <= result[5].kappa <= high


def test_agrees_with_sklearn_on_wide_noisy_embeddings():
    values = planted(n=300, dim=400, periods=(2, 5), amplitude=1.2, noise=1.0, seed=5)
    numbers = np.arange(300)
    ours = probe_moduli(values, numbers, moduli=[2, 3, 5, 10])
    reference = sklearn_reference(values, numbers, [2, 3, 5, 10])
    for t, kappa in reference.items():
        assert ours[t].kappa == pytest.approx(kappa, abs=3.0)


def test_probe_is_invariant_to_rotations():
    values = planted(n=300, dim=16, periods=(5,), amplitude=1.0, seed=6)
    rotation, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((16, 16)))
    a = probe_moduli(values, np.arange(300), moduli=[5, 7])
    b = probe_moduli(values @ rotation, np.arange(300), moduli=[5, 7])
    for t in (5, 7):
        assert a[t].kappa == pytest.approx(b[t].kappa, abs=1.0)


def test_token_identity_control_flags_digit_positions():
    numbers = np.arange(10, 510)
    digits = [tuple(int(c) for c in str(n)) for n in numbers]
    values = planted(n=500, dim=8, periods=(10,), amplitude=3.0, seed=1)
    result = analyze_numbers(values, numbers, moduli=[3, 10], token_ids=digits, permutations=0)
    assert result.periods[10].baseline_kappa > 95  # the last digit is n mod 10
    assert result.periods[10].explained_by_tokens
    assert result.periods[3].baseline_kappa < 15  # held-out kappa can dip below 0
    assert not result.periods[3].explained_by_tokens  # nothing separable to explain
    single = [(1000 + n,) for n in numbers]  # single-token numbers: identity says nothing
    result = analyze_numbers(values, numbers, moduli=[10], token_ids=single, permutations=0)
    assert abs(result.periods[10].baseline_kappa) < 15
    assert not result.periods[10].explained_by_tokens


def test_cell_bootstrap_matches_resampling_rows():
    rng = np.random.default_rng(1)
    truth = rng.integers(0, 3, 400)
    predicted = np.where(rng.random(400) < 0.5, truth, rng.integers(0, 3, 400))
    rows = rng.integers(0, 400, size=(4000, 400))
    naive = [cohen_kappa(truth[r], predicted[r], 3) for r in rows]
    low, high = bootstrap_kappa_interval(truth, predicted, 3, seed=0, resamples=4000)
    expected_low, expected_high = np.quantile(naive, [0.025, 0.975])
    assert low == pytest.approx(expected_low, abs=0.015)
    assert high == pytest.approx(expected_high, abs=0.015)
