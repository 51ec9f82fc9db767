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


class WindowBatches:
    """Windows ``stream[start : start + length]`` padded to ``seq_len + 1``, shuffled per epoch.

    By default the windows tile the stream with stride ``seq_len`` (each window's last token
    is the next one's first input), so every token is predicted once per epoch.
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
        self.stream = torch.from_numpy(np.ascontiguousarray(stream, dtype=np.int64))
        self.starts, self.lengths = starts, lengths
        self.seq_len, self.batch_size, self.seed, self.pad_id = seq_len, batch_size, seed, pad_id
        self.padded = bool((lengths != seq_len + 1).any())
        self._epoch, self._order = -1, np.zeros(0, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.starts)

    def _position(self, flat: int) -> int:
        epoch, offset = divmod(flat, len(self.starts))
        if epoch != self._epoch:
            rng = np.random.default_rng([self.seed, epoch])
            self._epoch, self._order = epoch, rng.permutation(len(self.starts))
        return int(self._order[offset])

    def batch(self, index: int) -> Batch:
        rows = [self._position(index * self.batch_size + i) for i in range(self.batch_size)]
        width = self.seq_len + 1
        if not self.padded:
            idx = torch.as_tensor(self.starts[rows]).unsqueeze(1) + torch.arange(width)
            return Batch(self.stream[idx])
        tokens = torch.full((self.batch_size, width), self.pad_id, dtype=torch.int64)
        mask = torch.zeros(self.batch_size, width - 1, dtype=torch.bool)
        for r, w in enumerate(rows):
            start, length = int(self.starts[w]), int(self.lengths[w])
            tokens[r, :length] = self.stream[start:start + length]
            mask[r, :length - 1] = True
        return Batch(tokens, mask)
