"""Park et al.'s controls and intervention, beside the toolkit's own estimators.

- :func:`random_pair_baseline`: a concept's own pair differences projected on its
  leave-one-out direction, against the differences of random token pairs (Park's Fig. 3
  control), as cosines under one inner product.
- :func:`orthogonality`: mean off-diagonal |cosine| of concept directions (causal
  orthogonality: unrelated concepts are orthogonal under the causal inner product).
- :func:`compare_steering`: the causal-dual direction lambda_W = Cov(gamma)^-1 gamma_W (Park's
  intervention on f(x)) beside the toolkit's estimator, the mean of f(o) - f(s), and a random
  direction, all at the same norm, with the change of log-odds and logits of the concept's
  words (target) and the other concepts' words (off-target), from the model's own logits.

Directions use the unembedding rows ``gamma``: with W = Cov(gamma)^-1/2 and m the mean
difference gamma(o) - gamma(s), the unembedding direction is gamma_W = m / ||W m|| (unit under
the causal inner product) and its dual is lambda_W = W^2 gamma_W.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from convergent.errors import ConvergentError
from convergent.linearity.inner import InnerProduct, unit_rows
from convergent.linearity.predictors import Context, log_softmax
from convergent.linearity.properties import _loo_cosines
from convergent.linearity.space import RelationSpace


@dataclass(frozen=True)
class RandomPairStats:
    """Cosines with a concept's leave-one-out direction: its own pairs against random pairs.

    ``pairs``: mean over the concept's pairs of cos(d_i, mean of the other differences);
    ``random_mean``/``random_p95``: mean and 95th percentile of cos(random pair difference,
    the concept's full direction); ``above_p95``: fraction of own pairs above that percentile.
    """

    n_pairs: int
    pairs: float
    random_mean: float
    random_p95: float
    above_p95: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def random_pair_baseline(
    g_all: np.ndarray, subjects: Mapping[str, np.ndarray], objects: Mapping[str, np.ndarray],
    inner: InnerProduct, n_random: int = 2000, seed: int = 0,
) -> dict[str, RandomPairStats]:
    """Per concept, its pairs' leave-one-out cosines against ``n_random`` random token pairs
    (two distinct rows of ``g_all``, the vocabulary's unembedding)."""
    if g_all.shape[0] < 2:
        raise ConvergentError("random token pairs need a vocabulary of at least 2 tokens")
    rng = np.random.default_rng(seed)
    first = rng.integers(0, g_all.shape[0], n_random)
    second = (first + rng.integers(1, g_all.shape[0], n_random)) % g_all.shape[0]
    rand = unit_rows(inner.apply(g_all[second] - g_all[first]))
    out = {}
    for rel, s in subjects.items():
        diffs = inner.apply(objects[rel] - s)
        n = diffs.shape[0]
        if n < 2:
            raise ConvergentError(f"relation {rel!r} has {n} pair(s); at least 2 are needed")
        own = _loo_cosines(diffs)
        cos_rand = rand @ unit_rows(diffs.mean(axis=0))
        p95 = float(np.quantile(cos_rand, 0.95))
        out[rel] = RandomPairStats(n, float(own.mean()), float(cos_rand.mean()), p95,
                                   float(np.mean(own > p95)))
    return out


def orthogonality(directions: np.ndarray) -> float:
    """Mean |cosine| over distinct pairs of the (unit) direction rows."""
    k = directions.shape[0]
    if k < 2:
        return float("nan")
    cos = unit_rows(directions) @ unit_rows(directions).T
    return float(np.abs(cos[~np.eye(k, dtype=bool)]).mean())


def dual_direction(mean_diff: np.ndarray, causal: InnerProduct) -> tuple[np.ndarray, np.ndarray]:
    """(gamma_W, lambda_W): the unembedding direction, unit under the causal inner product,
    and its dual Cov(gamma)^-1 gamma_W (W is symmetric, so W^T W = W^2)."""
    if causal.transform is None:
        raise ConvergentError("the dual direction needs the causal (whitening) inner product")
    w = causal.transform
    gamma = mean_diff / max(float(np.linalg.norm(w @ mean_diff)), 1e-300)
    return gamma, w.T @ (w @ gamma)


@dataclass(frozen=True)
class EffectStats:
    """Changes after adding one direction (Euclidean norm ``norm``) to f(x).

    ``target``: mean change of log p(o) - log p(s) over the concept's held-out pairs;
    ``off_target``: mean |change| of the same over the other concepts' pairs;
    ``target_logit``/``off_target_logit``: mean change of the raw logit of the concept's
    objects / of the other concepts' objects.
    """

    norm: float
    target: float
    off_target: float
    target_logit: float
    off_target_logit: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class InterventionStats:
    """One concept's intervention: Park's dual direction, ours, and a random one."""

    n_train: int
    n_test: int
    dual: EffectStats
    ours: EffectStats
    random: EffectStats
    cosine_dual_ours: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def compare_steering(
    predictor: Any, space: RelationSpace, causal: InnerProduct, contexts: Sequence[Context],
    seed: int = 0,
) -> dict[str, InterventionStats]:
    """Add each direction to f(x) of ``contexts``: the logits move by exactly G v (what
    ``steered_logits(contexts, None, v)`` computes through the model, one pass less).

    Needs a space at site 'final' (f = the unembedding input of BOS + word). Per concept the
    pairs are split in halves: directions from the first, effects on the second. Our
    direction is mean f(o) - f(s); the dual and the random direction are scaled to its norm.
    """
    if space.f_name != "final" or space.same_space:
        raise ConvergentError("steering comparison needs a model space at site 'final'")
    rng = np.random.default_rng(seed)
    tokens = space.tokens
    base = predictor.logits(contexts)
    g_all = predictor.g()
    base_lp = log_softmax(base)
    splits, vectors = {}, {}
    for rel, ps in space.pairs.relations.items():
        order = rng.permutation(len(ps))
        half = max(1, len(ps) // 2)
        train, test = order[:half], order[half:] if len(ps) > 1 else order[:half]
        splits[rel] = test
        ours = (space.f_obj[rel][train] - space.f_sub[rel][train]).mean(axis=0)
        norm = float(np.linalg.norm(ours))
        _, dual = dual_direction((space.g_obj[rel][train] - space.g_sub[rel][train]).mean(0),
                                 causal)
        noise = rng.standard_normal(ours.shape)
        vectors[rel] = {"dual": unit_rows(dual) * norm, "ours": ours,
                        "random": unit_rows(noise) * norm}
    ids = {rel: (np.array([tokens[s][-1] for s, _ in ps]), np.array([tokens[o][-1] for _, o in ps]))
           for rel, ps in space.pairs.relations.items()}

    def effects(rel: str, v: np.ndarray) -> EffectStats:
        logits = base + g_all @ v  # exact: f -> f + v adds G v (see steered_logits)
        dl, dlp = logits - base, log_softmax(logits) - base_lp
        s, o = ids[rel][0][splits[rel]], ids[rel][1][splits[rel]]
        others = [r for r in ids if r != rel]
        odds = [np.abs(dlp[:, ids[r][1]] - dlp[:, ids[r][0]]).mean() for r in others]
        off_logit = [dl[:, ids[r][1]].mean() for r in others]
        return EffectStats(
            norm=float(np.linalg.norm(v)),
            target=float((dlp[:, o] - dlp[:, s]).mean()),
            off_target=float(np.mean(odds)) if others else float("nan"),
            target_logit=float(dl[:, o].mean()),
            off_target_logit=float(np.mean(off_logit)) if others else float("nan"),
        )

    out = {}
    for rel, vs in vectors.items():
        n = len(space.pairs.relations[rel])
        out[rel] = InterventionStats(
            n_train=max(1, n // 2), n_test=len(splits[rel]),
            dual=effects(rel, vs["dual"]), ours=effects(rel, vs["ours"]),
            random=effects(rel, vs["random"]),
            cosine_dual_ours=float(unit_rows(vs["dual"]) @ unit_rows(vs["ours"])),
        )
    return out


def summarize(stats: Mapping[str, Any]) -> dict[str, float]:
    """Means over concepts of every numeric field (nested dataclasses flattened with '.')."""
    rows = [_flat(asdict(s)) for s in stats.values()]
    if not rows:
        return {}
    return {k: float(np.nanmean([r[k] for r in rows])) for k in rows[0]}


def _flat(d: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    for k, v in d.items():
        if isinstance(v, Mapping):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = float(v)
    return out
