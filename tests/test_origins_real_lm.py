"""Real-LM concept metrics on constructed unembeddings (no model needed)."""

from __future__ import annotations

import numpy as np
import pytest

from convergent.errors import ConvergentError
from convergent.origins.metrics import mean_abs_offdiagonal
from convergent.origins.real_lm import (
    concept_pairs,
    lm_concept_geometry,
    single_token_rows,
)

WORDS = [
    "king",
    "queen",
    "man",
    "woman",
    "boy",
    "girl",
    "big",
    "bigger",
    "small",
    "smaller",
    "fast",
    "faster",
]
PAIRS = {
    "gender": [("king", "queen"), ("man", "woman"), ("boy", "girl"), ("lord", "lady")],
    "comparative": [("big", "bigger"), ("small", "smaller"), ("fast", "faster")],
}


def _planted_vocab(seed: int = 0, d: int = 8) -> tuple[np.ndarray, list[str]]:
    """Words get a random base vector plus a fixed concept offset for their target role; a
    few filler tokens (including bare, un-prefixed forms) pad the vocabulary."""
    rng = np.random.default_rng(seed)
    gender, comparative = rng.normal(size=d), rng.normal(size=d)
    rows, tokens = [], []
    for concept, offset in (("gender", gender), ("comparative", comparative)):
        for base, target in PAIRS[concept]:
            if base == "lord":
                continue  # 'lord' and 'lady' are not single tokens here: dropped
            b = rng.normal(size=d)
            rows += [b, b + 3 * offset]
            tokens += ["Ġ" + base, "Ġ" + target]
    for k in range(40):
        rows.append(rng.normal(size=d))
        tokens.append(f"filler{k}")
    rows.append(rng.normal(size=d))
    tokens.append("queen")  # the bare form must not shadow the 'Ġqueen' token
    return np.array(rows), tokens


def test_single_token_rows_prefer_the_space_marker() -> None:
    rows = single_token_rows(["queen", "Ġqueen", "king", "Ġ"])
    assert rows["queen"] == 1 and rows["king"] == 2 and rows["Ġ"] == 3


def test_planted_offsets_are_parallel_and_dropped_pairs_counted() -> None:
    g, tokens = _planted_vocab()
    result = lm_concept_geometry(g, tokens, PAIRS, source="planted")
    assert result.kept == {"gender": 3, "comparative": 3}
    assert result.dropped == {"gender": 1, "comparative": 0}
    np.testing.assert_allclose(result.geometry.within, 1.0, atol=1e-12)
    assert np.all(result.within_shuffled < 0.99)
    data = result.to_dict()
    assert data["pairs_kept"]["gender"] == 3 and "probe" not in data
    assert data["summary"]["within_mean"] == pytest.approx(1.0)


def test_causal_cosines_are_invariant_to_a_linear_change_of_basis() -> None:
    g, tokens = _planted_vocab(seed=1)
    mix = np.random.default_rng(2).normal(size=(g.shape[1], g.shape[1]))
    a = lm_concept_geometry(g, tokens, PAIRS)
    b = lm_concept_geometry(g @ mix, tokens, PAIRS)
    np.testing.assert_allclose(a.geometry.between_causal, b.geometry.between_causal, atol=1e-8)
    np.testing.assert_allclose(b.geometry.within, 1.0, atol=1e-9)  # parallelism survives
    assert mean_abs_offdiagonal(a.geometry.between_euclid) != pytest.approx(
        mean_abs_offdiagonal(b.geometry.between_euclid)
    )


def test_bad_inputs_raise() -> None:
    g, tokens = _planted_vocab()
    with pytest.raises(ConvergentError, match="does not match"):
        lm_concept_geometry(g[:-1], tokens, PAIRS)
    with pytest.raises(ConvergentError, match="fewer than two concepts"):
        lm_concept_geometry(g, tokens, {"gender": PAIRS["gender"], "x": [("zz", "yy")]})


def test_analogy_pairs_from_gensim() -> None:
    pytest.importorskip("gensim")
    pairs = concept_pairs()
    assert len(pairs) == 14 and ("bad", "worse") in pairs["gram3-comparative"]
