"""``convergent data prepare``: stream a corpus once into memmapped token shards.

Layout of a prepared folder::

    manifest.json       source, revision, tokenizer hash, dtype, counts, shards + sha256
    tokenizer.json      the tokenizer every shard was encoded with
    shards/tokens-NNNNN.bin / .offsets.npy   (see :mod:`convergent.data.shards`)
    perturbed/...       perturbed copies and packed segments, made on demand

A trained tokenizer (bpe, digit, word) learns from the first ``sample_chars`` characters
of the corpus; a named one (``hf:ORG/NAME``, ``tokenizer.json``) is loaded. Documents
stream through a process pool into shards of about ``shard_tokens`` tokens. A killed
prepare resumes at the next unwritten shard; a finished one is not redone.
"""

from __future__ import annotations

import fcntl
import hashlib
import itertools
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from convergent.data.manifest import (
    FORMAT,
    KIND,
    MANIFEST,
    check_request,
    manifest_sha256,
    read_manifest,
)
from convergent.data.shards import (
    ShardedStream,
    join_shards,
    open_shard,
    read_offsets,
    remove_partial,
    token_dtype,
    write_shard,
)
from convergent.errors import ConvergentError
from convergent.io import write_bytes_atomic, write_json_atomic

SHARD_TOKENS = 100_000_000
SAMPLE_CHARS = 100_000_000
OWN_FILES = (".lock", "tokenizer.json", "shards")  # what a kill before the manifest leaves


@dataclass(frozen=True)
class PreparedData:
    """A prepared folder and its manifest; arrays are memmapped when asked for."""

    folder: Path
    manifest: dict[str, Any]

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.manifest["dtype"])

    @property
    def tokens(self) -> int:
        return int(self.manifest["tokens"])

    @property
    def documents(self) -> int:
        return int(self.manifest["documents"])

    @property
    def eos(self) -> int:
        return int(self.manifest["tokenizer"]["eos"])

    @property
    def sha256(self) -> str:
        return manifest_sha256(self.folder)

    def tokenizer(self):
        from convergent.train.tokenize import load_tokenizer

        return load_tokenizer(self.folder / "tokenizer.json")

    def shards(self) -> list[np.ndarray]:
        return [open_shard(self.folder / "shards", s, self.dtype)
                for s in self.manifest["shards"]]

    def offsets(self) -> list[np.ndarray]:
        """Per shard: int64 start of each document within it, then the shard's length."""
        return [read_offsets(self.folder / "shards", s) for s in self.manifest["shards"]]

    def stream(self) -> np.ndarray | ShardedStream:
        """All shards as one 1-D stream (a memmap for one shard; no copy either way)."""
        return join_shards(self.shards())

    def to_dict(self) -> dict[str, Any]:
        return {"folder": str(self.folder), **self.manifest}


