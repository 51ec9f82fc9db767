"""Gated DeltaNet (Yang, Kautz & Hatamizadeh 2024) in plain PyTorch.

Per head, with state S [d_k, d_v], log-decay g_t <= 0 and write strength beta_t in (0, 1):
    S_t = exp(g_t) S_{t-1} + k_t (beta_t (v_t - S^T_{t-1,decayed} k_t))^T,   o_t = S_t^T q_t
:func:`recurrent_gated_delta_rule` runs this step by step (the reference);
:func:`~convergent.train.models.gated_delta.chunk_gated_delta_rule` is the chunked parallel
(WY) form used for training, with a hand-written backward. The
layer follows the paper / Qwen3-Next: short causal convolutions on q, k, v, L2-normalized
q and k, output RMSNorm gated by SiLU(W_g x), then a SwiGLU MLP per block.
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
    SwiGLU,
    ffn_width,
    head_dim,
    run_recurrence,
)
from convergent.train.models.gated_delta import chunk_gated_delta_rule

__all__ = ["GatedDeltaNet", "chunk_gated_delta_rule", "recurrent_gated_delta_rule"]


def recurrent_gated_delta_rule(q, k, v, g, beta, segments=None):
    """Step-by-step reference. q, k [B, H, T, Dk], v [B, H, T, Dv], g, beta [B, H, T];
    ``segments`` [B, T] packed segment ids (the state restarts at each start) or None."""
    b, h, t, dk = k.shape
    state = q.new_zeros(b, h, dk, v.shape[-1])
    outs = []
    for i in range(t):
        state = state * g[:, :, i].exp()[..., None, None]
        if segments is not None and i:
            state = state * (segments[:, i] == segments[:, i - 1])[:, None, None, None]
        memory = (state * k[:, :, i, :, None]).sum(-2)
        delta = (v[:, :, i] - memory) * beta[:, :, i, None]
        state = state + k[:, :, i, :, None] * delta[:, :, None, :]
        outs.append((state * q[:, :, i, :, None]).sum(-2))
    return torch.stack(outs, dim=2)


class GatedDeltaNet(nn.Module):
    """The token mixer; ``mode`` picks the chunked (default) or the recurrent kernel."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.heads, self.dim = config.n_heads, head_dim(config)
        self.chunk, self.mode = config.chunk_size, "chunk"
        inner = self.heads * self.dim
        self.qkv = nn.Linear(config.d_model, 3 * inner, bias=False)
        self.conv = CausalConv(3 * inner, config.conv_size)
        self.gates = nn.Linear(config.d_model, 2 * self.heads, bias=False)  # decay, beta
        self.gate_out = nn.Linear(config.d_model, inner, bias=False)
        self.A_log = nn.Parameter(torch.zeros(self.heads))
        self.dt_bias = nn.Parameter(torch.zeros(self.heads))
        self.out_norm = nn.RMSNorm(self.dim, eps=config.norm_eps)
        self.out_proj = nn.Linear(inner, config.d_model, bias=False)

    def reset_special(self) -> None:
        """Mamba-style gate init: A in [1, 16], dt in [1e-3, 1e-1] (log-uniform)."""
        with torch.no_grad():
            self.A_log.copy_(torch.empty(self.heads).uniform_(1, 16).log())
            dt = torch.exp(torch.empty(self.heads).uniform_(math.log(1e-3), math.log(1e-1)))
            self.dt_bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # inverse softplus

    def forward(self, x: torch.Tensor, segments: torch.Tensor | None = None) -> torch.Tensor:
        """[B, T, d] -> [B, T, d]; with packed ``segments`` [B, T] the convolution and the
        state restart at each segment start. On CUDA, the fla kernel when installed."""
        b, t, _ = x.shape
        qkv = F.silu(self.conv(self.qkv(x), segments))
        q, k, v = qkv.view(b, t, 3, self.heads, self.dim).permute(2, 0, 3, 1, 4)
        q = F.normalize(q, dim=-1) / math.sqrt(self.dim)
        k = F.normalize(k, dim=-1)
        decay, write = self.gates(x).float().transpose(1, 2).chunk(2, dim=1)
        g = -self.A_log.float().exp()[:, None] * F.softplus(decay + self.dt_bias[:, None])
        beta = write.sigmoid()
        o = run_recurrence(self.mode, "gated_delta_rule", chunk_gated_delta_rule,
                           recurrent_gated_delta_rule, (q, k, v, g, beta), self.chunk, segments)
        o = self.out_norm(o.transpose(1, 2)) * F.silu(self.gate_out(x)).view(
            b, t, self.heads, self.dim)
        return self.out_proj(o.reshape(b, t, -1))


class Block(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.mixer = Residual(config.d_model, config.norm_eps, GatedDeltaNet(config))
        self.mlp = Residual(config.d_model, config.norm_eps,
                            SwiGLU(config.d_model, ffn_width(config)))

    def forward(self, x: torch.Tensor, segments: torch.Tensor | None = None) -> torch.Tensor:
        return self.mlp(self.mixer(x, segments))


def build(config: ModelConfig, vocab_size: int) -> LanguageModel:
    return LanguageModel(config, vocab_size,
                         nn.Sequential(*[Block(config) for _ in range(config.n_layers)]))
