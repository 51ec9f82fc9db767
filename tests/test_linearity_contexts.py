"""Subjects in templates (LRE's setting), Park's measurement, controls and intervention, on a
tiny random-weight Llama (no network)."""

from __future__ import annotations

import numpy as np
import pytest
from linearity_fixtures import tiny_lm

from convergent.errors import ConvergentError
from convergent.linearity.analyze import analyze_linearity
from convergent.linearity.contexts import context_space, context_states, relation_templates
from convergent.linearity.controls import (
    compare_steering,
    dual_direction,
    orthogonality,
    random_pair_baseline,
    summarize,
)
from convergent.linearity.inner import park_random_inner, whitening
from convergent.linearity.measurement import auc, context_sets, measure
from convergent.linearity.pairs import PairSet
from convergent.linearity.predictors import predictor_from
from convergent.linearity.space import predictor_space

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def pred():
    model, tok = tiny_lm(seed=1)
    return predictor_from((model, tok), name="tiny")


def _pairs(templates=None):
    rels = {f"rel{r}": tuple((f"s{r}_{i}", f"o{r}_{i}") for i in range(6)) for r in range(3)}
    return PairSet("tiny", rels, templates=templates or {})


def _block_state(pred, ids, layer):
    """Residual stream after block ``layer`` at the last position, by a hook of our own."""
    got = {}
    block = pred.model.model.layers[layer]
    handle = block.register_forward_hook(lambda m, a, o: got.__setitem__(
        "h", (o[0] if isinstance(o, tuple) else o)[0, -1]))
    with torch.no_grad():
        pred.model(input_ids=torch.tensor([ids]))
    handle.remove()
    return got["h"].double().numpy()


def test_subject_state_is_the_block_output_at_its_last_token_in_the_template(pred):
    tok = pred.tokenizer
    states = context_states(pred.model, tok, ["s0_1", "o2_3"], ["the word {} is a"], 1)
    for row, word in zip(states, ["s0_1", "o2_3"], strict=True):
        ids = tok(f"the word {word}", add_special_tokens=False)["input_ids"]
        assert np.allclose(row, _block_state(pred, ids, 1), atol=1e-5)
    # two templates: the mean of the two states
    both = context_states(pred.model, tok, ["s0_1"], ["the word {} is", "said {} of"], 0)
    one = [_block_state(pred, tok(t, add_special_tokens=False)["input_ids"], 0)
           for t in ("the word s0_1", "said s0_1")]
    assert np.allclose(both[0], np.mean(one, axis=0), atol=1e-5)


def test_template_without_a_subject_slot_is_one_line(pred):
    with pytest.raises(ConvergentError, match=r"template 'the word is' has no \{\} placeholder"):
        context_states(pred.model, pred.tokenizer, ["s0_1"], ["the word is"], 0)
    with pytest.raises(ConvergentError, match=r"layers 0\.\.1"):
        context_states(pred.model, pred.tokenizer, ["s0_1"], ["{}"], 2)
    with pytest.raises(ConvergentError, match="has no prompt templates; give --template"):
        relation_templates(_pairs())


def test_relation_templates_come_from_the_relation_or_the_user():
    own = {"rel0": ["the {} is"], "rel1": ["a {}"], "rel2": ["{} of", "said {}"]}
    got = relation_templates(_pairs(own))
    assert got["rel2"] == ("{} of", "said {}")
    assert set(relation_templates(_pairs(own), ["word {}"]).values()) == {("word {}",)}


def test_context_space_reads_each_relation_in_its_templates(pred):
    own = {"rel0": ["the {} is"], "rel1": ["a {} of"], "rel2": ["said {}"]}
    pairs = _pairs(own)
    space, report = context_space(pred, pairs, layer=1)
    assert space.f_name == "layer.1:templates" and not space.same_space
    assert sum(report.kept.values()) == 18
    direct = context_states(pred.model, pred.tokenizer, ["s1_0", "o1_0"], ["a {} of"], 1)
    assert np.allclose(space.f_sub["rel1"][0], direct[0])
    assert np.allclose(space.f_obj["rel1"][0], direct[1])
    # objects by the unembedding row of their first token
    tok = pred.word_tokens("o1_0")[0]
    assert np.allclose(space.g_obj["rel1"][0], pred.g()[tok])
    result = analyze_linearity(space, report, folds=3)
    lin = result.relations[0].linearity["causal"]
    assert lin.n_candidates == 6 and 0.0 <= lin.top1 <= 1.0


def test_steering_at_f_adds_g_dot_v_to_every_logit(pred):
    ctx = [pred.encode("the word is"), pred.encode("said a")]
    v = np.random.default_rng(0).standard_normal(pred.dim)
    base = pred.logits(ctx)
    assert np.allclose(pred.steered_logits(ctx, None, v) - base, (pred.g() @ v)[None],
                       atol=1e-4)


