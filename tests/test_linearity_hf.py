"""The predictor interface over a tiny random-weight Llama (no network)."""

from __future__ import annotations

import numpy as np
import pytest
from linearity_fixtures import tiny_lm

from convergent.errors import ConvergentError
from convergent.linearity.hf import HFPredictor
from convergent.linearity.identify import sample_reparameterization
from convergent.linearity.pairs import PairSet
from convergent.linearity.predictors import kl_divergence, predictor_from
from convergent.linearity.space import predictor_space
from convergent.linearity.steer import steering_layer

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")


def _pairs(extra=()):
    rels = {f"rel{r}": tuple((f"s{r}_{i}", f"o{r}_{i}") for i in range(6)) for r in range(3)}
    rels["rel0"] += tuple(extra)
    return PairSet("tiny", rels)


@pytest.fixture(scope="module")
def lm():
    return tiny_lm(seed=0, tie=True)


def test_f_is_the_unembedding_input_and_logits_are_the_model_logits(lm):
    model, tok = lm
    pred = predictor_from((model, tok), name="tiny")
    assert isinstance(pred, HFPredictor) and pred.n_layers == 2
    ctx = [pred.encode("the word is"), pred.encode("a s0_1 of"), pred.encode("the")]
    assert ctx[2][0] == tok.bos_token_id
    logits = pred.logits(ctx)
    assert np.allclose(pred.f(ctx) @ pred.g().T, logits, atol=1e-5)
    with torch.no_grad():
        ref = model(input_ids=torch.tensor([list(ctx[1])])).logits[0, -1].double().numpy()
    assert np.allclose(ref, logits[1], atol=1e-6)


def test_reparameterized_model_gives_the_same_distribution_through_the_forward(lm):
    model, tok = lm
    pred = HFPredictor(model, tok)
    ctx = [pred.encode("the word is"), pred.encode("said a")]
    before = model.get_input_embeddings().weight.detach().clone()
    rp = sample_reparameterization(pred.f(ctx), pred.g(), seed=0, condition=30.0)
    other = pred.transformed(rp)
    assert kl_divergence(pred.logits(ctx), other.logits(ctx)).max() < 1e-10
    assert np.allclose(other.f(ctx), rp.apply_f(pred.f(ctx)), atol=1e-10)
    # the original head is back and the tied input embedding untouched
    assert model.get_output_embeddings() is pred._head
    assert torch.equal(model.get_input_embeddings().weight, before)


def test_steering_and_hidden_states(lm):
    model, tok = lm
    pred = HFPredictor(model, tok)
    ctx = [pred.encode("the word is")]
    h = pred.hidden(ctx, 1)
    assert h.shape == (1, 16)
    same = pred.steered_logits(ctx, 0, np.zeros(16))
    assert np.allclose(same, pred.logits(ctx), atol=1e-6)
    moved = pred.steered_logits(ctx, 0, np.ones(16))
    assert np.abs(moved - same).max() > 1e-3
    stats = steering_layer(pred, _pairs(), 1, ctx * 2, seed=0)
    assert set(stats) == {"rel0", "rel1", "rel2"}
    assert all(np.isfinite(s.delta) and np.isfinite(s.random) for s in stats.values())


def test_tokenization_filter_drops_multi_token_and_unknown_words(lm):
    model, tok = lm
    pred = HFPredictor(model, tok)
    pairs = _pairs(extra=[("multi-token", "o0_0"), ("zzz", "o0_1")])
    space, report = predictor_space(pred, pairs, tokens="single")
    assert len(space.pairs.relations["rel0"]) == 6
    reasons = {s: why for s, _, why in report.dropped["rel0"]}
    assert reasons == {"multi-token": "multi-token: several tokens",
                       "zzz": "zzz: unknown to the tokenizer"}
    space, report = predictor_space(pred, pairs, tokens="last", site="layer.1")
    assert len(space.pairs.relations["rel0"]) == 7
    assert space.f_sub["rel0"].shape == (7, 16)
    with pytest.raises(ConvergentError, match=r"has layers 0\.\.1"):
        predictor_space(pred, pairs, site="layer.5")


def test_a_model_without_an_unembedding_is_refused():
    from transformers import BertConfig, BertModel

    model = BertModel(BertConfig(vocab_size=20, hidden_size=8, num_hidden_layers=1,
                                 num_attention_heads=2, intermediate_size=16))
    with pytest.raises(ConvergentError, match="no output embedding"):
        predictor_from((model, None), name="encoder")


def test_states_are_cached_per_batch_and_reused(lm, tmp_path, monkeypatch):
    model, tok = lm
    monkeypatch.setenv("CONVERGENT_CACHE", str(tmp_path))
    pred = HFPredictor(model, tok, identity={"weights": "test"}, batch_size=2)
    ctx = [pred.encode(t) for t in ("the word", "a word", "said a", "the", "is a word")]
    first = pred.f(ctx)
    files = sorted(tmp_path.glob("linearity/*/batch-*.npy"))
    assert len(files) == 3  # lengths 3, 2, 4: one resumable group each (<= 4 batches)
    files[0].unlink()  # as if interrupted before the first group was stored

    calls = []
    real = pred._run
    monkeypatch.setattr(pred, "_run", lambda c, *a, **k: calls.append(len(c)) or real(c, *a, **k))
    again = pred.f(ctx)
    assert np.array_equal(first, again)
    assert len(calls) == 1  # only the missing group was recomputed
