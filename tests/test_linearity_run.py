"""A training run of ``convergent.train`` as a next-token predictor for identify."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from convergent.linearity.identify import identify, sample_reparameterization
from convergent.linearity.open import open_target
from convergent.linearity.pairs import PairSet
from convergent.linearity.predictors import kl_divergence

torch = pytest.importorskip("torch")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CONVERGENT_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    from convergent.train import ModelConfig, TrainConfig, train

    folder = tmp_path_factory.mktemp("run")
    rng = random.Random(0)
    words = ["the", "year", "was", "a", "time", "of", "growth", "and", "people", "in"]
    docs = [" ".join(" ".join(rng.sample(words, 5)) + " ." for _ in range(40))
            for _ in range(20)]
    corpus = folder / "text.jsonl"
    corpus.write_text("\n".join(json.dumps({"text": d}) for d in docs) + "\n")
    config = TrainConfig(
        arch="transformer", corpus=str(corpus), vocab_size=1300, tokenizer="word",
        model=ModelConfig(d_model=16, n_layers=2, n_heads=2, chunk_size=8, d_state=8),
        tokens=16 * 4 * 4, batch_size=4, seq_len=16, checkpoint_every=16 * 4 * 4,
        warmup_tokens=64, lr=3e-3,
    )
    import os

    old = os.environ.get("CONVERGENT_CACHE")
    os.environ["CONVERGENT_CACHE"] = str(folder / "cache")
    try:
        train(config, folder / "run", progress=False)
    finally:
        if old is None:
            os.environ.pop("CONVERGENT_CACHE")
        else:
            os.environ["CONVERGENT_CACHE"] = old
    return folder / "run"


def test_run_is_a_predictor_whose_reparameterization_keeps_the_distribution(run_dir):
    pred = open_target(f"run:{run_dir}")
    assert pred.dim == 16 and pred.n_layers == 2
    ctx = [pred.encode("the year was"), pred.encode("people in the")]
    assert ctx[0][0] == pred.tokenizer.bos_token_id
    logits = pred.logits(ctx)
    with torch.no_grad():
        ref = pred.model.inner(torch.tensor([list(ctx[0])]))[0, -1].double().numpy()
    assert np.allclose(ref, logits[0], atol=1e-5)
    assert np.allclose(pred.f(ctx) @ pred.g().T, logits, atol=1e-4)
    rp = sample_reparameterization(pred.f(ctx), pred.g(), seed=0)
    assert kl_divergence(logits, pred.transformed(rp).logits(ctx)).max() < 1e-10


def test_identify_on_a_run(run_dir):
    pred = open_target(f"run:{run_dir}")
    pairs = PairSet("t", {"a": (("the", "a"), ("year", "time"), ("was", "in")),
                          "b": (("of", "and"), ("growth", "people"), ("in", "the"))})
    ctx = [pred.encode(t) for t in ("the year was", "people in the", "a time of", "and the")]
    result = identify(pred, pairs, samples=1, contexts=(ctx, ctx))
    assert max(result.max_kl) < 1e-10
    rows = {r.statistic: r for r in result.table}
    assert rows["steering on f: change of log-odds"].invariant
