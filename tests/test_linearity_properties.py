"""Every metric returns its planted value on a synthetic log-linear predictor; inner
products behave as the theory says under f -> M f, g -> M^-T g + c."""

from __future__ import annotations

import numpy as np
import pytest

from convergent.errors import ConvergentError
from convergent.linearity.analyze import analyze_linearity
from convergent.linearity.inner import euclidean, random_inner, whitening
from convergent.linearity.properties import (
    concept_directions,
    grouped_folds,
    parallelism,
    probe_membership,
    relational_linearity,
)
from convergent.linearity.space import predictor_space
from convergent.linearity.synthetic import planted_predictor


@pytest.fixture(scope="module")
def planted():
    pred, pairs, truth = planted_predictor(dim=6, relations=3, pairs=15, seed=0)
    space, report = predictor_space(pred, pairs)
    result = analyze_linearity(space, report, alpha=1e-9)
    return pred, space, truth, result


def test_planted_parallelism_is_exact_and_beats_its_baselines(planted):
    _, _, _, result = planted
    for rel in result.relations:
        for key, stats in rel.parallelism.items():
            assert stats.loo == pytest.approx(1.0, abs=1e-12), (rel.relation, key)
            assert stats.shuffled < 0.95
        # the planted directions are Euclidean-orthogonal: other relations give cos 0
        assert rel.parallelism["euclidean"].other == pytest.approx(0.0, abs=1e-12)


def test_planted_directions_are_orthonormal_under_euclidean(planted):
    _, _, _, result = planted
    assert np.allclose(result.directions["euclidean"], np.eye(3), atol=1e-12)
    assert not np.allclose(result.directions["random"], np.eye(3), atol=1e-2)


def test_planted_relation_map_is_recovered_exactly(planted):
    _, _, _, result = planted
    for rel in result.relations:
        for key in ("euclidean", "causal"):
            lin = rel.linearity[key]
            assert lin.top1 == 1.0
            assert lin.chance == pytest.approx(1 / 15)
            assert lin.shuffled < 0.5


def test_planted_probe_is_perfect_and_flipped_labels_are_not(planted):
    _, _, _, result = planted
    for rel in result.relations:
        assert rel.probe["euclidean"].accuracy == 1.0
        assert rel.probe["causal"].accuracy == 1.0
        assert rel.probe["euclidean"].flipped < 0.8


def test_planted_steering_change_is_the_exact_log_odds(planted):
    pred, space, truth, result = planted
    for k, rel in enumerate(result.relations):
        assert rel.steering.delta == pytest.approx(truth.steering_delta[k], rel=1e-9)
    # and it is the change a log-linear head actually shows
    ctx = [pred.encode("w0")]
    s, o = space.pairs.relations["rel0"][0]
    v = truth.b @ truth.directions[0]
    logits = pred.logits(ctx)[0]
    steered = (pred.f(ctx) + v) @ pred.g().T
    i, j = pred.index[o], pred.index[s]
    change = (steered[0, i] - steered[0, j]) - (logits[i] - logits[j])
    assert change == pytest.approx(truth.steering_delta[0], rel=1e-9)


def _random_equivalence(d, seed):
    rng = np.random.default_rng(seed)
    m = rng.standard_normal((d, d)) + 2 * np.eye(d)
    return m, rng.standard_normal(d) * 3


def test_causal_cosines_are_invariant_and_euclidean_ones_are_not():
    rng = np.random.default_rng(1)
    g = rng.standard_normal((400, 5)) @ rng.standard_normal((5, 5))
    sub = {"a": g[:20], "b": g[40:60]}
    obj = {"a": g[20:40], "b": g[60:80]}
    m, c = _random_equivalence(5, 2)
    g2 = np.linalg.solve(m.T, g.T).T + c
    sub2 = {"a": g2[:20], "b": g2[40:60]}
    obj2 = {"a": g2[20:40], "b": g2[60:80]}
    causal = concept_directions(sub, obj, whitening(g))
    causal2 = concept_directions(sub2, obj2, whitening(g2))
    assert np.allclose(causal @ causal.T, causal2 @ causal2.T, atol=1e-10)
    eu = concept_directions(sub, obj, euclidean(5))
    eu2 = concept_directions(sub2, obj2, euclidean(5))
    assert abs((eu @ eu.T)[0, 1] - (eu2 @ eu2.T)[0, 1]) > 1e-3
    rnd = random_inner(5, 0)
    p1, p2 = parallelism(sub, obj, rnd), parallelism(sub2, obj2, rnd)
    assert abs(p1["a"].loo - p2["a"].loo) > 1e-4
    c1, c2 = parallelism(sub, obj, whitening(g)), parallelism(sub2, obj2, whitening(g2))
    assert c1["a"].loo == pytest.approx(c2["a"].loo, abs=1e-10)


def test_whitened_ridge_and_probe_are_invariant_under_m():
    rng = np.random.default_rng(3)
    f = rng.standard_normal((60, 4))
    g = np.tanh(f @ rng.standard_normal((4, 4)))
    m, c = _random_equivalence(4, 4)
    f2, g2 = f @ m.T, np.linalg.solve(m.T, g.T).T + c
    objs = {"r": [f"o{i}" for i in range(30)]}
    args = dict(alpha=0.1, folds=5, seed=0)
    a = relational_linearity({"r": f[:30]}, {"r": g[30:]}, objs, whitening(f), whitening(g),
                             **args)
    b = relational_linearity({"r": f2[:30]}, {"r": g2[30:]}, objs, whitening(f2),
                             whitening(g2), **args)
    assert a["r"].top1 == b["r"].top1
    pa = probe_membership({"r": f[:30]}, {"r": f[30:] + 0.5}, whitening(f))
    pb = probe_membership({"r": f2[:30]}, {"r": (f[30:] + 0.5) @ m.T}, whitening(f2))
    assert pa["r"].accuracy == pb["r"].accuracy


