"""Classical embeddings on the run's tokens: word2vec (gensim) and PPMI + truncated SVD.

Both see the same token stream as the neural models (documents split at the end-of-text
token). Checkpoints hold ``vectors.safetensors`` with ``embed`` (word vectors), ``unembed``
(context vectors: word2vec's negative-sampling output layer, PPMI's right singular
vectors) and ``token_ids`` (the token of each row).

- word2vec: skip-gram (``sg``) or CBOW with negative sampling, one checkpoint per epoch
  (learning rate decays linearly over all epochs, as gensim does), a single worker and a
  fixed hash so a seed gives the same vectors. Each checkpoint's ``state.json`` also holds
  gensim's random state, so an interrupted run resumes at the next epoch (vocabulary
  rebuilt from the same tokens, vectors and random state restored; no pickle) and ends
  with the vectors of an uninterrupted one.
- Both skip the work a complete checkpoint already holds: re-running a finished run is a
  no-op.
- PPMI: symmetric window counts within documents, context-distribution smoothing
  ``ppmi_alpha`` (Levy, Goldberg & Dagan 2015), PPMI = max(0, log p(w,c) / p(w) p_a(c)),
  then ``scipy.sparse.linalg.svds``; rows U sqrt(S) (embed) and V sqrt(S) (unembed).
"""

from __future__ import annotations

import os
import shutil
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from convergent.io import write_json_atomic
from convergent.train.config import TrainConfig

MAX_SENTENCE = 1000


def documents(stream: np.ndarray, eos: int) -> list[np.ndarray]:
    """The stream cut at end-of-text tokens (which are dropped)."""
    cuts = np.flatnonzero(stream == eos)
    pieces = np.split(stream, cuts)
    return [p[p != eos] for p in pieces if (p != eos).any()]


def _sentences(docs: list[np.ndarray]) -> Iterator[list[str]]:
    for doc in docs:
        words = [str(int(t)) for t in doc]
        for start in range(0, len(words), MAX_SENTENCE):
            yield words[start:start + MAX_SENTENCE]


def _stable_hash(text: str) -> int:
    """Deterministic replacement for Python's salted ``hash`` in gensim's vector init."""
    return zlib.crc32(text.encode())


ALPHA, MIN_ALPHA = 0.025, 1e-4  # gensim's defaults; gensim overwrites both on every train()


def save_vectors(run_dir: Path, step: int, tokens: int, embed: np.ndarray,
                 unembed: np.ndarray, token_ids: np.ndarray, extra: dict) -> Path:
    """One classical checkpoint, written to a temporary folder and renamed into place."""
    import hashlib

    from safetensors.numpy import save_file

    final = run_dir / "checkpoints" / f"step-{step:08d}"
    tmp = final.parent / f".tmp-{final.name}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    save_file({"embed": np.ascontiguousarray(embed, dtype=np.float32),
               "unembed": np.ascontiguousarray(unembed, dtype=np.float32),
               "token_ids": np.ascontiguousarray(token_ids, dtype=np.int64)},
              str(tmp / "vectors.safetensors"))
    digest = hashlib.sha256((tmp / "vectors.safetensors").read_bytes()).hexdigest()
    write_json_atomic(tmp / "state.json", {"format": 1, "step": step, "tokens": tokens,
                                           "sha256": {"vectors.safetensors": digest}, **extra})
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    return final


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


def train_word2vec(run_dir: Path, config: TrainConfig, docs: list[np.ndarray],
                   progress: bool = True, stop_after: int | None = None) -> None:
    """Train, or resume from the newest checkpoint; ``stop_after`` epochs simulates a kill."""
    from gensim.models import Word2Vec

    from convergent.train.checkpoint import list_checkpoints, read_state

    e = config.embedding
    done_before = list_checkpoints(run_dir)
    if any(c.step >= e.epochs for c in done_before):
        return  # complete
    sentences = list(_sentences(docs))
    n_tokens = int(sum(len(d) for d in docs))
    model = Word2Vec(vector_size=e.dim, window=e.window, min_count=e.min_count,
                     sg=int(e.sg), negative=e.negative, workers=e.workers,
                     seed=config.seed, hashfxn=_stable_hash, epochs=e.epochs,
                     alpha=ALPHA, min_alpha=MIN_ALPHA)
    model.build_vocab(sentences)
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
        model.train(sentences, total_examples=len(sentences), epochs=1,
                    start_alpha=a0, end_alpha=a1)
        save_vectors(run_dir, epoch + 1, (epoch + 1) * n_tokens, model.wv.vectors,
                     model.syn1neg, ids, {"arch": "word2vec", "epoch": epoch + 1,
                                          "random": random_state(model)})
        if progress:
            print(f"word2vec epoch {epoch + 1}/{e.epochs} done")


