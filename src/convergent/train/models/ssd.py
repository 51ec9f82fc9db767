"""Mamba-2's chunked SSD as one ``autograd.Function`` with a hand-written backward.

With xs = dt * x, per chunk cumulative log-decay A_l = sum_{r <= l} dt_r a, and shared B, C:
    within chunks   y_l += sum_{s <= l} exp(A_l - A_s) (C_l . B_s) xs_s     (per head)
    chunk states    S_i = sum_l exp(A_last - A_l) xs_l B_l^T                (all heads at once)
    across chunks   H_{i+1} = exp(A_last,i) H_i + S_i,   y_l += exp(A_l) H_i C_l
With packed segments, the terms crossing a segment start are masked (the decays set to
zero), so the state restarts there; the backward's terms carry the same zeros.
Forward and backward are batched matmuls over (batch, chunk[, head]) plus one short loop
over chunks. Autograd of the same graph spends much of its time on the backward of the
masked exponentials and on layout copies; this backward forms each gradient once.
Tested against autograd of the step-by-step recurrence and with ``gradcheck``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from convergent.train.models.amp import autocast_dtype, without_autocast
from convergent.train.models.segments import chunk_masks, pad_segments


def _t(x: torch.Tensor) -> torch.Tensor:
    return x.transpose(-1, -2)


class _ChunkSSD(torch.autograd.Function):
    """xs [B, n, l, H, P], cum [B, n, l, H], b, c [B, n, l, N] -> y [B, n, l, H, P];
    ``masks`` (:class:`~convergent.train.models.segments.ChunkMasks` fields) or None."""

    @staticmethod
    @without_autocast
    def forward(ctx, xs, cum, b, c, same, from_prev, to_last, through):
        batch, n, chunk, h, p = xs.shape
        lower = torch.ones(chunk, chunk, dtype=torch.bool, device=xs.device).tril()
        if same is not None:
            lower = lower & same[:, :, None]
        cum_h = _t(cum)  # [B, n, H, l]
        decay = (cum_h[..., :, None] - cum_h[..., None, :]).masked_fill_(
            ~lower, float("-inf")).exp_()  # [B, n, H, l, s]
        scores = c @ _t(b)  # [B, n, l, s], shared by the heads
        mix = decay * scores[:, :, None]
        xs_h = xs.transpose(2, 3).contiguous()  # [B, n, H, l, P]
        y = (mix @ xs_h).transpose(2, 3)  # [B, n, l, H, P]
        to_end = (cum[:, :, -1:] - cum).exp()  # [B, n, l, H]
        if same is not None:
            to_end.masked_fill_(~to_last[..., None], 0.0)
        xw = (xs * to_end[..., None]).view(batch, n, chunk, h * p)
        states = (_t(xw) @ b).view(batch, n, h, -1)  # each chunk's own contribution
        tail = cum[:, :, -1].exp()[..., None]  # [B, n, H, 1]
        if same is not None:
            tail.masked_fill_(~through[..., None, None], 0.0)
        run, starts = torch.zeros_like(states[:, 0]), []
        for i in range(n):
            starts.append(run)
            run = torch.addcmul(states[:, i], run, tail[:, i])
        start = torch.stack(starts, dim=1).view(batch, n, h * p, -1)  # state entering chunk
        enter = cum.exp()  # [B, n, l, H]
        if same is not None:
            enter.masked_fill_(~from_prev[..., None], 0.0)
        read = (c @ _t(start)).view(batch, n, chunk, h, p)
        y = y + read * enter[..., None]
        ctx.save_for_backward(xs_h, b, c, decay, scores, mix, to_end, xw, tail, start, enter,
                              read)
        return y

    @staticmethod
    @without_autocast
    def backward(ctx, dy):
        xs_h, b, c, decay, scores, mix, to_end, xw, tail, start, enter, read = ctx.saved_tensors
        batch, n, h, chunk, p = xs_h.shape
        dy = dy.contiguous()
        # read-out of the entering states
        d_read = (dy * enter[..., None]).view(batch, n, chunk, h * p)
        d_enter = (dy * read).sum(-1) * enter  # d/dcum of exp(cum)
        d_c = d_read @ start
        d_start = (_t(d_read) @ c).view(batch, n, h, -1)
        # the scan across chunks, backwards
        d_states, d_tail = torch.empty_like(d_start), torch.empty(batch, n, h, device=dy.device,
                                                                    dtype=dy.dtype)
        d_run = torch.zeros_like(d_start[:, 0])
        start_h = start.view(batch, n, h, -1)
        for i in range(n - 1, -1, -1):
            d_states[:, i] = d_run
            d_tail[:, i] = (start_h[:, i] * d_run).sum(-1)
            d_run = torch.addcmul(d_start[:, i], d_run, tail[:, i])
        d_states = d_states.view(batch, n, h * p, -1)
        # chunk states: states = xw^T b
        d_xw = b @ _t(d_states)  # [B, n, l, H*P]
        d_b = xw @ d_states
        xs = xs_h.transpose(2, 3)  # [B, n, l, H, P] view
        d_xw = d_xw.view(batch, n, chunk, h, p)
        d_xs = d_xw * to_end[..., None]
        d_end = (d_xw * xs).sum(-1) * to_end  # d/d(cum_last - cum)
        # within chunks: y = (decay * scores) @ xs
        dy_h = dy.transpose(2, 3)
        d_mix = dy_h @ _t(xs_h)  # [B, n, H, l, s]
        d_xs = d_xs + (_t(mix) @ dy_h).transpose(2, 3)
        d_scores = (d_mix * decay).sum(2)
        d_decay = d_mix * scores[:, :, None] * decay  # d/d(cum_l - cum_s), zero above diagonal
        d_c = d_c + d_scores @ b
        d_b = d_b + _t(d_scores) @ c
        d_cum = _t(d_decay.sum(-1) - d_decay.sum(-2)) + d_enter - d_end
        d_cum[:, :, -1] += d_end.sum(2) + d_tail * tail[..., 0]
        return d_xs, d_cum, d_b, d_c, None, None, None, None


def chunk_ssd(x, dt, a, b, c, chunk: int = 64, segments=None):
    """Chunked form of the SSD recurrence, equal to it up to rounding.

    x [B, T, H, P], dt [B, T, H] (> 0), a [H] (< 0), b, c [B, T, N] (one group);
    ``segments`` [B, T] packed segment ids (the state restarts at each start) or None.
    Under autocast the kernel runs in float32 and returns x's dtype; on CUDA mamba-ssm's
    kernels do the bf16 work.
    """
    out_dtype = x.dtype
    if autocast_dtype(x) is not None:
        x, dt, a, b, c = (v.float() for v in (x, dt, a, b, c))
    batch, t, h, p = x.shape
    chunk = min(chunk, t)
    pad = (-t) % chunk
    if pad:
        x, b, c = (F.pad(v, (0, 0) * (v.dim() - 2) + (0, pad)) for v in (x, b, c))
        dt = F.pad(dt, (0, 0, 0, pad))
    n = (t + pad) // chunk
    xs = (x * dt[..., None]).view(batch, n, chunk, h, p)
    cum = (dt * a).view(batch, n, chunk, h).cumsum(2)
    masks = (None,) * 4 if segments is None else chunk_masks(pad_segments(segments, pad), chunk)
    y = _ChunkSSD.apply(xs, cum, b.reshape(batch, n, chunk, -1).contiguous(),
                        c.reshape(batch, n, chunk, -1).contiguous(), *masks)
    return y.reshape(batch, n * chunk, h, p)[:, :t].to(out_dtype)
