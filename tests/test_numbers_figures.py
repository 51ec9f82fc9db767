"""The number figures: log magnitude scale, eigenvalue blocks, accuracy in dynamics, peaks."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from convergent.numbers import analyze_numbers
from convergent.report.dynamics import dynamics_panels, plot_dynamics
from convergent.report.numbers import (
    eigenvalue_table,
    magnitude_norm,
    peak_lines,
    plot_numbers,
)


def _entries():
    rng = np.random.default_rng(0)
    n = np.arange(120)
    values = rng.standard_normal((120, 6))
    values[:, 0] += 3 * np.cos(2 * np.pi * n / 5)
    first = analyze_numbers(values, n, moduli=[2, 5, 10], permutations=19, name="a").to_dict()
    second = dict(first, name="old", fisher={})  # a results.json entry from before eigenvalues
    return [first, second]


def test_magnitude_uses_the_papers_log_scale():
    norm = magnitude_norm()
    assert norm(1.0) == pytest.approx(0.0)
    assert norm(2.0) == pytest.approx(0.5)
    assert norm(4.0) == pytest.approx(1.0)


def test_eigenvalue_blocks_hold_every_period_and_leave_missing_ones_empty():
    entries = _entries()
    table, starts = eigenvalue_table(entries, [2, 5, 10])
    assert table.shape == (2, 1 + 4 + 9) and starts == [0, 1, 5]
    np.testing.assert_allclose(table[0, 1:5], entries[0]["fisher"]["5"]["eigenvalues"])
    assert table[0, 1] == pytest.approx(entries[0]["fisher"]["5"]["lambda_max"])
    assert np.all(np.diff(table[0, 5:]) <= 0) and np.isnan(table[1]).all()


def test_numbers_figure_and_peak_lines(tmp_path):
    entries = _entries()
    written = plot_numbers(entries, [tmp_path / "n.png"])
    assert all(p.stat().st_size > 10_000 for p in written)
    lines = peak_lines(entries)
    assert lines[0].split()[1] == "0.200" and "T=5" in lines[0]


def test_dynamics_shows_spike_and_accuracy_beside_kappa_when_the_points_carry_them(tmp_path):
    import matplotlib.image

    def points(*extra):
        values = {"accuracy": 50.0, "spike": 1.2}
        return [{"tokens": k * 1000, "periods": {str(t): {"phi": 1.0 + k, "kappa": 10.0 * k}
                 | {key: values[key] + k for key in extra} for t in (2, 5)}}
                for k in range(3)]

    assert [p.key for p in dynamics_panels(points())] == ["phi", "kappa"]
    assert [p.key for p in dynamics_panels(points("accuracy"))] == ["phi", "accuracy", "kappa"]
    assert [p.key for p in dynamics_panels(points("accuracy", "spike"))] == [
        "phi", "spike", "accuracy", "kappa"]
    wide = plot_dynamics(points("accuracy"), [tmp_path / "a.png"])[0]
    narrow = plot_dynamics(points(), [tmp_path / "b.png"])[0]
    square = plot_dynamics(points("accuracy", "spike"), [tmp_path / "c.png"])[0]
    assert matplotlib.image.imread(wide).shape[1] > 1.3 * matplotlib.image.imread(narrow).shape[1]
    assert matplotlib.image.imread(square).shape[0] > 1.6 * matplotlib.image.imread(wide).shape[0]
