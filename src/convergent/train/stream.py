"""The training data of a run: the tokenizer and a memmapped token stream, then batches.

:func:`prepare_data` opens the prepared folder ``config.data`` (made by
``convergent data prepare``) after checking its manifest against the config, or, without
it, prepares ``config.corpus`` into the content-addressed cache
(``$CONVERGENT_CACHE/tokens/<hash>``) in the same shard format. The stream is a uint16 or
uint32 memmap (or a :class:`~convergent.data.ShardedStream`), never an int64 copy.
Perturbations are made once beside the prepared data. The run folder records which data
it used (path and manifest hash) in ``data/corpus.json`` and keeps a copy of the
tokenizer. Called again (by every rank, or on resume) it only reads manifests.
:func:`make_batches` cuts the stream into the :class:`~convergent.train.data.BatchSource`
the perturbation asks for; each batch becomes int64 on its own.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from convergent.errors import ConvergentError
from convergent.io import cache_root, write_bytes_atomic, write_json_atomic
from convergent.train.config import TrainConfig, is_named_tokenizer
from convergent.train.data import BatchSource, WindowBatches
from convergent.train.perturb import document_segments, isolate_segments, parse_perturbation

CACHE_FORMAT = 2


def prepare_data(run_dir: Path, config: TrainConfig, progress: bool = True):
    """(tokenizer, token stream) of the run: prepared once, then only opened."""
    legacy = run_dir / "data" / "tokens.npy"  # runs made before prepared data existed
    if legacy.is_file() and (run_dir / "tokenizer.json").is_file():
        from convergent.train.tokenize import load_tokenizer

        return load_tokenizer(run_dir / "tokenizer.json"), np.load(legacy, mmap_mode="r")
    data = prepared_for(config, progress)
    tok = data.tokenizer()
    stream = data.stream()
    pert = parse_perturbation(config.perturb, config.arch)
    if pert.kind in ("swap", "swap-global", "unigram"):
        from convergent.data.perturbed import perturbed_stream

        stream = perturbed_stream(data, pert.kind, config.seed, tok)
    elif pert.kind in ("isolate", "context"):
        from convergent.data.perturbed import packed_segments

        packed_segments(data, pert, tok)  # made here once; make_batches reads them
    _record(run_dir, data, config, len(stream))
    return tok, stream


def prepared_for(config: TrainConfig, progress: bool = False):
    """The :class:`~convergent.data.PreparedData` of ``config`` (checked, or made now)."""
    from convergent.data import open_prepared, prepare_corpus
    from convergent.data.manifest import check_request

    if config.data:
        data = open_prepared(config.data)
        check_request(data.folder, data.manifest, _config_request(config))
        return data
    folder = cache_root() / "tokens" / _cache_key(config)
    if progress and not (folder / "manifest.json").is_file():
        print(f"preparing corpus {config.corpus!r} and a {config.tokenizer} tokenizer")
    return prepare_corpus(
        config.corpus, folder, config.tokenizer, config.vocab_size, config.max_documents,
        min_count=config.embedding.min_count)


def data_fields(folder: str | Path) -> dict[str, Any]:
    """The config fields a prepared folder fixes (corpus, tokenizer, vocab_size,
    max_documents), for a command line that was given ``--data`` without them."""
    from convergent.data import open_prepared

    manifest = open_prepared(folder).manifest
    request = manifest["request"]
    return {"data": str(folder), "corpus": request["corpus"], "tokenizer": request["tokenizer"],
            "vocab_size": request["vocab_size"] or manifest["tokenizer"]["size"],
            "max_documents": request["max_documents"]}


def _config_request(config: TrainConfig) -> dict[str, Any]:
    named = is_named_tokenizer(config.tokenizer)
    return {"corpus": config.corpus, "tokenizer": config.tokenizer,
            "vocab_size": None if named else config.vocab_size,
            "max_documents": config.max_documents,
            "min_count": config.embedding.min_count if config.tokenizer == "word" else None}


def _cache_key(config: TrainConfig) -> str:
    import tokenizers

    key = json.dumps([config.corpus, _fingerprint(config.corpus), config.max_documents,
                      config.tokenizer, _fingerprint(config.tokenizer), config.vocab_size,
                      config.embedding.min_count, tokenizers.__version__, CACHE_FORMAT])
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def _fingerprint(spec: str) -> list[Any]:
    """(path, size, mtime) of a local corpus's files, so an edited file is not served stale."""
    path = Path(spec)
    if not path.exists():
        return []
    files = sorted(path.rglob("*")) if path.is_dir() else [path]
    return [[str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns] for f in files
            if f.is_file()]


def _record(run_dir: Path, data, config: TrainConfig, tokens: int) -> None:
    """Write which prepared data the run uses; refuse data that changed under a resume."""
    meta_file = run_dir / "data" / "corpus.json"
    manifest = data.manifest
    meta = {"data": str(data.folder.resolve()), "manifest_sha256": data.sha256,
            "corpus": manifest["source"]["corpus"], "revision": manifest["source"]["revision"],
            "documents": manifest["documents"], "tokens": tokens, "dtype": manifest["dtype"],
            "tokenizer_sha256": manifest["tokenizer"]["sha256"], "perturb": config.perturb}
    if meta_file.is_file():
        old = json.loads(meta_file.read_text())
        if old.get("manifest_sha256") not in (None, meta["manifest_sha256"]):
            raise ConvergentError(
                f"{run_dir}: the run was trained on other prepared data ({old.get('data')}, "
                "manifest hash differs); resume with the same data or start a new run")
        if old == meta and (run_dir / "tokenizer.json").is_file():
            return
    text = (data.folder / "tokenizer.json").read_bytes()
    write_bytes_atomic(run_dir / "tokenizer.json", lambda h: h.write(text))
    write_json_atomic(meta_file, meta)


def make_batches(stream, tok, config: TrainConfig) -> BatchSource:
    """Shuffled windows of the stream, or packed segments for isolate-K and context-L."""
    pert = parse_perturbation(config.perturb, config.arch)
    if pert.kind not in ("isolate", "context"):
        return WindowBatches(stream, config.seq_len, config.batch_size, config.seed)
    from convergent.data.packing import PackedBatches

    starts, lengths, bounds = segments_of(stream, tok, pert)
    if pert.kind == "context":
        rows = max(1, config.tokens_per_step // pert.k)
        return PackedBatches(stream, starts, lengths, pert.k + 1, rows, config.seed, bounds)
    return PackedBatches(stream, starts, lengths, config.seq_len + 1, config.batch_size,
                         config.seed, bounds)


def segments_of(stream, tok, pert) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(starts, lengths, packed bounds or None) of ``stream``'s packed segments: cached
    beside prepared data, else computed here."""
    from convergent.data.perturbed import base_folder, number_mask, packed_segments

    folder = base_folder(stream)
    if folder is not None:
        from convergent.data import open_prepared

        return packed_segments(open_prepared(folder), pert, tok)
    from convergent.train.tokenize import eos_id

    ids = np.asarray(stream)
    doc_ends = np.flatnonzero(ids == eos_id(tok))
    if pert.kind == "context":
        return (*document_segments(len(ids), doc_ends), None)
    return (*isolate_segments(number_mask(tok)[ids], pert.k, doc_ends), None)
