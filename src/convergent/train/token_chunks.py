"""Chunked walks over a 1-D token array (in RAM or an ``np.memmap``) in bounded memory.

Documents are separated by the end-of-text token, which every walk drops. Only one chunk
(plus a small carry) is in memory at a time, whatever the length of the stream, so a
memmap larger than RAM is read once per walk. Written here because no library walks a
memmapped token stream by document; the counting inside each chunk is numpy's.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

DEFAULT_CHUNK = 1 << 22  # tokens per chunk: ~4M, a few hundred MB of working arrays


def chunks(stream: np.ndarray, size: int = DEFAULT_CHUNK,
           overlap: int = 0) -> Iterator[tuple[int, np.ndarray]]:
    """(start, ``stream[start:start + size + overlap]`` read into memory) for each chunk."""
    if size < 1:
        raise ValueError("chunk size must be positive")
    for start in range(0, len(stream), size):
        yield start, np.asarray(stream[start:start + size + overlap])


def _segments(block: np.ndarray, eos: int | None) -> np.ndarray:
    """Bounds [-1, cut..., len] of the runs between end-of-text tokens in ``block``."""
    cuts = np.flatnonzero(block == eos) if eos is not None else np.empty(0, np.int64)
    return np.concatenate(([-1], cuts, [len(block)]))


def pieces(stream: np.ndarray, eos: int | None, length: int,
           chunk: int = DEFAULT_CHUNK) -> Iterator[np.ndarray]:
    """Each document cut into consecutive pieces of at most ``length`` tokens, in order.

    The same pieces as splitting the whole stream at ``eos`` and then each document every
    ``length`` tokens, but the carry between chunks is always shorter than ``length``.
    """
    carry = np.empty(0, dtype=np.asarray(stream[:0]).dtype)
    for _, block in chunks(stream, chunk):
        bounds = _segments(block, eos)
        last = len(bounds) - 2
        for i in range(last + 1):
            seg = block[bounds[i] + 1:bounds[i + 1]]
            if i == 0 and len(carry):
                seg = np.concatenate((carry, seg))
            end = len(seg) // length * length if i == last else len(seg)
            for s in range(0, end, length):
                yield seg[s:s + length]
            if i == last:
                carry = seg[end:].copy()
    if len(carry):
        yield carry


@dataclass(frozen=True)
class StreamScan:
    """Token statistics of a stream, end-of-text tokens excluded."""

    counts: np.ndarray  # occurrences of each token id (length: largest id + 1)
    order: np.ndarray  # the ids that occur, in order of first occurrence
    tokens: int
    pieces: int  # documents' pieces of at most ``piece_length`` tokens (0 if not asked)

    def to_dict(self) -> dict:
        return {"distinct": len(self.order), "tokens": self.tokens, "pieces": self.pieces}


def scan(stream: np.ndarray, eos: int | None, piece_length: int | None = None,
         chunk: int = DEFAULT_CHUNK) -> StreamScan:
    """Count tokens, first occurrences and (optionally) the pieces :func:`pieces` yields."""
    counts = np.zeros(0, dtype=np.int64)
    order: list[np.ndarray] = []
    n_pieces, open_len = 0, 0
    for _, block in chunks(stream, chunk):
        bounds = _segments(block, eos)
        words = block if eos is None else block[block != eos]
        if len(words):
            found = np.bincount(words)
            if len(found) > len(counts):
                counts = np.concatenate((counts, np.zeros(len(found) - len(counts), np.int64)))
            new = np.zeros(len(counts), dtype=bool)
            new[:len(found)] = (found > 0) & (counts[:len(found)] == 0)
            fresh = words[new[words]]
            ids, first = np.unique(fresh, return_index=True)
            order.append(ids[np.argsort(first)].astype(np.int64))
            counts[:len(found)] += found
        if piece_length is not None:
            lengths = np.diff(bounds) - 1
            lengths[0] += open_len
            n_pieces += int(np.sum(-(-lengths[:-1] // piece_length)))
            n_pieces += int(lengths[-1] // piece_length)
            open_len = int(lengths[-1] % piece_length)
    n_pieces += open_len > 0
    ids = np.concatenate(order) if order else np.empty(0, np.int64)
    return StreamScan(counts, ids, int(counts.sum()), int(n_pieces))
