"""word2vec (gensim) on a token array streamed in chunks, with per-epoch checkpoints.

gensim reads :class:`Sentences`, a restartable ``corpus_iterable`` that walks the array one
chunk at a time, so memory does not grow with the stream. The vocabulary is counted with
numpy in one chunked pass and handed to gensim in the order its own scan would find the
words (first occurrence), which gives gensim's vocabulary, tie order included, without a
Python pass over every token.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from convergent.train.config import TrainConfig
from convergent.train.token_chunks import DEFAULT_CHUNK, pieces, scan

MAX_SENTENCE = 1000  # below gensim's 10,000-word limit, so gensim never cuts a sentence itself
ALPHA, MIN_ALPHA = 0.025, 1e-4  # gensim's defaults; gensim overwrites both on every train()


class Sentences:
    """gensim sentences of a token array: each document's ``MAX_SENTENCE``-token pieces.

    Words are token ids as strings. Iterating again starts over (gensim scans once per
    epoch); each pass holds one chunk of ``chunk`` tokens, never the whole stream.
    """

    def __init__(self, stream: np.ndarray, eos: int | None, n_ids: int,
                 chunk: int = DEFAULT_CHUNK) -> None:
        self.stream, self.eos, self.chunk = stream, eos, chunk
        self.names = [str(i) for i in range(n_ids)]

    def __iter__(self) -> Iterator[list[str]]:
        names = self.names
        for piece in pieces(self.stream, self.eos, MAX_SENTENCE, self.chunk):
            yield [names[t] for t in piece.tolist()]


def _stable_hash(text: str) -> int:
    """Deterministic replacement for Python's salted ``hash`` in gensim's vector init."""
    import zlib

    return zlib.crc32(text.encode())


def random_state(model) -> dict:
    """gensim's numpy RandomState as JSON (it seeds every training job)."""
    name, keys, pos, has_gauss, cached = model.random.get_state()
    return {"name": name, "keys": keys.tolist(), "pos": int(pos),
            "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}


def restore(model, ids: np.ndarray, folder: Path, state: dict) -> None:
    """Put a checkpoint's vectors and random state into a model whose vocabulary is ``ids``."""
    from convergent.errors import ConvergentError
    from convergent.train.checkpoint import load_tensors

    tensors = load_tensors(folder / "vectors.safetensors")
    saved = state.get("random")
    if saved is None or not np.array_equal(tensors["token_ids"].numpy(), ids):
        raise ConvergentError(f"{folder}: cannot resume word2vec from it (no random state, "
                              "or a vocabulary that differs from the corpus's)")
    model.wv.vectors[:] = tensors["embed"].numpy()
    model.syn1neg[:] = tensors["unembed"].numpy()
    model.random.set_state((saved["name"], np.asarray(saved["keys"], dtype=np.uint32),
                            saved["pos"], saved["has_gauss"], saved["cached_gaussian"]))


def new_model(config: TrainConfig):
    """An untrained gensim model with the run's settings and no vocabulary yet."""
    from gensim.models import Word2Vec

    e = config.embedding
    return Word2Vec(vector_size=e.dim, window=e.window, min_count=e.min_count,
                    sg=int(e.sg), negative=e.negative, workers=e.workers,
                    seed=config.seed, hashfxn=_stable_hash, epochs=e.epochs,
                    alpha=ALPHA, min_alpha=MIN_ALPHA)


def build_model(config: TrainConfig, stream: np.ndarray, eos: int | None,
                chunk: int = DEFAULT_CHUNK):
    """(gensim model with its vocabulary, the sentences, tokens counted) for ``stream``."""
    from convergent.errors import ConvergentError

    stats = scan(stream, eos, MAX_SENTENCE, chunk)
    if not stats.tokens:
        raise ConvergentError("the token stream holds no tokens besides end-of-text")
    model = new_model(config)
    model.build_vocab_from_freq({str(t): int(stats.counts[t]) for t in stats.order},
                                corpus_count=stats.pieces)
    model.corpus_total_words = stats.tokens
    return model, Sentences(stream, eos, len(stats.counts), chunk), stats.tokens


def train_word2vec(run_dir: Path, config: TrainConfig, stream: np.ndarray, eos: int | None,
                   progress: bool = True, stop_after: int | None = None,
                   chunk: int = DEFAULT_CHUNK) -> None:
    """Train, or resume from the newest checkpoint; ``stop_after`` epochs simulates a kill."""
    from convergent.train.checkpoint import list_checkpoints, read_state
    from convergent.train.embeddings import save_vectors

    e = config.embedding
    done_before = list_checkpoints(run_dir)
    if any(c.step >= e.epochs for c in done_before):
        return  # complete
    model, sentences, n_tokens = build_model(config, stream, eos, chunk)
    ids = np.asarray([int(w) for w in model.wv.index_to_key], dtype=np.int64)
    done = 0
    if done_before:
        newest = done_before[-1]
        restore(model, ids, newest.path, read_state(newest.path, verify=True))
        done = newest.step
        if progress:
            print(f"word2vec: resuming after epoch {done}/{e.epochs}")
    else:
        save_vectors(run_dir, 0, 0, model.wv.vectors, model.syn1neg, ids,
                     {"arch": "word2vec", "random": random_state(model)})
    start, end = ALPHA, MIN_ALPHA
    for epoch in range(done, e.epochs):
        if stop_after is not None and epoch - done >= stop_after:
            return
        a0 = start - (start - end) * epoch / e.epochs
        a1 = start - (start - end) * (epoch + 1) / e.epochs
        model.train(corpus_iterable=sentences, total_examples=model.corpus_count, epochs=1,
                    start_alpha=a0, end_alpha=a1)
        save_vectors(run_dir, epoch + 1, (epoch + 1) * n_tokens, model.wv.vectors,
                     model.syn1neg, ids, {"arch": "word2vec", "epoch": epoch + 1,
                                          "random": random_state(model)})
        if progress:
            print(f"word2vec epoch {epoch + 1}/{e.epochs} done")
