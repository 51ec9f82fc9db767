"""Token shards on disk: raw little-endian ``uint16``/``uint32`` files read with ``np.memmap``.

A shard is ``tokens-NNNNN.bin`` (the ids of whole documents, each followed by the
end-of-text token) and ``tokens-NNNNN.offsets.npy`` (int64 start of every document, plus
the shard's length at the end). Shards are written atomically (temporary name, then
rename), so a shard file that exists is complete; the manifest says which ones count.
:class:`ShardedStream` reads several shards as one 1-D stream without copying them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from convergent.io import write_bytes_atomic


def token_dtype(vocab_size: int) -> np.dtype:
    """``uint16`` when every id fits (at most 65536 ids), else ``uint32``."""
    return np.dtype(np.uint16 if vocab_size <= 2**16 else np.uint32)


@dataclass(frozen=True)
class ShardInfo:
    """One written shard: its file names (relative to the shard folder) and contents."""

    file: str
    offsets: str
    tokens: int
    documents: int
    sha256: str

    def to_dict(self) -> dict[str, object]:
        return {"file": self.file, "offsets": self.offsets, "tokens": self.tokens,
                "documents": self.documents, "sha256": self.sha256}


def shard_name(index: int) -> str:
    return f"tokens-{index:05d}"


def write_shard(folder: Path, index: int, tokens: np.ndarray, offsets: np.ndarray,
                dtype: np.dtype) -> ShardInfo:
    """Write shard ``index`` (tokens cast to ``dtype``, document ``offsets``) atomically."""
    name = shard_name(index)
    data = np.ascontiguousarray(tokens, dtype=dtype.newbyteorder("<"))
    write_bytes_atomic(folder / f"{name}.offsets.npy",
                       lambda h: np.save(h, np.asarray(offsets, dtype=np.int64)))
    write_bytes_atomic(folder / f"{name}.bin", lambda h: h.write(memoryview(data)))
    return ShardInfo(f"{name}.bin", f"{name}.offsets.npy", len(data), len(offsets) - 1,
                     hashlib.sha256(memoryview(data)).hexdigest())


def remove_partial(folder: Path) -> list[Path]:
    """Delete temporary files a killed writer left behind (they are never read)."""
    leftovers = sorted(folder.glob(".*.tmp")) if folder.is_dir() else []
    for path in leftovers:
        path.unlink(missing_ok=True)
    return leftovers


def open_shard(folder: Path, info: ShardInfo | dict, dtype: np.dtype) -> np.memmap:
    file = info["file"] if isinstance(info, dict) else info.file
    tokens = info["tokens"] if isinstance(info, dict) else info.tokens
    if tokens == 0:
        return np.zeros(0, dtype=dtype)  # np.memmap cannot map an empty file
    return np.memmap(folder / file, dtype=np.dtype(dtype).newbyteorder("<"), mode="r",
                     shape=(tokens,))


def read_offsets(folder: Path, info: ShardInfo | dict) -> np.ndarray:
    name = info["offsets"] if isinstance(info, dict) else info.offsets
    return np.load(folder / name, mmap_mode="r")


class ShardedStream:
    """Several memmapped shards read as one 1-D token stream (no copy, no int64).

    Supports ``len``, integer and slice indexing, ``take`` (gather by an index array) and
    ``np.asarray`` (which does copy: only for small corpora).
    """

    def __init__(self, shards: Sequence[np.ndarray]) -> None:
        self.shards = list(shards)
        self.bounds = np.concatenate([[0], np.cumsum([len(s) for s in self.shards])])
        self.dtype = self.shards[0].dtype if self.shards else np.dtype(np.uint16)

    def __len__(self) -> int:
        return int(self.bounds[-1])

    @property
    def shape(self) -> tuple[int]:
        return (len(self),)

    @property
    def ndim(self) -> int:
        return 1

    def __getitem__(self, key: int | slice) -> np.ndarray:
        if isinstance(key, slice):
            start, stop, step = key.indices(len(self))
            if step != 1:
                return self.take(np.arange(start, stop, step, dtype=np.int64))
            first, last = np.searchsorted(self.bounds, [start, max(start, stop - 1)], "right") - 1
            pieces = [self.shards[i][max(0, start - self.bounds[i]):max(0, stop - self.bounds[i])]
                      for i in range(first, min(last, len(self.shards) - 1) + 1)]
            return np.concatenate([np.zeros(0, self.dtype), *pieces])
        return self.take(np.asarray([key], dtype=np.int64))[0]

    def take(self, index: np.ndarray) -> np.ndarray:
        """``stream[index]`` for an integer array of any shape (negative ids wrap)."""
        index = np.asarray(index, dtype=np.int64)
        index = np.where(index < 0, index + len(self), index)
        out = np.empty(index.shape, dtype=self.dtype)
        which = np.searchsorted(self.bounds, index, side="right") - 1
        for shard in np.unique(which):
            hit = which == shard
            out[hit] = self.shards[shard][index[hit] - self.bounds[shard]]
        return out

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        joined = np.concatenate(self.shards) if self.shards else np.zeros(0, self.dtype)
        return joined if dtype is None else joined.astype(dtype)


def join_shards(shards: Sequence[np.ndarray]) -> np.ndarray | ShardedStream:
    """The memmap itself for one shard (a plain ndarray), else a :class:`ShardedStream`."""
    return shards[0] if len(shards) == 1 else ShardedStream(shards)
