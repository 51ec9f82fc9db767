"""Chunked gated delta rule with a hand-written backward (one ``autograd.Function``).

Per chunk of C positions (batched over batch, heads and chunks), with G the within-chunk
cumulative log-decay, gamma = exp(G) and D[l, s] = exp(G_l - G_s) for s <= l (else 0):

    T = (I + strict_tril((diag(beta) K) K^T * D))^-1        (the WY form of the updates)
    U = T (beta * V),  W = T (beta * gamma * K),  P = (Q K^T) * D
    per chunk i:  V'_i = U_i - W_i S_i,   S_{i+1} = exp(G_last) S_i + (K * exp(G_last - G))^T V'_i
    O = (Q * gamma) S + P V'

With packed segments, every term that would cross a segment boundary is masked (D, gamma,
exp(G_last - G) and exp(G_last) set to zero, i.e. the log-decay -inf across the boundary
without ever forming it): the state restarts at each segment start, and the backward, whose
derivative terms are products with the same factors, needs no change.

Autograd through this graph spends its time on zero-filled gradients of per-chunk slices,
copies for concatenations and the triangular solve's backward; the backward below is the
same chain rule written with batched matmuls only (the solve's backward is
-dR X^T with dR = T^T dX), one short reverse loop over chunks for the state gradient. Tested against
autograd of the step-by-step recurrence and with ``gradcheck``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from convergent.train.models.amp import autocast_dtype, without_autocast
from convergent.train.models.segments import chunk_masks, pad_segments


def _t(x: torch.Tensor) -> torch.Tensor:
    return x.transpose(-1, -2)


class _ChunkGatedDelta(torch.autograd.Function):
    """q, k [B, H, n, C, Dk], v [B, H, n, C, Dv], g, beta [B, H, n, C] -> o [B, H, n, C, Dv];
    ``masks`` (:class:`~convergent.train.models.segments.ChunkMasks` fields, [B, n, ...])
    or None."""

    @staticmethod
    @without_autocast
    def forward(ctx, q, k, v, g, beta, same, from_prev, to_last, through):
        b, h, n, c, dk = k.shape
        dv = v.shape[-1]
        lower = torch.ones(c, c, dtype=torch.bool, device=q.device).tril()
        cum = g.cumsum(-1)
        gamma = cum.exp()
        to_end = (cum[..., -1:] - cum).exp()
        tail = cum[..., -1:, None].exp()  # [B, H, n, 1, 1]
        if same is not None:  # packed segments: nothing crosses a segment start
            lower = lower & same[:, None]
            gamma.masked_fill_(~from_prev[:, None], 0.0)
            to_end.masked_fill_(~to_last[:, None], 0.0)
            tail = tail.masked_fill(~through[:, None, :, None, None], 0.0)
        decay = (cum[..., :, None] - cum[..., None, :]).masked_fill_(~lower, float("-inf")).exp_()
        kb = k * beta[..., None]
        kk = kb @ _t(k)
        system = (kk * decay).tril_(-1)
        system.diagonal(dim1=-2, dim2=-1).fill_(1.0)
        eye = torch.eye(c, dtype=q.dtype, device=q.device)
        inv = torch.linalg.solve_triangular(system, eye, upper=False, unitriangular=True)
        rhs = torch.cat((v * beta[..., None], kb * gamma[..., None]), dim=-1)
        uw = inv @ rhs
        u, w = uw.split([dv, dk], dim=-1)
        qk = q @ _t(k)
        p = qk * decay
        qd = q * gamma[..., None]
        kt = k * to_end[..., None]
        state, entering, written = q.new_zeros(b * h, dk, dv), [], []
        for i in range(n):  # the only sequential part: n = T / C steps
            entering.append(state)
            v_new_i = torch.baddbmm(u[:, :, i].flatten(0, 1), w[:, :, i].flatten(0, 1), state,
                                    alpha=-1)
            written.append(v_new_i)
            state = torch.baddbmm(state * tail[:, :, i].flatten(0, 1),
                                  _t(kt[:, :, i]).flatten(0, 1), v_new_i)
        states = torch.stack(entering, dim=1).view(b, h, n, dk, dv)
        v_new = torch.stack(written, dim=1).view(b, h, n, c, dv)
        out = qd @ states + p @ v_new
        ctx.save_for_backward(q, k, v, beta, gamma, to_end, tail, decay, kb, kk, inv, uw, qk,
                              p, qd, kt, w, v_new, states)
        return out

    @staticmethod
    @without_autocast
    def backward(ctx, d_out):
        (q, k, v, beta, gamma, to_end, tail, decay, kb, kk, inv, uw, qk, p, qd, kt, w, v_new,
         states) = ctx.saved_tensors
        dv = v_new.shape[-1]
        d_p = d_out @ _t(v_new)
        d_qd = d_out @ _t(states)
        d_v_new = _t(p) @ d_out
        d_state_out = _t(qd) @ d_out  # gradient reaching S_i through O_i
        d_next = torch.empty_like(states)  # gradient wrt the state leaving each chunk
        d_state = torch.zeros_like(states[:, :, 0])
        for i in range(states.shape[2] - 1, -1, -1):
            d_next[:, :, i] = d_state
            d_v_new[:, :, i] += kt[:, :, i] @ d_state
            d_state = d_state * tail[:, :, i] + d_state_out[:, :, i] - _t(w[:, :, i]) @ d_v_new[
                :, :, i]
        d_kt = v_new @ _t(d_next)
        d_tail = (states * d_next).sum((-1, -2))
        d_uw = torch.cat((d_v_new, -(d_v_new @ _t(states))), dim=-1)  # dU, dW
        d_rhs = _t(inv) @ d_uw
        d_rv, d_rk = d_rhs[..., :dv], d_rhs[..., dv:]
        d_system = (d_rhs @ _t(uw)).tril_(-1).neg_()  # X = A^-1 R: dA = -(A^-T dX) X^T
        d_kk = d_system * decay
        d_qk = d_p * decay
        d_decay = (d_system * kk + d_p * qk) * decay  # d(exp) folded in
        d_kb = d_kk @ k + d_rk * gamma[..., None]
        d_q = d_qk @ k + d_qd * gamma[..., None]
        d_k = _t(d_qk) @ q + _t(d_kk) @ kb + d_kt * to_end[..., None] + d_kb * beta[..., None]
        d_beta = (d_kb * k).sum(-1) + (d_rv * v).sum(-1)
        d_v = d_rv * beta[..., None]
        d_gamma = (d_qd * q).sum(-1) + (d_rk * kb).sum(-1)
        d_end = (d_kt * kt).sum(-1)  # d/d(cum_last - cum) of exp(cum_last - cum) terms
        d_cum = d_decay.sum(-1) - d_decay.sum(-2) + d_gamma * gamma - d_end
        d_cum[..., -1] += d_end.sum(-1) + d_tail * tail[..., 0, 0]
        return (d_q, d_k, d_v, d_cum.flip(-1).cumsum(-1).flip(-1), d_beta, None, None, None,
                None)


def chunk_gated_delta_rule(q, k, v, g, beta, chunk: int = 64, segments=None):
    """Chunked parallel form of the gated delta rule, equal to the recurrence up to rounding.

    q, k [B, H, T, Dk], v [B, H, T, Dv], g (log-decay, <= 0), beta [B, H, T]; ``segments``
    [B, T] packed segment ids (the state restarts at each segment start) or None. Under
    autocast the kernel runs in float32 (state and decays included) and returns v's dtype;
    on CUDA the fla kernels do the bf16 work.
    """
    b, h, t, _ = k.shape
    out_dtype = v.dtype
    if autocast_dtype(v) is not None:
        q, k, v, g, beta = (x.float() for x in (q, k, v, g, beta))
    chunk = min(chunk, t)
    pad = (-t) % chunk
    if pad:
        q, k, v = (F.pad(x, (0, 0, 0, pad)) for x in (q, k, v))
        g, beta = F.pad(g, (0, pad)), F.pad(beta, (0, pad))
    n = (t + pad) // chunk
    masks = (None,) * 4 if segments is None else chunk_masks(pad_segments(segments, pad), chunk)
    q, k, v = (x.reshape(b, h, n, chunk, -1).contiguous() for x in (q, k, v))
    out = _ChunkGatedDelta.apply(q, k, v, g.reshape(b, h, n, chunk).contiguous(),
                                 beta.reshape(b, h, n, chunk).contiguous(), *masks)
    return out.reshape(b, h, n * chunk, -1)[:, :, :t].to(out_dtype)
