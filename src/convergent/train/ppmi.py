"""PPMI + truncated SVD on a token array, co-occurrences counted chunk by chunk.

Counts are symmetric window counts within documents over the kept vocabulary, summed into
a scipy CSR matrix one chunk at a time (each chunk reads ``window`` tokens past its end, and
a pair belongs to the chunk of its left token, so each pair is counted once). Memory is
one chunk's working arrays plus the vocabulary-sized count matrix, whatever the stream's
length. Then context-distribution smoothing ``ppmi_alpha`` (Levy, Goldberg & Dagan 2015),
PPMI = max(0, log p(w,c) / p(w) p_a(c)), and ``scipy.sparse.linalg.svds``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from convergent.train.config import TrainConfig
from convergent.train.token_chunks import DEFAULT_CHUNK, chunks, scan


def cooccurrence_stream(stream: np.ndarray, eos: int | None, keep: np.ndarray, window: int,
                        chunk: int = DEFAULT_CHUNK):
    """Symmetric window counts (scipy CSR) over rows/columns ``keep`` (sorted token ids).

    Pairs never cross an end-of-text token; tokens outside ``keep`` hold their position.
    """
    from scipy import sparse

    size = len(keep)
    top = max(int(keep.max()) if size else 0, -1 if eos is None else int(eos)) + 1
    index = np.full(top + 1, -1, dtype=np.int32)  # the last slot: every id above ``top``
    index[keep] = np.arange(size)
    if eos is not None:
        index[eos] = -1
    counts = sparse.csr_matrix((size, size), dtype=np.float64)
    for _, block in chunks(stream, chunk, overlap=window):
        rows = index.take(block, mode="clip")
        doc = None if eos is None else np.cumsum(block == eos, dtype=np.int32)
        owned = min(chunk, len(block))
        part = sparse.csr_matrix((size, size), dtype=np.float64)
        for offset in range(1, window + 1):
            m = min(owned, len(block) - offset)
            if m <= 0:
                break
            a, b = rows[:m], rows[offset:offset + m]
            ok = (a >= 0) & (b >= 0)
            if doc is not None:
                ok &= doc[:m] == doc[offset:offset + m]
            pairs = sparse.coo_matrix((np.ones(int(ok.sum())), (a[ok], b[ok])),
                                      shape=(size, size))
            part = part + pairs.tocsr()
        counts = counts + part
    return counts + counts.T


def cooccurrence(docs: Sequence[np.ndarray], keep: np.ndarray, window: int,
                 chunk: int = DEFAULT_CHUNK):
    """:func:`cooccurrence_stream` of documents given as a list of token arrays."""
    eos = max([int(d.max()) for d in docs if len(d)] + [int(keep.max()) if len(keep) else 0]) + 1
    joined = [np.append(d.astype(np.int64), eos) for d in docs]
    stream = np.concatenate(joined) if joined else np.empty(0, np.int64)
    return cooccurrence_stream(stream, eos, keep, window, chunk)


def ppmi_matrix(counts, alpha: float):
    """Positive PMI with context smoothing ``alpha`` (sparse in, sparse out)."""
    from scipy import sparse

    counts = counts.tocoo()
    total = counts.sum()
    word = np.asarray(counts.sum(axis=1)).ravel() / total
    context = np.asarray(counts.sum(axis=0)).ravel() ** alpha
    context /= context.sum()
    pmi = np.log(counts.data / total / (word[counts.row] * context[counts.col]))
    keep = pmi > 0
    return sparse.csr_matrix((pmi[keep], (counts.row[keep], counts.col[keep])),
                             shape=counts.shape)


def train_ppmi(run_dir: Path, config: TrainConfig, stream: np.ndarray, eos: int | None,
               progress: bool = True, chunk: int = DEFAULT_CHUNK) -> None:
    """Count, weight and factorise; one checkpoint (``step-00000001``), skipped if present."""
    from scipy.sparse.linalg import svds

    from convergent.errors import ConvergentError
    from convergent.train.checkpoint import list_checkpoints
    from convergent.train.embeddings import save_vectors

    if list_checkpoints(run_dir):
        return  # the single checkpoint is written atomically: it exists only when complete
    e = config.embedding
    stats = scan(stream, eos, chunk=chunk)
    keep = np.flatnonzero(stats.counts >= e.min_count)
    if len(keep) < 2:
        raise ConvergentError(f"PPMI needs at least 2 tokens that occur {e.min_count} times "
                              f"or more (embedding.min_count); the stream has {len(keep)}")
    if progress:
        print(f"PPMI: {len(keep)} tokens, window {e.window}, SVD to {e.dim} dimensions")
    matrix = ppmi_matrix(cooccurrence_stream(stream, eos, keep, e.window, chunk),
                         e.ppmi_alpha)
    k = min(e.dim, len(keep) - 1)
    u, s, vt = svds(matrix, k=k, random_state=config.seed)
    order = np.argsort(-s)
    u, s, vt = u[:, order], s[order], vt[order]
    signs = np.sign(u[np.argmax(np.abs(u), axis=0), np.arange(k)])  # fix SVD sign ambiguity
    u, vt = u * signs, vt * signs[:, None]
    root = np.sqrt(s)
    save_vectors(run_dir, 1, stats.tokens, u * root, vt.T * root, keep,
                 {"arch": "ppmi", "singular_values": s.tolist()})
