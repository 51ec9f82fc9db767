"""Deterministic, resumable batches of token-id sequences.

The training loop asks a :class:`BatchSource` for batch ``i`` and nothing else, so the data
position is one integer and resuming is exact. :class:`WindowBatches` serves windows of a
token stream (shuffled per epoch with a seed); a task (e.g. addition) can supply any other
object with the same two members.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from convergent.errors import ConvergentError


@dataclass(frozen=True)
class Batch:
    """``tokens`` [B, L+1] int64 (inputs are ``[:, :-1]``, targets ``[:, 1:]``), an
    optional ``mask`` [B, L] bool of the targets that count in the loss, and optional
    ``segments`` [B, L] int32: the packed segment (document) of each input position,
    non-decreasing along a row; positions of different segments never see each other."""

    tokens: torch.Tensor
    mask: torch.Tensor | None = None
    segments: torch.Tensor | None = None

    @property
    def n_targets(self) -> int:
        if self.mask is None:
            return int(self.tokens.shape[0] * (self.tokens.shape[1] - 1))
        return int(self.mask.sum())


@runtime_checkable
class BatchSource(Protocol):
    """Batch ``index`` is a pure function of ``index`` (and the source's seed)."""

    def batch(self, index: int) -> Batch: ...


def gather(stream, index: np.ndarray) -> torch.Tensor:
    """``stream[index]`` as int64 (the stream stays in its own dtype, e.g. a uint16 memmap)."""
    picked = stream.take(index) if hasattr(stream, "take") else np.asarray(stream)[index]
    return torch.from_numpy(np.asarray(picked).astype(np.int64))


class EpochOrder:
    """Item ``flat`` of a shuffled endless sequence of ``count`` items (reshuffled per epoch)."""

    def __init__(self, count: int, seed: int) -> None:
        self.count, self.seed = count, seed
        self._epoch, self._order = -1, np.zeros(0, dtype=np.int64)

    def rows(self, index: int, batch_size: int) -> np.ndarray:
        """The items of batch ``index`` (``batch_size`` consecutive flat positions)."""
        return np.asarray([self._position(index * batch_size + i) for i in range(batch_size)],
                          dtype=np.int64)

    def _position(self, flat: int) -> int:
        epoch, offset = divmod(flat, self.count)
        if epoch != self._epoch:
            rng = np.random.default_rng([self.seed, epoch])
            self._epoch, self._order = epoch, rng.permutation(self.count)
        return int(self._order[offset])


class WindowBatches:
    """Windows ``stream[start : start + length]`` padded to ``seq_len + 1``, shuffled per epoch.

    By default the windows tile the stream with stride ``seq_len`` (each window's last token
    is the next one's first input), so every token is predicted once per epoch. The stream
    may be any 1-D integer array or memmap (or a sharded stream); each batch is converted
    to int64 on its own.
    """

    def __init__(
        self,
        stream: np.ndarray,
        seq_len: int,
        batch_size: int,
        seed: int,
        starts: np.ndarray | None = None,
        lengths: np.ndarray | None = None,
        pad_id: int = 0,
    ) -> None:
        if starts is None:
            count = (len(stream) - 1) // seq_len
            starts = np.arange(count, dtype=np.int64) * seq_len
            lengths = np.full(count, seq_len + 1, dtype=np.int64)
        if lengths is None or len(starts) != len(lengths):
            raise ConvergentError("window starts and lengths must have equal length")
        if len(starts) < 1:
            raise ConvergentError(
                f"the token stream ({len(stream)} tokens) is shorter than one sequence of "
                f"{seq_len + 1} tokens"
            )
        self.stream = stream
        self.starts, self.lengths = starts, lengths
        self.seq_len, self.batch_size, self.seed, self.pad_id = seq_len, batch_size, seed, pad_id
        self.padded = bool((lengths != seq_len + 1).any())
        self.order = EpochOrder(len(starts), seed)

    def __len__(self) -> int:
        return len(self.starts)

    def batch(self, index: int) -> Batch:
        rows = self.order.rows(index, self.batch_size)
        width = self.seq_len + 1
        offsets = np.arange(width)
        if not self.padded:
            return Batch(gather(self.stream, self.starts[rows][:, None] + offsets))
        lengths = np.asarray(self.lengths[rows])[:, None]
        inside = offsets < lengths
        index_ = np.where(inside, self.starts[rows][:, None] + offsets, 0)
        tokens = torch.where(torch.from_numpy(inside), gather(self.stream, index_),
                             self.pad_id)
        return Batch(tokens, torch.from_numpy(inside[:, 1:]))