def cooccurrence(docs: list[np.ndarray], keep: np.ndarray, window: int):
    """Symmetric window counts (scipy CSR) over rows/columns ``keep`` (sorted token ids)."""
    from scipy import sparse

    stream = np.concatenate(docs)
    doc_id = np.repeat(np.arange(len(docs)), [len(d) for d in docs])
    index = np.full(int(stream.max()) + 1, -1, dtype=np.int64)
    index[keep] = np.arange(len(keep))
    rows = index[stream]
    size = len(keep)
    counts = sparse.csr_matrix((size, size), dtype=np.float64)
    for offset in range(1, window + 1):
        a, b = rows[:-offset], rows[offset:]
        ok = (a >= 0) & (b >= 0) & (doc_id[:-offset] == doc_id[offset:])
        pairs = sparse.coo_matrix((np.ones(int(ok.sum())), (a[ok], b[ok])), shape=(size, size))
        counts = counts + pairs.tocsr()
    return counts + counts.T


def ppmi_matrix(counts, alpha: float):
    """Positive PMI with context smoothing ``alpha`` (sparse in, sparse out)."""
    counts = counts.tocoo()
    total = counts.sum()
    word = np.asarray(counts.sum(axis=1)).ravel() / total
    context = np.asarray(counts.sum(axis=0)).ravel() ** alpha
    context /= context.sum()
    pmi = np.log(counts.data / total / (word[counts.row] * context[counts.col]))
    keep = pmi > 0
    from scipy import sparse

    return sparse.csr_matrix((pmi[keep], (counts.row[keep], counts.col[keep])),
                             shape=counts.shape)


def train_ppmi(run_dir: Path, config: TrainConfig, docs: list[np.ndarray],
               progress: bool = True) -> None:
    from scipy.sparse.linalg import svds

    from convergent.train.checkpoint import list_checkpoints

    if list_checkpoints(run_dir):
        return  # the single checkpoint is written atomically: it exists only when complete
    e = config.embedding
    stream = np.concatenate(docs)
    frequency = np.bincount(stream)
    keep = np.flatnonzero(frequency >= e.min_count)
    if progress:
        print(f"PPMI: {len(keep)} tokens, window {e.window}, SVD to {e.dim} dimensions")
    matrix = ppmi_matrix(cooccurrence(docs, keep, e.window), e.ppmi_alpha)
    k = min(e.dim, len(keep) - 1)
    u, s, vt = svds(matrix, k=k, random_state=config.seed)
    order = np.argsort(-s)
    u, s, vt = u[:, order], s[order], vt[order]
    signs = np.sign(u[np.argmax(np.abs(u), axis=0), np.arange(k)])  # fix SVD sign ambiguity
    u, vt = u * signs, vt * signs[:, None]
    root = np.sqrt(s)
    save_vectors(run_dir, 1, len(stream), u * root, vt.T * root, keep,
                 {"arch": "ppmi", "singular_values": s.tolist()})


def train_classical(run_dir: Path, config: TrainConfig, tok, stream: np.ndarray,
                    progress: bool = True, stop_after: int | None = None) -> None:
    """Train or resume word2vec (``stop_after`` epochs, a simulated kill) or PPMI."""
    from convergent.train.tokenize import EOS

    docs = documents(np.asarray(stream), tok.token_to_id(EOS))
    if config.arch == "word2vec":
        train_word2vec(run_dir, config, docs, progress, stop_after)
    else:
        train_ppmi(run_dir, config, docs, progress)
