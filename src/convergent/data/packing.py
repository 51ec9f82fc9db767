"""Packed segments: rows of whole or cut segments, with the segment id of each position.

Our own small packer (no library packs pre-cut token segments into fixed rows while
keeping a memmapped stream in place). The segments ``(starts, lengths)`` of a stream are
laid end to end into a virtual packed stream P (never materialised); rows are windows of
P of ``width`` tokens with stride ``width - 1`` (as for plain windows), so every target
inside a segment is predicted once per epoch, a segment longer than a row continues in
the next row, and the only lost targets are the pairs that straddle two segments.
"""

from __future__ import annotations

import numpy as np
import torch

from convergent.errors import ConvergentError
from convergent.train.data import Batch, EpochOrder, gather


class PackedBatches:
    """Batch ``i``: ``Batch(tokens, mask, segments)`` of ``batch_size`` packed rows.

    ``segments`` [B, width-1] int32 numbers the segment of each input position from 0 in
    each row (non-decreasing); ``mask`` is False where a target lies in another segment.
    """

    def __init__(self, stream, starts: np.ndarray, lengths: np.ndarray, width: int,
                 batch_size: int, seed: int, bounds: np.ndarray | None = None) -> None:
        if len(starts) != len(lengths):
            raise ConvergentError("segment starts and lengths must have equal length")
        self.stream, self.starts, self.width, self.batch_size = stream, starts, width, batch_size
        # where each segment begins in the packed stream (pass a cached memmap to share it)
        self.bounds = packed_bounds(lengths) if bounds is None else bounds
        total = int(self.bounds[-1])
        count = (total - 1) // (width - 1) if total else 0
        if count < 1:
            raise ConvergentError(
                f"the packed segments ({total} tokens) are shorter than one row of {width}")
        self.order = EpochOrder(count, seed)
        self.efficiency = float((total - len(lengths)) / max(1, total - 1))

    def __len__(self) -> int:
        return self.order.count

    def batch(self, index: int) -> Batch:
        rows = self.order.rows(index, self.batch_size)
        position = rows[:, None] * (self.width - 1) + np.arange(self.width)
        segment = self._segment_of(position)
        source = np.asarray(self.starts)[segment] + position - np.asarray(self.bounds)[segment]
        mask = torch.from_numpy(segment[:, 1:] == segment[:, :-1])
        ids = torch.from_numpy((segment[:, :-1] - segment[:, :1]).astype(np.int32))
        return Batch(gather(self.stream, source), mask, ids)

    def _segment_of(self, position: np.ndarray) -> np.ndarray:
        """Segment of each packed position [B, W]: one search per row in the (possibly
        huge, memmapped) bounds, then one search among each row's next W+1 bounds."""
        rows, width = position.shape
        first = np.searchsorted(self.bounds, position[:, 0], side="right") - 1
        window = np.minimum(first[:, None] + np.arange(width + 1), len(self.bounds) - 1)
        shift = np.arange(rows)[:, None] * (int(self.bounds[-1]) + 1)  # rows stay apart
        edges = (np.asarray(self.bounds)[window] + shift).ravel()
        count = np.searchsorted(edges, (position + shift).ravel(), side="right")
        local = count.reshape(rows, width) - np.arange(rows)[:, None] * (width + 1) - 1
        return first[:, None] + local


def packed_bounds(lengths: np.ndarray) -> np.ndarray:
    """Start of each segment in the packed stream, then its total length (int64)."""
    return np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)])
