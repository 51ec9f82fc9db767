"""Llama-style Transformer: RMSNorm, rotary positions, SwiGLU, causal SDPA."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from convergent.train.config import ModelConfig
from convergent.train.models.common import LanguageModel, Residual, SwiGLU, ffn_width, head_dim


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotary embedding (Llama's rotate-half convention) of x [B, H, T, D]."""
    first, second = x.chunk(2, dim=-1)
    return x * cos + torch.cat((-second, first), dim=-1) * sin


class Attention(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.heads, self.dim = config.n_heads, head_dim(config)
        self.theta = config.rope_theta
        self.qkv = nn.Linear(config.d_model, 3 * self.heads * self.dim, bias=False)
        self.o_proj = nn.Linear(self.heads * self.dim, config.d_model, bias=False)
        self._cache: tuple[int, torch.Tensor, torch.Tensor] | None = None

    def _rope(self, t: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        if self._cache is None or self._cache[0] < t or self._cache[1].device != device:
            inv = 1.0 / self.theta ** (torch.arange(0, self.dim, 2, device=device) / self.dim)
            angles = torch.outer(torch.arange(t, device=device, dtype=torch.float32), inv)
            angles = torch.cat((angles, angles), dim=-1)
            self._cache = (t, angles.cos(), angles.sin())
        return self._cache[1][:t], self._cache[2][:t]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, self.dim).permute(2, 0, 3, 1, 4)
        cos, sin = self._rope(t, x.device)
        q, k = rotate(q, cos.to(q.dtype), sin.to(q.dtype)), rotate(k, cos.to(k.dtype),
                                                                  sin.to(k.dtype))
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.o_proj(out.transpose(1, 2).reshape(b, t, self.heads * self.dim))


class Block(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.attn = Residual(config.d_model, config.norm_eps, Attention(config))
        self.mlp = Residual(config.d_model, config.norm_eps,
                            SwiGLU(config.d_model, ffn_width(config)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.attn(x))


def build(config: ModelConfig, vocab_size: int) -> LanguageModel:
    return LanguageModel(config, vocab_size,
                         nn.Sequential(*[Block(config) for _ in range(config.n_layers)]))
