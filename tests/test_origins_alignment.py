"""Embedding-unembedding alignment of matched concepts: planted cases, tied models, runs."""

from __future__ import annotations

import numpy as np
import pytest
from test_experiments_fixtures import make_corpus

from convergent.errors import ConvergentError
from convergent.origins.alignment import embedding_alignment, open_embeddings

CONCEPTS = ("gender", "plural", "tense")


def _planted(aligned: bool, seed: int = 0, d: int = 32, pairs: int = 12):
    """Words = base words plus one target per concept. Each matrix is token noise plus the
    concept offset of the word's concept; the embedding's offsets are the unembedding's
    (``aligned``) or unrelated random ones. Token noise is independent between e and g."""
    rng = np.random.default_rng(seed)
    offsets_g = rng.normal(size=(len(CONCEPTS), d)) * 2
    offsets_e = offsets_g if aligned else rng.normal(size=(len(CONCEPTS), d)) * 2
    tokens, concept_pairs = [], {}
    rows_e, rows_g = [], []
    for c, concept in enumerate(CONCEPTS):
        concept_pairs[concept] = []
        for i in range(pairs):
            base, target = f"{concept}{i}", f"{concept}{i}x"
            for word, offset in ((base, 0.0), (target, 1.0)):
                tokens.append(word)
                rows_e.append(rng.normal(size=d) + offset * offsets_e[c])
                rows_g.append(rng.normal(size=d) + offset * offsets_g[c])
            concept_pairs[concept].append((base, target))
    for i in range(400):  # the rest of the vocabulary (random pairs are mostly drawn here)
        tokens.append(f"filler{i}")
        rows_e.append(rng.normal(size=d))
        rows_g.append(rng.normal(size=d))
    return np.array(rows_e), np.array(rows_g), tokens, concept_pairs


def test_aligned_concepts_score_high_against_random_pairs():
    e, g, tokens, pairs = _planted(aligned=True)
    result = embedding_alignment(e, g, tokens, pairs, draws=100)
    summary = result.summary()
    assert result.concepts == CONCEPTS and result.pairs == (12, 12, 12)
    assert summary["matched_euclid_mean"] > 0.8 and summary["matched_causal_mean"] > 0.7
    assert summary["null_euclid_mean"] < 0.25  # the few target words carry the offsets too
    assert summary["unmatched_euclid_mean_abs"] < 0.35
    assert summary["p_value_euclid"] < 0.02 and summary["p_value_causal"] < 0.02
    assert summary["within_embed_mean"] > 0.5 and summary["within_unembed_mean"] > 0.5
    out = result.to_dict()
    assert out["scored"] and out["draws"] == 100 and len(out["cross_euclid"]) == 3
    words = embedding_alignment(e, g, tokens, pairs, draws=50, null_pool="concept-words")
    assert words.meta["null_pool"] == "concept-words"  # the pairs' own words carry offsets
    assert words.summary()["null_euclid_mean"] > summary["null_euclid_mean"]


def test_unrelated_concept_offsets_are_not_aligned():
    e, g, tokens, pairs = _planted(aligned=False)
    summary = embedding_alignment(e, g, tokens, pairs, draws=100).summary()
    assert abs(summary["matched_euclid_mean"]) < 0.35
    assert summary["p_value_euclid"] > 0.05


def test_token_level_similarity_alone_shows_in_the_null():
    """e = g + small noise: every direction aligns, and so do random pairs."""
    e, g, tokens, pairs = _planted(aligned=False)
    e = g + 0.3 * np.random.default_rng(1).normal(size=g.shape)
    summary = embedding_alignment(e, g, tokens, pairs, draws=50).summary()
    assert summary["matched_euclid_mean"] > 0.9 and summary["null_euclid_mean"] > 0.8


