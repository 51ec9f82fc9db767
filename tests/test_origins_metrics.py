"""Each geometry metric returns its known value on constructed geometries."""

from __future__ import annotations

import numpy as np
import pytest

from convergent.origins.metrics import (
    causal_whitening,
    concept_geometry,
    cosine_matrix,
    mean_abs_offdiagonal,
    probe_accuracy,
    within_cosine,
)
from convergent.origins.simulator import Simulator
from convergent.origins.structure import independent, token_bits
from convergent.origins.training import simulation_geometry


def _pairs(m: int) -> list[tuple[np.ndarray, np.ndarray]]:
    tokens = np.arange(2**m)
    return [
        (tokens[(tokens >> i) & 1 == 0], tokens[(tokens >> i) & 1 == 0] + 2**i) for i in range(m)
    ]


def _linear_unembedding(a: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """g(y) = offset + sum_i c_i a_i for every token y of m = len(a) concepts."""
    return offset + token_bits(a.shape[0]) @ a


def test_within_cosine_known_values() -> None:
    assert within_cosine(np.tile([1.0, 2.0, 3.0], (5, 1))) == pytest.approx(1.0)
    assert within_cosine(np.eye(4)) == pytest.approx(0.0)
    assert within_cosine(np.array([[1.0, 0.0], [-1.0, 0.0]])) == pytest.approx(-1.0)
    two = np.array([[1.0, 0.0], [1.0, 1.0]])  # 45 degrees
    assert within_cosine(two) == pytest.approx(np.sqrt(0.5))
    rng = np.random.default_rng(0)
    assert abs(within_cosine(rng.normal(size=(200, 500)))) < 0.01


def test_mean_abs_offdiagonal_and_cosine_matrix() -> None:
    dirs = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    cos = cosine_matrix(dirs)
    np.testing.assert_allclose(np.diag(cos), 1.0)
    assert cos[0, 1] == pytest.approx(0.0) and cos[0, 2] == pytest.approx(np.sqrt(0.5))
    assert mean_abs_offdiagonal(cos) == pytest.approx(2 * np.sqrt(0.5) / 3)


def test_linear_unembedding_is_parallel_and_causally_orthogonal() -> None:
    rng = np.random.default_rng(1)
    m, d = 4, 10
    a = rng.normal(size=(m, d)) + 2.0  # strongly non-orthogonal in Euclidean terms
    g = _linear_unembedding(a, rng.normal(size=d))
    geo = concept_geometry(g, _pairs(m), tuple(f"c{i}" for i in range(m)))
    np.testing.assert_allclose(geo.within, 1.0, atol=1e-9)
    assert mean_abs_offdiagonal(geo.between_euclid) > 0.5
    # Cov(g) over a uniform vocabulary of independent bits is A^T A / 4: the causal inner
    # product between distinct concept directions is exactly zero.
    assert mean_abs_offdiagonal(geo.between_causal) < 1e-9
    assert geo.causal_rank == m


def test_orthogonal_linear_unembedding_is_euclidean_orthogonal() -> None:
    m, d = 3, 6
    a = 3.0 * np.eye(d)[:m]
    geo = concept_geometry(_linear_unembedding(a, np.ones(d)), _pairs(m), ("a", "b", "c"))
    assert mean_abs_offdiagonal(geo.between_euclid) < 1e-12
    np.testing.assert_allclose(geo.within, 1.0)


def test_causal_cosine_is_invariant_to_invertible_maps_euclidean_is_not() -> None:
    rng = np.random.default_rng(2)
    m, d = 4, 8
    g = _linear_unembedding(rng.normal(size=(m, d)), np.zeros(d)) + 0.3 * rng.normal(size=(2**m, d))
    mix = rng.normal(size=(d, d))
    names = tuple("abcd")
    before = concept_geometry(g, _pairs(m), names)
    after = concept_geometry(g @ mix + rng.normal(size=d), _pairs(m), names)
    np.testing.assert_allclose(before.between_causal, after.between_causal, atol=1e-8)
    assert np.abs(before.between_euclid - after.between_euclid).max() > 0.05


def test_whitening_preserves_logits_on_the_range() -> None:
    rng = np.random.default_rng(3)
    g = rng.normal(size=(50, 3)) @ rng.normal(size=(3, 7))  # rank 3 in 7 dimensions
    white = causal_whitening(g)
    assert white.rank == 3
    f = rng.normal(size=(5, 7))
    centred = g - g.mean(0)
    np.testing.assert_allclose(white.embed(f) @ white.unembed(centred).T, f @ centred.T, atol=1e-9)
    cov = np.cov(white.unembed(g), rowvar=False, bias=True)
    np.testing.assert_allclose(cov, np.eye(3), atol=1e-9)


def test_probe_accuracy_known_values() -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(size=(400, 5))
    score = x[:, 2] + 0.5 * x[:, 0]
    x = x[np.abs(score) > 0.2]  # separable with a margin: held-out accuracy is exactly 1
    separable = score[np.abs(score) > 0.2] > 0
    assert probe_accuracy(x, separable) == 1.0
    noise = rng.random(x.shape[0]) < 0.5
    assert 0.35 < probe_accuracy(x, noise) < 0.65
    assert np.isnan(probe_accuracy(x[:6], separable[:6]))


def test_simulation_geometry_on_a_planted_model() -> None:
    """A linear g with f(x) = sum of revealed signs along the same directions: every metric
    takes its ideal value (parallel, orthogonal, aligned, perfectly probed)."""
    m, d = 4, 8
    sim = Simulator.make(independent(m), reveal=0.5)
    a = np.eye(d)[:m] * 2.0
    g = _linear_unembedding(a, np.zeros(d))
    seen = np.arange(sim.n_contexts)
    states = sim.context_states(seen)
    signs = np.select([states == 2, states == 1], [1.0, -1.0], 0.0)
    f = signs @ a
    geo = simulation_geometry(sim, g, f, seen)
    np.testing.assert_allclose(geo.within, 1.0)
    np.testing.assert_allclose(geo.alignment_euclid, 1.0)
    np.testing.assert_allclose(geo.alignment_causal, 1.0)
    np.testing.assert_allclose(geo.probe, 1.0)
    assert mean_abs_offdiagonal(geo.between_euclid) < 1e-12
    # a random f aligns with nothing and probes at chance
    rand = simulation_geometry(sim, g, np.random.default_rng(0).normal(size=f.shape), seen)
    assert np.all(np.abs(rand.alignment_euclid) < 0.6)
    assert np.all(rand.probe < 0.75)
