"""Corpus, tokenizers, perturbations and batches: the statistics each promises."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from convergent.errors import ConvergentError
from convergent.train.corpus import clean, load_corpus
from convergent.train.data import WindowBatches
from convergent.train.perturb import (
    isolate_windows,
    number_runs,
    parse_perturbation,
    swap_numbers,
    unigram_replace,
)
from convergent.train.tokenize import (
    digit_token_ids,
    encode_documents,
    number_token_ids,
    train_tokenizer,
)

TEXTS = [f"In {1900 + i} the state had {i * 7} farms, {i % 13} ports and 12345 people."
         for i in range(200)] + ["The quick brown fox jumps over the lazy dog 3 times."] * 50


@pytest.fixture(scope="module")
def bpe():
    return train_tokenizer("bpe", TEXTS, vocab_size=1400)


def test_bpe_has_every_number_below_1000_as_one_token(bpe):
    ids = number_token_ids(bpe, range(1000))
    assert len(ids) == 1000 and len(set(ids.values())) == 1000
    tokens = bpe.encode("12345 and 1,050 and abc7").tokens
    assert tokens[:2] == ["123", "45"]  # Llama-3 style: left-to-right chunks of three
    assert "050" in tokens and "7" in tokens
    assert bpe.decode(bpe.encode("In 1995, 12345 people.").ids) == "In 1995, 12345 people."


def test_digit_and_word_tokenizers():
    digit = train_tokenizer("digit", TEXTS, vocab_size=400)
    assert set(number_token_ids(digit, range(100))) == set(range(10))
    assert digit.encode("1995").tokens == ["1", "9", "9", "5"]
    word = train_tokenizer("word", TEXTS, vocab_size=10_000, min_count=1)
    assert word.encode("In 1995, the farms").tokens == ["in", "1995", ",", "the", "farms"]
    assert 3 in number_token_ids(word, range(10))


def test_clean_keeps_digits_case_and_punctuation():
    assert clean("  Hello\u00a0 World:\n\n 3.14  and ２０２４ ") == "Hello World:\n3.14 and 2024"


def test_corpus_files_and_errors(tmp_path):
    (tmp_path / "a.txt").write_text("First doc with 42 apples.")
    (tmp_path / "b.jsonl").write_text(json.dumps({"text": "Second 7"}) + "\n\n")
    corpus = load_corpus(str(tmp_path))
    assert corpus.documents == ("First doc with 42 apples.", "Second 7")
    assert len(corpus.sha256) == 16
    (tmp_path / "bad.jsonl").write_text('{"txt": 1}\n')
    with pytest.raises(ConvergentError, match="line 1 has no string field 'text'"):
        load_corpus(str(tmp_path / "bad.jsonl"))
    with pytest.raises(ConvergentError, match="not a bundled corpus"):
        load_corpus("novels")
    with pytest.raises(ConvergentError, match=r"datasets|stream"):
        load_corpus("hf:nobody/nothing", max_documents=1)


def test_bundled_wiki_keeps_digits():
    from itertools import islice

    from convergent.train.corpus import _wiki

    text = " ".join(clean(doc) for doc in islice(_wiki(), 5))
    assert "[[" not in text and "{{" not in text
    assert sum(ch.isdigit() for ch in text) > 500


def _stream(bpe):
    stream = encode_documents(bpe, TEXTS)
    return stream, np.isin(stream, digit_token_ids(bpe))


def test_swap_keeps_runs_and_marginal_but_moves_them(bpe):
    stream, is_number = _stream(bpe)
    swapped = swap_numbers(stream, is_number, seed=0)
    assert len(swapped) == len(stream)
    assert Counter(stream[~is_number].tolist()) == Counter(swapped[~np.isin(
        swapped, digit_token_ids(bpe))].tolist())
    runs = lambda s, m: Counter(tuple(s[a:b]) for a, b in zip(*number_runs(m), strict=True))  # noqa: E731
    swapped_mask = np.isin(swapped, digit_token_ids(bpe))
    assert runs(stream, is_number) == runs(swapped, swapped_mask)  # whole numbers intact
    assert np.array_equal(stream[~is_number], swapped[~swapped_mask])  # text untouched
    assert (stream != swapped).mean() > 0.05


def test_unigram_keeps_the_number_marginal_and_breaks_context(bpe):
    stream, is_number = _stream(bpe)
    stream, is_number = np.tile(stream, 20), np.tile(is_number, 20)
    replaced = unigram_replace(stream, is_number, seed=0)
    assert np.array_equal(replaced[~is_number], stream[~is_number])
    before = np.bincount(stream[is_number], minlength=bpe.get_vocab_size())
    after = np.bincount(replaced[is_number], minlength=bpe.get_vocab_size())
    total = is_number.sum()
    assert np.abs(before - after).sum() / total < 0.1  # same marginal up to sampling noise
    assert (replaced[is_number] == stream[is_number]).mean() < 0.5  # link to context broken


@pytest.mark.parametrize("k", [1, 2, 5])
def test_isolate_windows_hold_at_most_k_numbers_and_cover_the_stream(bpe, k):
    stream, is_number = _stream(bpe)
    starts, lengths = isolate_windows(is_number, 33, k)
    assert lengths.max() <= 33 and lengths.min() >= 2
    counts = [int(is_number[s:s + n].sum()) for s, n in zip(starts, lengths, strict=True)]
    assert max(counts) <= k and max(counts) == k
    targets = np.zeros(len(stream), dtype=int)
    for s, n in zip(starts, lengths, strict=True):
        targets[s + 1:s + n] += 1
    assert targets.max() == 1
    missed = np.flatnonzero(targets[1:] == 0) + 1
    assert np.all(is_number[missed] & is_number[missed - 1])  # only adjacent numbers skipped


def test_parse_perturbation():
    assert parse_perturbation("isolate-3").k == 3
    assert parse_perturbation(None).kind == "none"
    with pytest.raises(ConvergentError, match="does not apply"):
        parse_perturbation("context-4", "ppmi")
    with pytest.raises(ConvergentError, match="choose"):
        parse_perturbation("shuffle")


def test_window_batches_are_deterministic_and_cover_each_epoch():
    stream = np.arange(1001)
    batches = WindowBatches(stream, seq_len=10, batch_size=4, seed=3)
    seen = np.concatenate([batches.batch(i).tokens[:, 0].numpy() for i in range(25)])
    assert sorted(seen.tolist()) == list(range(0, 1000, 10))  # one epoch, no repeats
    again = WindowBatches(stream, seq_len=10, batch_size=4, seed=3)
    assert np.array_equal(again.batch(30).tokens, batches.batch(30).tokens)
    other = WindowBatches(stream, seq_len=10, batch_size=4, seed=4)
    assert not np.array_equal(other.batch(0).tokens, batches.batch(0).tokens)
    batch = batches.batch(0)
    assert np.array_equal(batch.tokens[:, 1:] - batch.tokens[:, :-1], np.ones((4, 10)))


def test_hf_streaming_reads_text_fields(monkeypatch):
    import sys
    import types

    calls = {}

    def load_dataset(name, config, split, streaming):
        calls.update(name=name, config=config, split=split, streaming=streaming)
        return iter([{"text": f"doc {i} has {i * 3} items"} for i in range(10)])

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    corpus = load_corpus("hf:org/data:sub@validation", max_documents=3)
    assert corpus.documents == ("doc 0 has 0 items", "doc 1 has 3 items", "doc 2 has 6 items")
    assert calls == {"name": "org/data", "config": "sub", "split": "validation",
                     "streaming": True}
