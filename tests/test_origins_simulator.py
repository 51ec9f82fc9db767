"""The simulator's marginals and conditionals match its specification."""

from __future__ import annotations

import json

import numpy as np
import pytest

from convergent.errors import ConvergentError
from convergent.origins.simulator import Simulator, aggregate
from convergent.origins.structure import (
    chain,
    independent,
    load_structure,
    structure_from_dict,
    token_bits,
)

N = 400_000


def _tolerance(p: np.ndarray, n: float) -> np.ndarray:
    """Five binomial standard errors (plus a floor for p near 0 or 1)."""
    return 5 * np.sqrt(np.clip(p * (1 - p), 1e-4, None) / n)


def test_independent_marginals_match_specification() -> None:
    probs = [0.1, 0.5, 0.8, 0.3]
    sim = Simulator.make(independent(4, probs), reveal=0.5)
    samples = sim.sample(N, seed=3)
    bits = token_bits(4)[samples.tokens]
    assert np.all(np.abs(bits.mean(0) - probs) < _tolerance(np.array(probs), N))
    # independence: the joint of concepts 0 and 2 factorizes
    both = (bits[:, 0] & bits[:, 2]).mean()
    assert abs(both - 0.1 * 0.8) < _tolerance(np.array(0.08), N)


def test_chain_conditionals_match_specification() -> None:
    sim = Simulator.make(chain(5, coupling=0.6, p_first=0.3), reveal=0.0)
    bits = token_bits(5)[sim.sample(N, seed=1).tokens]
    assert abs(bits[:, 0].mean() - 0.3) < _tolerance(np.array(0.3), N)
    for i in range(4):
        for parent in (0, 1):
            rows = bits[:, i] == parent
            p_same = (bits[rows, i + 1] == parent).mean()
            assert abs(p_same - 0.8) < _tolerance(np.array(0.8), rows.sum())


def test_exact_joint_matches_samples_for_a_dag_file(tmp_path) -> None:
    spec = {
        "concepts": [
            {
                "name": "female",
                "parents": ["royal", "adult"],
                "p": {"00": 0.5, "01": 0.4, "10": 0.3, "11": 0.9},
            },
            {"name": "royal", "p": 0.2},
            {"name": "adult", "parents": ["royal"], "p": {"0": 0.6, "1": 0.95}},
        ]
    }
    path = tmp_path / "dag.json"
    path.write_text(json.dumps(spec))
    structure = load_structure(path)
    assert structure.names == ("female", "royal", "adult")
    joint = structure.joint()
    assert joint.sum() == pytest.approx(1.0)
    sim = Simulator.make(structure, reveal=0.0)
    freq = np.bincount(sim.sample(N, seed=0).tokens, minlength=8) / N
    assert np.all(np.abs(freq - joint) < _tolerance(joint, N))
    # female | royal=1, adult=1 is 0.9 (token bits: female=1, royal=2, adult=4)
    assert joint[1 + 2 + 4] / (joint[2 + 4] + joint[1 + 2 + 4]) == pytest.approx(0.9)


def test_toml_and_json_give_the_same_structure(tmp_path) -> None:
    toml = tmp_path / "s.toml"
    toml.write_text(
        '[[concepts]]\nname = "a"\np = 0.3\n\n[[concepts]]\nname = "b"\n'
        'parents = ["a"]\np = { "0" = 0.2, "1" = 0.7 }\n'
    )
    loaded = load_structure(toml)
    again = structure_from_dict(loaded.to_dict())
    np.testing.assert_allclose(loaded.joint(), again.joint())
    np.testing.assert_allclose(loaded.joint(), [0.7 * 0.8, 0.3 * 0.3, 0.7 * 0.2, 0.3 * 0.7])


def test_next_token_distribution_matches_empirical_conditionals() -> None:
    sim = Simulator.make(chain(3, coupling=0.5), reveal=[1.0, 0.5, 0.0], noise=0.1)
    samples = sim.sample(N, seed=2)
    seen, counts = aggregate(samples, sim.n_tokens)
    states = sim.context_states(seen)
    assert np.all(states[:, 0] != 0)  # reveal 1: always shown
    assert np.all(states[:, 2] == 0)  # reveal 0: never shown
    exact = sim.next_token_distribution(seen)
    rows = counts.sum(1)
    empirical = counts / rows[:, None]
    tol = _tolerance(exact, rows[:, None])
    assert np.all(np.abs(empirical - exact) < tol)
    p_x = sim.context_distribution()
    assert p_x.sum() == pytest.approx(1.0)
    assert np.all(np.abs(rows / N - p_x[seen]) < _tolerance(p_x[seen], N))


def test_noiseless_contexts_only_allow_consistent_tokens() -> None:
    sim = Simulator.make(independent(4), reveal=0.7)
    samples = sim.sample(50_000, seed=0)
    states = sim.context_states(samples.contexts)
    bits = token_bits(4)[samples.tokens]
    shown = states > 0
    assert np.array_equal(states[shown] - 1, bits[shown])


def test_sampling_is_seeded() -> None:
    sim = Simulator.make(chain(4), reveal=0.5, noise=0.05)
    a, b, c = sim.sample(1000, seed=7), sim.sample(1000, seed=7), sim.sample(1000, seed=8)
    assert np.array_equal(a.tokens, b.tokens) and np.array_equal(a.contexts, b.contexts)
    assert not np.array_equal(a.contexts, c.contexts)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"concepts": []}, "non-empty list"),
        ({"concepts": [{"name": "a", "p": 1.5}]}, "in \\[0, 1\\]"),
        ({"concepts": [{"name": "a", "parents": ["z"], "p": {"0": 0.1, "1": 0.2}}]}, "unknown"),
        (
            {
                "concepts": [
                    {"name": "a", "parents": ["b"], "p": {"0": 0.1}},
                    {"name": "b", "p": 0.5},
                ]
            },
            "missing",
        ),
        (
            {
                "concepts": [
                    {"name": "a", "parents": ["b"], "p": {"0": 0.1, "1": 0.1}},
                    {"name": "b", "parents": ["a"], "p": {"0": 0.1, "1": 0.1}},
                ]
            },
            "cycle",
        ),
    ],
)
def test_bad_structures_raise(spec: dict, message: str) -> None:
    with pytest.raises(ConvergentError, match=message):
        structure_from_dict(spec)


def test_bad_simulator_inputs_raise(tmp_path) -> None:
    with pytest.raises(ConvergentError, match="reveal"):
        Simulator.make(independent(3), reveal=[0.5, 0.5])
    with pytest.raises(ConvergentError, match="noise"):
        Simulator.make(independent(3), noise=0.7)
    bad = tmp_path / "bad.toml"
    bad.write_text("concepts = [")
    with pytest.raises(ConvergentError, match="not valid TOML"):
        load_structure(bad)