def test_a_tied_model_is_degenerate_and_not_scored():
    _, g, tokens, pairs = _planted(aligned=True)
    result = embedding_alignment(g, g.copy(), tokens, pairs)
    out = result.to_dict()
    assert result.degenerate and not out["scored"] and out["summary"] == {}
    assert "tied" in out["degenerate"] and "matched_euclid" not in out
    assert embedding_alignment(g, g + 1.0, tokens, pairs, tied=True).degenerate


def test_bad_input():
    e, g, tokens, pairs = _planted(aligned=True)
    with pytest.raises(ConvergentError, match="choose one of vocabulary, concept-words"):
        embedding_alignment(e, g, tokens, pairs, null_pool="words")
    with pytest.raises(ConvergentError, match="same space"):
        embedding_alignment(e[:, :4], g, tokens, pairs)
    with pytest.raises(ConvergentError, match="fewer than two concepts"):
        embedding_alignment(e, g, tokens, {"gender": pairs["gender"], "none": [("a", "b")]})


@pytest.mark.slow
def test_a_run_folder_gives_its_untied_embedding_and_unembedding(tmp_path, monkeypatch):
    from convergent.train import ModelConfig, TrainConfig, train

    monkeypatch.setenv("CONVERGENT_CACHE", str(tmp_path / "cache"))
    corpus = make_corpus(tmp_path / "text.jsonl", docs=20)
    config = TrainConfig(arch="transformer", corpus=corpus, tokenizer="word", vocab_size=300,
                         tokens=16 * 8 * 2,
                         batch_size=8, seq_len=16, checkpoint_every=16 * 8 * 2,
                         warmup_tokens=0, model=ModelConfig(d_model=16, n_layers=1, n_heads=2,
                                                            tie_embeddings=False))
    train(config, tmp_path / "run", progress=False)
    e, g, tokens, name, tied = open_embeddings(str(tmp_path / "run"))
    assert not tied and e.shape == g.shape == (len(tokens), 16) and name == "run"
    assert not np.array_equal(e, g)
    words = [t for t in tokens if t.isalpha()][:8]  # word-level: tokens are the words
    pairs = {"a": [(words[0], words[1]), (words[2], words[3])],
             "b": [(words[4], words[5]), (words[6], words[7])]}
    result = embedding_alignment(e, g, tokens, pairs, tied=tied, draws=10)
    assert not result.degenerate and result.concepts == ("a", "b")
    # the same run from the command line: its unembedding beside the simulation, aligned
    import json

    from convergent.cli import main

    pairs_file = tmp_path / "pairs.tsv"
    pairs_file.write_text("".join(f"{b}\t{t}\t{c}\n" for c, ps in pairs.items()
                                  for b, t in ps))
    out = tmp_path / "origins"
    assert main(["origins", "--concepts", "3", "--dim", "4", "--steps", "20",
                 "--checkpoints", "2", "--no-progress", "--compare-lm", str(tmp_path / "run"),
                 "--pairs", str(pairs_file), "--alignment", "--out", str(out)]) == 0
    data = json.loads((out / "results.json").read_text())
    assert data["lm"]["source"] == "run" and data["lm_alignment"]["concepts"] == ["a", "b"]
    assert data["lm_alignment"]["scored"]


@pytest.mark.slow
def test_a_word2vec_run_gives_its_word_and_context_vectors(tmp_path, monkeypatch):
    from convergent.train import EmbeddingConfig, TrainConfig, train

    monkeypatch.setenv("CONVERGENT_CACHE", str(tmp_path / "cache"))
    corpus = make_corpus(tmp_path / "text.jsonl", docs=20)
    config = TrainConfig(arch="word2vec", corpus=corpus, tokenizer="word", vocab_size=300,
                         embedding=EmbeddingConfig(dim=8, window=2, min_count=1, epochs=1,
                                                   workers=1))
    train(config, tmp_path / "w2v", progress=False)
    e, g, tokens, _, tied = open_embeddings(str(tmp_path / "w2v"))
    assert not tied and e.shape == g.shape == (len(tokens), 8) and not np.array_equal(e, g)
    assert {"year", "tax", "people"} <= set(tokens)
