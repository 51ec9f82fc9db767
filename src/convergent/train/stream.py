"""The training data of a run: the tokenizer and token stream, made once, then batches.

:func:`prepare_data` trains the tokenizer and encodes the corpus (cached by content under
``$CONVERGENT_CACHE``), applies stream perturbations, and saves both into the run folder;
:func:`make_batches` cuts the stream into the :class:`~convergent.train.data.BatchSource`
the perturbation asks for.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from convergent.errors import ConvergentError
from convergent.io import write_bytes_atomic, write_json_atomic
from convergent.train.config import TrainConfig
from convergent.train.data import BatchSource, WindowBatches
from convergent.train.perturb import (
    isolate_windows,
    parse_perturbation,
    swap_numbers,
    unigram_replace,
)


def _cache_root() -> Path:
    return Path(os.environ.get("CONVERGENT_CACHE", Path.home() / ".cache" / "convergent"))


def prepare_data(run_dir: Path, config: TrainConfig, progress: bool = True):
    """(tokenizer, token stream) of the run, made once and then read from the run dir."""
    from convergent.train.tokenize import encode_documents, load_tokenizer, train_tokenizer

    tok_file, data_file = run_dir / "tokenizer.json", run_dir / "data" / "tokens.npy"
    if tok_file.is_file() and data_file.is_file():
        return load_tokenizer(tok_file), _load_stream(data_file)
    import tokenizers

    min_count = config.embedding.min_count
    key = json.dumps([config.corpus, _fingerprint(config.corpus), config.max_documents,
                      config.tokenizer, config.vocab_size, min_count, tokenizers.__version__, 1])
    cache = _cache_root() / "tokens" / hashlib.sha256(key.encode()).hexdigest()[:16]
    if (cache / "tokenizer.json").is_file() and (cache / "tokens.npy").is_file():
        tok, stream = load_tokenizer(cache / "tokenizer.json"), _load_stream(cache / "tokens.npy")
        meta = json.loads((cache / "corpus.json").read_text())
    else:
        from convergent.train.corpus import load_corpus

        if progress:
            print(f"preparing corpus {config.corpus!r} and a {config.tokenizer} tokenizer")
        corpus = load_corpus(config.corpus, config.max_documents or None)
        tok = train_tokenizer(config.tokenizer, corpus.documents, config.vocab_size, min_count)
        stream = encode_documents(tok, corpus.documents)
        meta = {"corpus": config.corpus, "documents": len(corpus.documents),
                "words": corpus.n_words, "corpus_sha256": corpus.sha256}
        if not config.corpus.startswith("hf:"):  # streamed corpora may change: not cached
            _save_data(cache, tok, stream, meta)
    stream = perturb_stream(stream, tok, config)
    meta = {**meta, "tokens": len(stream), "perturb": config.perturb,
            "stream_sha256": hashlib.sha256(stream.tobytes()).hexdigest()[:16]}
    _save_data(run_dir, tok, stream, meta, data_dir=True)
    return tok, stream


def _fingerprint(spec: str) -> list[Any]:
    """(path, size, mtime) of a local corpus's files, so an edited file is not served stale."""
    path = Path(spec)
    if not path.exists():
        return []
    files = sorted(path.rglob("*")) if path.is_dir() else [path]
    return [[str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns] for f in files
            if f.is_file()]


def _save_data(folder: Path, tok, stream: np.ndarray, meta: dict[str, Any],
               data_dir: bool = False) -> None:
    target = folder / "data" if data_dir else folder
    target.mkdir(parents=True, exist_ok=True)
    dtype = np.uint16 if tok.get_vocab_size() < 2**16 else np.int32
    write_bytes_atomic(target / "tokens.npy", lambda h: np.save(h, stream.astype(dtype)))
    write_json_atomic(target / "corpus.json", meta)
    write_bytes_atomic(folder / "tokenizer.json", lambda h: h.write(tok.to_str().encode()))


def _load_stream(file: Path) -> np.ndarray:
    try:
        return np.load(file, allow_pickle=False).astype(np.int64)
    except Exception as err:
        raise ConvergentError(f"{file}: cannot read the token stream ({err})") from None


def perturb_stream(stream: np.ndarray, tok, config: TrainConfig) -> np.ndarray:
    from convergent.train.tokenize import digit_token_ids

    kind = parse_perturbation(config.perturb, config.arch).kind
    if kind not in ("swap", "unigram"):
        return stream
    is_number = np.isin(stream, digit_token_ids(tok))
    fn = swap_numbers if kind == "swap" else unigram_replace
    return fn(stream, is_number, config.seed)


def make_batches(stream: np.ndarray, tok, config: TrainConfig) -> BatchSource:
    """Shuffled windows of the stream, cut as the perturbation asks."""
    from convergent.train.tokenize import EOS, digit_token_ids

    pert = parse_perturbation(config.perturb, config.arch)
    if pert.kind == "context":
        per_step = config.tokens_per_step
        return WindowBatches(stream, pert.k, max(1, per_step // pert.k), config.seed)
    if pert.kind == "isolate":
        is_number = np.isin(stream, digit_token_ids(tok))
        starts, lengths = isolate_windows(is_number, config.seq_len + 1, pert.k)
        return WindowBatches(stream, config.seq_len, config.batch_size, config.seed,
                             starts, lengths, pad_id=tok.token_to_id(EOS))
    return WindowBatches(stream, config.seq_len, config.batch_size, config.seed)
