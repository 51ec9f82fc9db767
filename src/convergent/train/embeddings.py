"""Classical embeddings on the run's tokens: word2vec (gensim) and PPMI + truncated SVD.

Both see the same token stream as the neural models (documents split at the end-of-text
token), an array in RAM or an ``np.memmap`` of any length: they walk it in chunks
(:mod:`convergent.train.token_chunks`), so memory is bounded by the chunk and the
vocabulary, not by the stream. Checkpoints hold ``vectors.safetensors`` with ``embed``
(word vectors), ``unembed`` (context vectors: word2vec's negative-sampling output layer,
PPMI's right singular vectors) and ``token_ids`` (the token of each row).

- word2vec (:mod:`convergent.train.word2vec`): skip-gram (``sg``) or CBOW with negative
  sampling, one checkpoint per epoch (learning rate decays linearly over all epochs, as
  gensim does), a single worker and a fixed hash so a seed gives the same vectors. Each
  checkpoint's ``state.json`` also holds gensim's random state, so an interrupted run
  resumes at the next epoch (vocabulary recounted from the same tokens, vectors and random
  state restored; no pickle) and ends with the vectors of an uninterrupted one.
- PPMI (:mod:`convergent.train.ppmi`): symmetric window counts within documents,
  context-distribution smoothing ``ppmi_alpha``, then ``scipy.sparse.linalg.svds``; rows
  U sqrt(S) (embed) and V sqrt(S) (unembed).
- Both skip the work a complete checkpoint already holds: re-running a finished run is a
  no-op.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

from convergent.io import write_json_atomic
from convergent.train.config import TrainConfig
from convergent.train.ppmi import cooccurrence, ppmi_matrix

__all__ = ["cooccurrence", "ppmi_matrix", "save_vectors", "train_classical"]


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


def train_classical(run_dir: Path, config: TrainConfig, tok, stream: np.ndarray,
                    progress: bool = True, stop_after: int | None = None) -> None:
    """Train or resume word2vec (``stop_after`` epochs, a simulated kill) or PPMI.

    ``stream`` is a 1-D array of token ids (any integer dtype, e.g. a uint16/uint32
    ``np.memmap``) with documents separated by the tokenizer's end-of-text token.
    """
    from convergent.train.tokenize import eos_id

    eos = eos_id(tok)
    if config.arch == "word2vec":
        from convergent.train.word2vec import train_word2vec

        train_word2vec(run_dir, config, stream, eos, progress, stop_after)
    else:
        from convergent.train.ppmi import train_ppmi

        train_ppmi(run_dir, config, stream, eos, progress)