def test_bad_inputs_to_properties():
    x = np.zeros((1, 3))
    with pytest.raises(ConvergentError, match="relation 'r' has 1 pair"):
        parallelism({"r": x}, {"r": x}, euclidean(3))
    with pytest.raises(ConvergentError, match="name different relations"):
        parallelism({"r": x}, {"q": x}, euclidean(3))
    with pytest.raises(ConvergentError, match="dimension 3, expected 4"):
        euclidean(4).apply(x)
    with pytest.raises(ConvergentError, match="at least 2 rows"):
        whitening(x)
    with pytest.raises(ConvergentError, match="zero covariance"):
        whitening(np.ones((5, 3)))


def test_unembedding_site_maps_within_one_space(planted):
    pred, _, _, _ = planted
    space, report = predictor_space(pred, planted[1].pairs, site="unembed")
    assert space.same_space
    result = analyze_linearity(space, report, alpha=1e-9)
    for rel in result.relations:
        assert rel.linearity["causal"].offset == 1.0  # g(o) = g(s) + u_r exactly
        assert rel.linearity["euclidean"].top1 == 1.0
        assert rel.steering is None
    assert [ip["key"] for ip in result.inner_products] == ["euclidean", "causal", "random"]


def test_static_whitened_statistics_are_invariant_under_affine_maps():
    """The statement the linearity JSON makes for word vectors, checked."""
    from convergent.linearity.pairs import PairSet
    from convergent.linearity.space import static_space
    from convergent.sources.static import WordVectorSource

    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(80)]
    x = rng.standard_normal((80, 5))
    pairs = PairSet("t", {"a": tuple((f"w{i}", f"w{i + 40}") for i in range(0, 12)),
                          "b": tuple((f"w{i}", f"w{i + 40}") for i in range(12, 24))})
    a_map, shift = rng.standard_normal((5, 5)) + 2 * np.eye(5), rng.standard_normal(5)
    results = []
    for vecs in (x, x @ a_map.T + shift):
        src = WordVectorSource("v", vecs, {w: i for i, w in enumerate(words)})
        space, report = static_space(src, pairs)
        results.append(analyze_linearity(space, report, folds=3))
    for r1, r2 in zip(results[0].relations, results[1].relations, strict=True):
        assert r1.parallelism["whitened"].loo == pytest.approx(r2.parallelism["whitened"].loo)
        assert r1.linearity["whitened"].top1 == r2.linearity["whitened"].top1
        assert r1.probe["whitened"].accuracy == r2.probe["whitened"].accuracy
        assert r1.parallelism["euclidean"].loo != pytest.approx(r2.parallelism["euclidean"].loo)


def test_folds_keep_a_subjects_pairs_together():
    rng = np.random.default_rng(0)
    groups = ["a", "a", "b", "c", "c", "c", "d", "e"]
    folds = grouped_folds(groups, len(groups), 3, rng)
    assert sorted(np.concatenate(folds).tolist()) == list(range(8))
    for fold in folds:
        held = {groups[i] for i in fold}
        assert all(groups[i] not in held for i in np.setdiff1d(np.arange(8), fold))
    plain = grouped_folds(None, 8, 3, np.random.default_rng(1))
    distinct = grouped_folds(list("abcdefgh"), 8, 3, np.random.default_rng(1))
    assert [f.tolist() for f in distinct] == [sorted(f.tolist()) for f in plain]


def test_any_listed_object_counts_and_each_subject_once():
    rng = np.random.default_rng(0)
    u = rng.standard_normal(6) * 3
    s = rng.standard_normal((6, 6))
    o = s + u  # subject i -> object i by a translation
    # subject 0 also lists object 1, as a second pair with the same input
    inputs, outputs = np.vstack([s, s[:1]]), np.vstack([o, o[1:2]])
    objs = {"r": [f"o{i}" for i in range(6)] + ["o1"]}
    subs = {"r": [f"s{i}" for i in range(6)] + ["s0"]}
    ip = euclidean(6)
    stats = relational_linearity({"r": inputs}, {"r": outputs}, objs, ip, ip, alpha=1e-9,
                                 folds=3, same_space=True, subjects=subs)["r"]
    assert stats.offset == 1.0 and stats.n_candidates == 6 and stats.n_pairs == 7
    # s0 has 2 correct objects of 6, the other five subjects 1; each subject counts once
    assert stats.chance == pytest.approx((2 / 6 + 5 / 6) / 6)
    assert stats.chance_corrected == pytest.approx((stats.top1 - stats.chance)
                                                   / (1 - stats.chance))
    # scored per pair, s0 -> o1 would be a miss: the offset method retrieves o0 for both
    per_pair = relational_linearity({"r": inputs}, {"r": outputs}, objs, ip, ip, alpha=1e-9,
                                    folds=3, same_space=True)["r"]
    assert per_pair.offset < 1.0
