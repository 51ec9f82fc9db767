"""Parallel batch encoding of a document stream, in order, with bounded memory.

Chunks of raw documents go to a pool of spawned processes, each cleaning them and calling
its tokenizer's Rust ``encode_batch``; at most two chunks per worker are in flight, so a corpus
of any size streams through. (The standard library's ``Pool.imap`` and
``Executor.map`` read their whole input first, hence this small bounded queue.)
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from itertools import islice

import numpy as np

CHUNK_DOCUMENTS = 512

_WORKER: dict[str, object] = {}


def _init_worker(tokenizer_json: str, eos: int) -> None:
    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # one process = one core
    from tokenizers import Tokenizer

    _WORKER["tok"], _WORKER["eos"] = Tokenizer.from_str(tokenizer_json), eos


def _encode_in_worker(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    return _clean_and_encode(_WORKER["tok"], texts, int(_WORKER["eos"]))  # type: ignore[arg-type]


def _clean_and_encode(tok, texts: list[str], eos: int) -> tuple[np.ndarray, np.ndarray]:
    from convergent.train.corpus import clean
    from convergent.train.tokenize import encode_batch

    return encode_batch(tok, [clean(t) for t in texts], eos)


def chunked(items: Iterable[str], size: int = CHUNK_DOCUMENTS) -> Iterator[list[str]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def encode_stream(tok, eos: int, chunks: Iterable[list[str]],
                  workers: int = 1) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(ids, document lengths) per chunk of raw documents, cleaned
    (:func:`convergent.train.corpus.clean`) and encoded in input order by ``workers``
    processes (1 = here)."""
    if workers <= 1:
        for chunk in chunks:
            yield _clean_and_encode(tok, chunk, eos)
        return
    import multiprocessing

    context = multiprocessing.get_context("spawn")  # no fork of a threaded parent
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                             initargs=(tok.to_str(), eos)) as pool:
        pending: deque[Future] = deque()
        for chunk in chunks:
            pending.append(pool.submit(_encode_in_worker, chunk))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
