"""Mamba-2 (Dao & Gu 2024) in plain PyTorch: the SSD layer with a scalar decay per head.

Per head, with state h [P, N], step size dt_t > 0 and A < 0:
    h_t = exp(dt_t A) h_{t-1} + dt_t x_t B_t^T,   y_t = h_t C_t + D x_t
:func:`recurrent_ssd` runs this step by step (the reference);
:func:`~convergent.train.models.ssd.chunk_ssd` is the chunked "state space duality" form
(quadratic within chunks, a scan over chunk states) with a hand-written backward. The
block is Mamba-2's: in-projection to z, x, B, C, dt; a short causal convolution on
(x, B, C); SiLU; SSD; RMSNorm(y * SiLU(z)); out-projection.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from convergent.train.config import ModelConfig
from convergent.train.models.common import (
    CausalConv,
    LanguageModel,
    Residual,
    head_dim,
    run_recurrence,
)
from convergent.train.models.ssd import chunk_ssd

__all__ = ["Mamba2", "chunk_ssd", "recurrent_ssd"]


def recurrent_ssd(x, dt, a, b, c, segments=None):
    """Reference. x [B, T, H, P], dt [B, T, H], a [H], b, c [B, T, N] (one group);
    ``segments`` [B, T] packed segment ids (the state restarts at each start) or None."""
    batch, t, h, p = x.shape
    state = x.new_zeros(batch, h, p, b.shape[-1])
    outs = []
    for i in range(t):
        decay = (dt[:, i] * a).exp()[..., None, None]
        if segments is not None and i:
            decay = decay * (segments[:, i] == segments[:, i - 1])[:, None, None, None]
        state = state * decay + (dt[:, i, :, None] * x[:, i])[..., None] * b[:, i, None, None, :]
        outs.append((state * c[:, i, None, None, :]).sum(-1))
    return torch.stack(outs, dim=1)


class Mamba2(nn.Module):
    """The Mamba-2 mixer (one B/C group); ``mode`` picks the chunked or recurrent kernel."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.inner = config.expand * config.d_model
        self.dim = head_dim(config)
        if self.inner % self.dim:
            raise ValueError(f"expand x d_model = {self.inner} not divisible by head_dim")
        self.heads, self.state = self.inner // self.dim, config.d_state
        self.chunk, self.mode = config.chunk_size, "chunk"
        conv_width = self.inner + 2 * self.state
        self.in_proj = nn.Linear(config.d_model, self.inner + conv_width + self.heads, bias=False)
        self.conv = CausalConv(conv_width, config.conv_size)
        self.A_log = nn.Parameter(torch.zeros(self.heads))
        self.dt_bias = nn.Parameter(torch.zeros(self.heads))
        self.D = nn.Parameter(torch.ones(self.heads))
        self.out_norm = nn.RMSNorm(self.inner, eps=config.norm_eps)
        self.out_proj = nn.Linear(self.inner, config.d_model, bias=False)

    def reset_special(self) -> None:
        with torch.no_grad():
            self.A_log.copy_(torch.empty(self.heads).uniform_(1, 16).log())
            dt = torch.exp(torch.empty(self.heads).uniform_(math.log(1e-3), math.log(1e-1)))
            self.dt_bias.copy_(dt + torch.log(-torch.expm1(-dt)))
            self.D.fill_(1.0)

    def forward(self, u: torch.Tensor, segments: torch.Tensor | None = None) -> torch.Tensor:
        """[B, T, d] -> [B, T, d]; with packed ``segments`` [B, T] the convolution and the
        state restart at each segment start. On CUDA, mamba-ssm's kernel when installed."""
        bsz, t, _ = u.shape
        z, xbc, dt = self.in_proj(u).split([self.inner, self.inner + 2 * self.state,
                                            self.heads], dim=-1)
        x, b, c = F.silu(self.conv(xbc, segments)).split([self.inner, self.state, self.state],
                                                         dim=-1)
        x = x.reshape(bsz, t, self.heads, self.dim)
        dt = F.softplus(dt + self.dt_bias)
        a = -self.A_log.exp()
        y = run_recurrence(self.mode, "ssd", chunk_ssd, recurrent_ssd, (x, dt, a, b, c),
                           self.chunk, segments) + x * self.D[:, None]
        y = self.out_norm(y.reshape(bsz, t, self.inner) * F.silu(z))
        return self.out_proj(y)


def build(config: ModelConfig, vocab_size: int) -> LanguageModel:
    layers = [Residual(config.d_model, config.norm_eps, Mamba2(config))
              for _ in range(config.n_layers)]
    return LanguageModel(config, vocab_size, nn.Sequential(*layers))
