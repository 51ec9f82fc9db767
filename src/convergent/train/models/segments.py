"""Packed segments: per-position document ids [B, T], non-decreasing along each row.

Positions of different segments must not see each other. These helpers turn the ids into
the masks each family needs (attention mask, RoPE positions, conv taps, chunk masks); they
are ours because the kernels they feed are ours.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from convergent.errors import ConvergentError


def check_segments(segments: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """``segments`` validated against the inputs' [B, T] ``shape`` (monotonicity on CPU only,
    to avoid a device sync per step on GPUs)."""
    if tuple(segments.shape) != tuple(shape):
        raise ConvergentError(f"segments have shape {tuple(segments.shape)}, the inputs "
                              f"{tuple(shape)}; give one segment id per input position")
    if segments.is_floating_point() or segments.is_complex():
        raise ConvergentError(f"segments must be integer ids, got {segments.dtype}")
    if segments.device.type == "cpu" and bool((segments[:, 1:] < segments[:, :-1]).any()):
        raise ConvergentError("segment ids must be non-decreasing along each row")
    return segments


def positions(segments: torch.Tensor) -> torch.Tensor:
    """Position of each token within its segment, [B, T] int64 (0 at each segment start)."""
    t = segments.shape[1]
    index = torch.arange(t, device=segments.device).expand_as(segments)
    starts = torch.ones_like(segments, dtype=torch.bool)
    starts[:, 1:] = segments[:, 1:] != segments[:, :-1]
    return index - torch.where(starts, index, 0).cummax(dim=1).values


def attention_mask(segments: torch.Tensor) -> torch.Tensor:
    """Block-diagonal causal mask [B, 1, T, T] (True = may attend)."""
    t = segments.shape[1]
    causal = torch.ones(t, t, dtype=torch.bool, device=segments.device).tril()
    return ((segments[:, :, None] == segments[:, None, :]) & causal)[:, None]


def same_as_shifted(segments: torch.Tensor, taps: int, dtype: torch.dtype) -> torch.Tensor:
    """keep [taps - 1, B, T, 1]: keep[s - 1, b, t] = 1 where position t - s (t >= s) is in
    t's segment, else 0; the gates of a causal convolution's shifted taps."""
    b, t = segments.shape
    keep = segments.new_zeros((max(taps - 1, 0), b, t, 1), dtype=dtype)
    for shift in range(1, min(taps, t)):
        keep[shift - 1, :, shift:, 0] = segments[:, shift:] == segments[:, :-shift]
    return keep


class ChunkMasks(NamedTuple):
    """Which terms of a chunked linear recurrence stay within one segment; all bool.

    ``same`` [B, n, C, C]: positions l, s of a chunk share a segment; ``from_prev`` [B, n, C]:
    position l continues the state entering its chunk; ``to_last`` [B, n, C]: l is in the
    segment of its chunk's last position; ``through`` [B, n]: no segment starts in the chunk
    (the entering state passes through it).
    """

    same: torch.Tensor
    from_prev: torch.Tensor
    to_last: torch.Tensor
    through: torch.Tensor


def chunk_masks(segments: torch.Tensor, chunk: int) -> ChunkMasks:
    """:class:`ChunkMasks` for ``segments`` [B, T] with T a multiple of ``chunk``."""
    b, t = segments.shape
    seg = segments.view(b, t // chunk, chunk)
    prev = torch.cat((seg[:, :1, 0], seg[:, :-1, -1]), dim=1)  # id before each chunk
    last = seg[:, :, -1]
    return ChunkMasks(seg[..., :, None] == seg[..., None, :], seg == prev[..., None],
                      seg == last[..., None], last == prev)


def pad_segments(segments: torch.Tensor, pad: int) -> torch.Tensor:
    """``segments`` extended by ``pad`` copies of each row's last id (for chunk padding)."""
    if not pad:
        return segments
    return torch.cat((segments, segments[:, -1:].expand(-1, pad)), dim=1)