def test_dual_direction_is_cov_inverse_of_the_unembedding_direction(pred):
    causal = whitening(pred.g())
    m = pred.g()[5] - pred.g()[3]
    gamma, dual = dual_direction(m, causal)
    assert np.isclose(np.linalg.norm(causal.apply(gamma)), 1.0)
    cov = np.cov(pred.g(), rowvar=False)
    assert np.allclose(cov @ dual, gamma, atol=1e-8)


def test_compare_steering_reports_target_and_off_target_effects(pred):
    space, _ = predictor_space(pred, _pairs())
    causal = whitening(pred.g())
    ctx = [pred.encode(t) for t in ("the word is", "said a", "the")]
    stats = compare_steering(pred, space, causal, ctx, seed=0)
    assert set(stats) == {"rel0", "rel1", "rel2"}
    st = stats["rel0"]
    assert st.n_train == 3 and st.n_test == 3
    assert np.isclose(st.dual.norm, st.ours.norm) and np.isclose(st.random.norm, st.ours.norm)
    # the target log-odds change of a direction v at f is (g(o) - g(s)) . v, exactly
    rng = np.random.default_rng(0)
    test = rng.permutation(6)[3:]
    ps = space.pairs.relations["rel0"]
    train = [i for i in range(6) if i not in test]
    v = (space.f_obj["rel0"][train] - space.f_sub["rel0"][train]).mean(axis=0)
    dg = np.stack([pred.g()[space.tokens[ps[i][1]][-1]] - pred.g()[space.tokens[ps[i][0]][-1]]
                   for i in test])
    assert np.isclose(st.ours.target, float((dg @ v).mean()), atol=1e-4)
    assert -1.0 <= st.cosine_dual_ours <= 1.0
    flat = summarize(stats)
    assert "dual.target" in flat and "ours.off_target" in flat


def test_random_pair_baseline_and_orthogonality():
    rng = np.random.default_rng(0)
    g = rng.standard_normal((200, 8))
    shift = np.zeros(8)
    shift[0] = 5.0
    subj = {"planted": g[:20], "none": g[40:60]}
    obj = {"planted": g[:20] + shift + 0.1 * rng.standard_normal((20, 8)), "none": g[60:80]}
    stats = random_pair_baseline(g, subj, obj, whitening(g), n_random=500, seed=0)
    assert stats["planted"].pairs > 0.95 and stats["planted"].above_p95 == 1.0
    assert stats["none"].pairs < 0.5 and abs(stats["planted"].random_mean) < 0.2
    eye = np.eye(4)
    assert orthogonality(eye) == 0.0 and np.isclose(orthogonality(np.ones((3, 4))), 1.0)


def test_park_random_metric_maps_directions_by_abs_gaussian():
    ip = park_random_inner(6, seed=3)
    a = np.abs(np.random.default_rng(3).standard_normal((6, 6)))
    x = np.random.default_rng(1).standard_normal((2, 6))
    assert np.allclose(ip.apply(x), x @ a)
    cos = ip.cosine_matrix(np.eye(6))
    assert cos[~np.eye(6, dtype=bool)].min() > 0  # all-positive entries: no orthogonality


def test_measurement_separates_contexts_along_a_planted_direction(pred):
    causal = whitening(pred.g())
    words = ["the word s0_1", "said a s0_2 of", "the s0_3 is", "a s0_4"]
    others = ["the word o1_1", "said a o1_2 of", "the o1_3 is", "a o1_4"]
    f0 = pred.f([pred.encode(t) for t in words])
    f1 = pred.f([pred.encode(t) for t in others])
    planted = np.linalg.pinv(causal.transform @ causal.transform) @ (f1.mean(0) - f0.mean(0))
    res = measure(pred, {"planted": planted, "rand": np.ones(pred.dim)}, causal, words,
                  others, "tiny", max_tokens=3)
    st = res.concepts["planted"]
    gamma, _ = dual_direction(planted, causal)
    p0 = pred.f([pred.encode("") + tuple(pred.tokenizer.encode(t))[-3:] for t in words]) @ gamma
    assert np.isclose(st.mean0, p0.mean())
    assert res.to_dict()["concepts"]["rand"]["auc"] >= 0.0
    assert auc(np.array([0.0, 1.0]), np.array([2.0, 3.0])) == 1.0
    assert auc(np.array([1.0]), np.array([1.0])) == 0.5
    with pytest.raises(ConvergentError, match="at least 2 contexts"):
        measure(pred, {"p": planted}, causal, words[:1], others)


def test_context_sets_cut_each_text_before_its_word():
    ctx = {("off", "Ils"): (("we fell off", "a b off"), ("puis Ils",)),
           ("the", "le"): (("in the",), ("dans le", "le"))}
    pairs = PairSet("en-fr", {"en-fr": (("off", "Ils"), ("the", "le"))}, contexts={"en-fr": ctx})
    c0, c1 = context_sets(pairs, "en-fr")
    assert c0 == ["we fell", "a b", "in"] and c1 == ["puis", "dans"]
    with pytest.raises(ConvergentError, match="has no contexts"):
        context_sets(_pairs(), "rel0")
