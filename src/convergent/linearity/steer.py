"""Steering at a layer of a real model: add a relation's direction to the residual stream
after block K at the last position of neutral contexts, and measure the change of
log p(object) - log p(subject) for held-out pairs (needs a predictor with
``hidden``/``steered_logits``, e.g. :class:`~convergent.linearity.hf.HFPredictor`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from convergent.linearity.inner import unit_rows
from convergent.linearity.pairs import PairSet
from convergent.linearity.predictors import Context, log_softmax
from convergent.linearity.results import SteeringStats

NEUTRAL = (
    "I think that the", "She said that the", "This is a", "We saw the", "It was the",
    "He wrote about the", "They talked about", "Here is the", "My favourite is",
    "The next word is", "You can see the", "There was a",
)


def neutral_contexts(predictor: Any, texts: Sequence[str] = NEUTRAL) -> list[Context]:
    return [predictor.encode(t) for t in texts]


def steering_layer(
    predictor: Any, pairs: PairSet, layer: int, contexts: Sequence[Context], seed: int = 0,
) -> dict[str, SteeringStats]:
    """Direction = mean over the first half of pairs of h_K(o) - h_K(s) (states at the word's
    last token in BOS + word); effect measured on the second half. Single-token words:
    the target ids are the words' tokens (last token for multi-token words)."""
    rng = np.random.default_rng(seed)
    prefix = predictor.encode("")
    words = pairs.words
    toks = {w: predictor.word_tokens(w) for w in words}
    states = dict(zip(words, predictor.hidden([prefix + toks[w] for w in words], layer),
                      strict=True))
    split: dict[str, tuple[list, list]] = {}
    directions: dict[str, np.ndarray] = {}
    for rel, ps in pairs.relations.items():
        order = rng.permutation(len(ps))
        half = max(1, len(ps) // 2)
        train = [ps[i] for i in order[:half]]
        test = [ps[i] for i in order[half:]] or train
        split[rel] = (train, test)
        directions[rel] = np.mean([states[o] - states[s] for s, o in train], axis=0)
    base = log_softmax(predictor.logits(contexts))
    shifted: dict[str, np.ndarray] = {
        rel: log_softmax(predictor.steered_logits(contexts, layer, v))
        for rel, v in directions.items()
    }

    def effect(logp: np.ndarray, test: list) -> float:
        o = [toks[o][-1] for _, o in test]
        s = [toks[s][-1] for s, _ in test]
        change = (logp[:, o] - logp[:, s]) - (base[:, o] - base[:, s])
        return float(change.mean())

    out: dict[str, SteeringStats] = {}
    for rel, (_, test) in split.items():
        v = directions[rel]
        noise = unit_rows(rng.standard_normal(v.shape)) * np.linalg.norm(v)
        rand = log_softmax(predictor.steered_logits(contexts, layer, noise))
        others = [effect(shifted[r], test) for r in shifted if r != rel]
        out[rel] = SteeringStats(
            n_pairs=len(test), delta=effect(shifted[rel], test),
            other=float(np.mean(others)) if others else float("nan"),
            random=effect(rand, test),
        )
    return out

