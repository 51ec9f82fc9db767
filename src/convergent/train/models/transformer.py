"""Llama-style Transformer: RMSNorm, rotary positions, SwiGLU, causal SDPA."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from convergent.train.config import ModelConfig
from convergent.train.models.amp import without_autocast
from convergent.train.models.common import LanguageModel, Residual, SwiGLU, ffn_width, head_dim
from convergent.train.models.segments import attention_mask, positions


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotary embedding (Llama's rotate-half convention) of x [B, H, T, D]."""
    first, second = x.chunk(2, dim=-1)
    return x * cos + torch.cat((-second, first), dim=-1) * sin


def _turn(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
          out: torch.Tensor) -> torch.Tensor:
    """Rotate-half rotation of x by angles with ``cos``/``sin`` [..., D/2] into ``out``."""
    half = x.shape[-1] // 2
    first, second = x[..., :half], x[..., half:]
    torch.mul(first, cos, out=out[..., :half]).addcmul_(second, sin, value=-1)
    torch.mul(second, cos, out=out[..., half:]).addcmul_(first, sin)
    return out


class _Rope(torch.autograd.Function):
    """:func:`rotate` of q and k from the qkv projection [B, T, 2, H, D] at once, written
    straight into the [2, B, H, T, D] layout attention wants, without the concatenation and
    negation copies; the backward is the rotation by the opposite angles. ``cos``/``sin``
    are [T, 1, 1, D/2] or, with packed segments, [B, T, 1, 1, D/2]; everything runs in x's
    dtype (bf16 under autocast, as Hugging Face's Llama rotates)."""

    @staticmethod
    @without_autocast
    def forward(ctx, x, cos, sin):
        ctx.save_for_backward(cos, sin)
        b, t, two, h, d = x.shape
        out = x.new_empty(two, b, h, t, d)
        return _turn(x, cos, sin, out.permute(1, 3, 0, 2, 4)).permute(2, 0, 3, 1, 4)

    @staticmethod
    @without_autocast
    def backward(ctx, grad):
        cos, sin = ctx.saved_tensors
        grad = grad.permute(1, 3, 0, 2, 4)  # back to [B, T, 2, H, D]
        return _turn(grad, cos, -sin, torch.empty(grad.shape, dtype=grad.dtype,
                                                  device=grad.device)), None, None


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
            self._cache = (t, angles.cos()[:, None, None], angles.sin()[:, None, None])
        return self._cache[1][:t], self._cache[2][:t]  # [T, 1, 1, D/2]

    def forward(self, x: torch.Tensor, segments: torch.Tensor | None = None) -> torch.Tensor:
        """Causal attention; with packed ``segments`` [B, T], block-diagonal causal attention
        with rotary positions restarting at each segment start (SDPA with a boolean mask)."""
        b, t, _ = x.shape
        qkv = self.qkv(x).view(b, t, 3, self.heads, self.dim)
        cos, sin = self._rope(t, x.device)
        if segments is not None:  # [B, T, 1, 1, D/2] at the positions within segments
            at = positions(segments)
            cos, sin = cos[at], sin[at]
        cos, sin = cos.to(qkv.dtype), sin.to(qkv.dtype)
        if torch.compiler.is_compiling():  # Inductor fuses the plain form itself
            cos, sin = (torch.cat((c[..., 0, 0, :], c[..., 0, 0, :]), dim=-1).unsqueeze(-3)
                        for c in (cos, sin))  # [(B,) 1, T, D]
            q, k = rotate(qkv[:, :, :2].permute(2, 0, 3, 1, 4), cos, sin)
        else:
            q, k = _Rope.apply(qkv[:, :, :2], cos, sin)
        v = qkv[:, :, 2].transpose(1, 2)
        if segments is None:
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=attention_mask(segments))
        return self.o_proj(out.transpose(1, 2).reshape(b, t, self.heads * self.dim))


class Block(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.attn = Residual(config.d_model, config.norm_eps, Attention(config))
        self.mlp = Residual(config.d_model, config.norm_eps,
                            SwiGLU(config.d_model, ffn_width(config)))

    def forward(self, x: torch.Tensor, segments: torch.Tensor | None = None) -> torch.Tensor:
        return self.mlp(self.attn(x, segments))


def build(config: ModelConfig, vocab_size: int) -> LanguageModel:
    return LanguageModel(config, vocab_size,
                         nn.Sequential(*[Block(config) for _ in range(config.n_layers)]))
