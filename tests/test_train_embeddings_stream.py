"""word2vec and PPMI on a token array walked in chunks: exact, and bounded in memory."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from scipy import sparse

from convergent.errors import ConvergentError
from convergent.train import EmbeddingConfig, TrainConfig
from convergent.train.ppmi import cooccurrence_stream, train_ppmi
from convergent.train.token_chunks import pieces, scan
from convergent.train.word2vec import MAX_SENTENCE, Sentences, build_model, new_model

EOS = 7
CHUNKS = [1, 2, 3, 5, 64, 1000, 1 << 20]


def _stream(n: int, seed: int, vocab: int = 40, eos_rate: float = 0.02) -> np.ndarray:
    rng = np.random.default_rng(seed)
    stream = (EOS + np.minimum(rng.zipf(1.3, n), vocab)).astype(np.uint16)  # ids above EOS
    stream[rng.random(n) < eos_rate] = EOS
    stream[:2] = EOS  # empty documents
    return stream


def _documents(stream: np.ndarray) -> list[np.ndarray]:
    """The whole stream split at end-of-text, as the in-memory implementation did."""
    pieces_ = np.split(stream, np.flatnonzero(stream == EOS))
    return [p[p != EOS] for p in pieces_ if (p != EOS).any()]


def _whole_stream_counts(docs: list[np.ndarray], keep: np.ndarray, window: int):
    """The in-memory implementation's counts: the reference for the chunked ones."""
    stream = np.concatenate(docs).astype(np.int64)
    doc_id = np.repeat(np.arange(len(docs)), [len(d) for d in docs])
    index = np.full(int(stream.max()) + 1, -1)
    index[keep] = np.arange(len(keep))
    rows, size = index[stream], len(keep)
    counts = sparse.csr_matrix((size, size))
    for offset in range(1, window + 1):
        a, b = rows[:-offset], rows[offset:]
        ok = (a >= 0) & (b >= 0) & (doc_id[:-offset] == doc_id[offset:])
        counts = counts + sparse.coo_matrix((np.ones(ok.sum()), (a[ok], b[ok])),
                                            shape=(size, size)).tocsr()
    return counts + counts.T


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("eos_rate", [0.002, 0.3])
def test_pieces_and_scan_match_splitting_the_whole_stream(seed, eos_rate):
    stream = _stream(1500, seed, eos_rate=eos_rate)
    docs = _documents(stream)
    words = np.concatenate(docs)
    for length in (1, 4, MAX_SENTENCE):
        expected = [d[i:i + length].tolist() for d in docs for i in range(0, len(d), length)]
        for chunk in CHUNKS:
            assert [p.tolist() for p in pieces(stream, EOS, length, chunk)] == expected
            stats = scan(stream, EOS, length, chunk)
            assert stats.pieces == len(expected) and stats.tokens == len(words)
            assert np.array_equal(stats.counts, np.bincount(words))
            assert stats.order.tolist() == list(dict.fromkeys(words.tolist()))


@pytest.mark.parametrize("window", [1, 5])
def test_chunked_cooccurrence_equals_the_whole_stream_counts(window):
    stream = _stream(500, 2, eos_rate=0.05)
    docs = _documents(stream)
    keep = np.flatnonzero(np.bincount(np.concatenate(docs)) >= 2)
    expected = _whole_stream_counts(docs, keep, window)
    assert expected.nnz
    for chunk in CHUNKS:
        counts = cooccurrence_stream(stream, EOS, keep, window, chunk)
        assert counts.shape == expected.shape and (counts != expected).nnz == 0, chunk


def test_word2vec_vocabulary_and_training_match_gensim_on_a_list_of_sentences(tmp_path):
    from gensim.models import Word2Vec

    stream = np.memmap(tmp_path / "tokens.u16", dtype=np.uint16, mode="w+", shape=(6000,))
    stream[:] = _stream(6000, 3, vocab=300, eos_rate=0.001)
    config = TrainConfig(arch="word2vec", embedding=EmbeddingConfig(dim=8, min_count=2))
    sentences = [[str(t) for t in p.tolist()]
                 for d in _documents(np.asarray(stream))
                 for p in np.split(d, range(MAX_SENTENCE, len(d), MAX_SENTENCE))]
    assert max(map(len, sentences)) == MAX_SENTENCE
    reference = new_model(config)
    reference.build_vocab(sentences)  # gensim's own scan of a list of all sentences
    vectors = []
    for chunk in (5, 4096, 1 << 20):
        model, streamed, tokens = build_model(config, stream, EOS, chunk)
        assert isinstance(model, Word2Vec) and list(streamed) == list(streamed) == sentences
        assert model.wv.index_to_key == reference.wv.index_to_key
        assert model.corpus_count == reference.corpus_count == len(sentences)
        assert tokens == model.corpus_total_words == reference.corpus_total_words
        model.train(corpus_iterable=streamed, total_examples=model.corpus_count, epochs=1)
        vectors.append(model.wv.vectors)
    reference.train(sentences, total_examples=len(sentences), epochs=1)
    assert all(np.array_equal(v, reference.wv.vectors) for v in vectors)


def test_streams_without_words_are_refused(tmp_path):
    config = TrainConfig(arch="ppmi", embedding=EmbeddingConfig(dim=2, min_count=1))
    with pytest.raises(ConvergentError, match="at least 2 tokens"):
        train_ppmi(tmp_path, config, np.full(10, EOS, dtype=np.uint32), EOS, progress=False)
    with pytest.raises(ConvergentError, match="no tokens besides end-of-text"):
        build_model(config, np.full(10, EOS, dtype=np.uint32), EOS)


def _peak(work) -> int:
    tracemalloc.start()
    try:
        work()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _peaks(stream: np.ndarray, chunk: int) -> tuple[int, int, int]:
    """Peak traced bytes of counting pairs, iterating sentences and scanning ``stream``."""
    keep = np.arange(EOS + 1, EOS + 51)  # a small vocabulary: a small output
    sentences = Sentences(stream, EOS, EOS + 51, chunk)
    return (_peak(lambda: cooccurrence_stream(stream, EOS, keep, 5, chunk)),
            _peak(lambda: sum(1 for _ in sentences)),
            _peak(lambda: scan(stream, EOS, MAX_SENTENCE, chunk)))


def test_streaming_memory_does_not_grow_with_the_stream(tmp_path):
    peaks = []
    for n in (600_000, 1_200_000):
        stream = np.memmap(tmp_path / f"{n}.u16", dtype=np.uint16, mode="w+", shape=(n,))
        stream[:] = _stream(n, 4, vocab=50, eos_rate=0.002)
        peaks.append(_peaks(stream, 1 << 13))
    for small, large in zip(*peaks, strict=True):
        assert large < 1_200_000 * 8 / 8, peaks  # an eighth of the stream as int64
        assert large < 1.25 * small + 100_000, peaks  # doubling the stream: no growth