def open_prepared(folder: str | Path) -> PreparedData:
    """Open a finished prepared folder (reads the manifest only)."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    if manifest is None:
        raise ConvergentError(f"{folder}: no {MANIFEST}; make it with convergent data prepare")
    if not manifest.get("complete"):
        raise ConvergentError(
            f"{folder}: the preparation did not finish; run convergent data prepare again "
            "to resume it")
    return PreparedData(folder, manifest)


def prepare_corpus(
    corpus: str,
    out: str | Path,
    tokenizer: str = "bpe",
    vocab_size: int = 4096,
    max_documents: int = 0,
    workers: int = 1,
    revision: str | None = None,
    shard_tokens: int = SHARD_TOKENS,
    min_count: int = 5,
    sample_chars: int = SAMPLE_CHARS,
    progress: bool = False,
    stop_after_shards: int | None = None,
) -> PreparedData:
    """Tokenize ``corpus`` into shards under ``out`` (resuming, or a no-op when done).

    ``stop_after_shards`` stops after writing that many shards (a simulated kill).
    """
    from convergent.train.config import is_named_tokenizer

    if shard_tokens < 1 or workers < 1 or max_documents < 0 or sample_chars < 1:
        raise ConvergentError(
            "shard_tokens, workers and sample_chars must be >= 1 and max_documents >= 0")
    named = is_named_tokenizer(tokenizer)
    request = {"corpus": corpus, "revision": revision or None, "max_documents": max_documents,
               "tokenizer": tokenizer, "vocab_size": None if named else vocab_size,
               "min_count": min_count if tokenizer == "word" else None,
               "sample_chars": None if named else sample_chars}
    folder = Path(out)
    manifest = read_manifest(folder)
    if manifest is not None:
        check_request(folder, manifest, request, resuming=not manifest.get("complete"))
        if manifest.get("complete"):
            return PreparedData(folder, manifest)
        check_request(folder, manifest, {"shard_tokens": shard_tokens}, resuming=True)
    elif folder.exists() and any(p.name not in OWN_FILES and not p.name.endswith(".tmp")
                                 for p in folder.iterdir()):
        raise ConvergentError(f"{folder}: the folder is not empty and holds no prepared data")
    fresh = not folder.exists()
    try:
        with _locked(folder):
            manifest = read_manifest(folder)  # another process may have finished meanwhile
            if manifest is not None and manifest.get("complete"):
                return PreparedData(folder, manifest)
            return _prepare(folder, request, manifest, shard_tokens, workers, progress,
                            stop_after_shards)
    except ConvergentError:
        if fresh and read_manifest(folder) is None:  # bad input: leave nothing behind
            shutil.rmtree(folder, ignore_errors=True)
        raise


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """One preparer per folder at a time (others wait, then find the work done)."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _prepare(folder: Path, request: dict[str, Any], manifest: dict[str, Any] | None,
             shard_tokens: int, workers: int, progress: bool,
             stop_after_shards: int | None) -> PreparedData:
    from convergent.data import hub
    from convergent.data.encode import chunked, encode_stream
    from convergent.train.corpus import iter_documents
    from convergent.train.tokenize import eos_id, load_tokenizer

    shard_dir = folder / "shards"
    remove_partial(folder)
    remove_partial(shard_dir)
    done = list(manifest["shards"]) if manifest else []
    skip = sum(s["documents"] for s in done)
    if manifest is None:  # read one fixed commit of a hub dataset, also on resume
        resolved = hub.resolve_revision(request["corpus"], request["revision"])
    else:
        resolved = manifest["source"].get("resolved")
    docs = iter_documents(request["corpus"], request["max_documents"] or None,
                          resolved or request["revision"], raw=True)  # workers clean them
    if manifest is None:
        tok, docs = _make_tokenizer(request, docs)
        text = tok.to_str().encode()
        write_bytes_atomic(folder / "tokenizer.json", lambda h: h.write(text))
        manifest = {
            "kind": KIND, "format": FORMAT, "complete": False,
            "request": {**request, "shard_tokens": shard_tokens},
            "source": {"corpus": request["corpus"], "revision": request["revision"],
                       "resolved": resolved},
            "tokenizer": {"spec": request["tokenizer"], "size": tok.get_vocab_size(),
                          "eos": eos_id(tok), "sha256": hashlib.sha256(text).hexdigest()},
            "dtype": token_dtype(tok.get_vocab_size()).name, "shard_tokens": shard_tokens,
            "tokens": 0, "documents": 0, "shards": [], "versions": _versions(),
        }
        write_json_atomic(folder / MANIFEST, manifest)  # a resume keeps this tokenizer
    else:
        tok = load_tokenizer(folder / "tokenizer.json")
        docs = itertools.islice(docs, skip, None)
    dtype, eos = np.dtype(manifest["dtype"]), int(manifest["tokenizer"]["eos"])
    bar = _progress_bar(progress, manifest["tokens"])
    id_parts: list[np.ndarray] = []
    length_parts: list[np.ndarray] = []
    buffered = 0
    for new_ids, new_lengths in encode_stream(tok, eos, chunked(docs), workers):
        id_parts.append(new_ids.astype(dtype))
        length_parts.append(new_lengths)
        buffered += len(new_ids)
        if bar is not None:
            bar.update(len(new_ids))
        if buffered < shard_tokens:
            continue
        ids, lengths = np.concatenate(id_parts), np.concatenate(length_parts)
        while len(ids) >= shard_tokens:  # cut at the first document end past the size
            docs_in = int(np.searchsorted(np.cumsum(lengths), shard_tokens)) + 1
            size = int(lengths[:docs_in].sum())
            done = _flush(folder, manifest, done, ids[:size], lengths[:docs_in], dtype)
            ids, lengths = ids[size:], lengths[docs_in:]
            if stop_after_shards is not None and len(done) >= stop_after_shards:
                return PreparedData(folder, manifest)
        id_parts, length_parts, buffered = [ids], [lengths], len(ids)
    if buffered:
        done = _flush(folder, manifest, done, np.concatenate(id_parts),
                      np.concatenate(length_parts), dtype)
    if bar is not None:
        bar.close()
    if not done:
        raise ConvergentError(f"corpus {request['corpus']!r}: no text found")
    manifest["complete"] = True
    write_json_atomic(folder / MANIFEST, manifest)
    return PreparedData(folder, manifest)


def _flush(folder: Path, manifest: dict[str, Any], done: list[dict[str, Any]],
           ids: np.ndarray, lengths: np.ndarray, dtype: np.dtype) -> list[dict[str, Any]]:
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    info = write_shard(folder / "shards", len(done), ids, offsets, dtype)
    done = [*done, info.to_dict()]
    manifest.update(shards=done, tokens=sum(s["tokens"] for s in done),
                    documents=sum(s["documents"] for s in done))
    write_json_atomic(folder / MANIFEST, manifest)
    return done


def _make_tokenizer(request: dict[str, Any], docs: Iterator[str]):
    """(tokenizer, the same documents again) — trained on a bounded sample, or named."""
    from convergent.data.hub import load_named_tokenizer
    from convergent.train.config import is_named_tokenizer
    from convergent.train.corpus import clean
    from convergent.train.tokenize import train_tokenizer

    first = next(docs, None)
    if first is None:
        raise ConvergentError(f"corpus {request['corpus']!r}: no text found")
    docs = itertools.chain([first], docs)
    if is_named_tokenizer(request["tokenizer"]):
        return load_named_tokenizer(request["tokenizer"]), docs
    sample: list[str] = []
    chars = 0
    for doc in docs:  # characters counted before cleaning
        sample.append(doc)
        chars += len(doc)
        if chars >= request["sample_chars"]:
            break
    cleaned = [text for text in map(clean, sample) if text]
    tok = train_tokenizer(request["tokenizer"], cleaned, request["vocab_size"],
                          request["min_count"] or 5)
    return tok, itertools.chain(sample, docs)


def _progress_bar(progress: bool, initial: int):
    if not progress:
        return None
    from tqdm import tqdm

    return tqdm(total=None, initial=initial, unit="tok", unit_scale=True, desc="prepare")


def _versions() -> dict[str, str]:
    import tokenizers

    return {"tokenizers": tokenizers.__version__, "numpy": np.__version__}
