"""Pieces shared by the model families: the LM shell, SwiGLU, causal depthwise conv, init."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from convergent.train.config import ModelConfig
from convergent.train.models.conv import causal_depthwise_conv
from convergent.train.models.head_loss import linear_cross_entropy
from convergent.train.models.segments import check_segments


def ffn_width(config: ModelConfig) -> int:
    """``d_ff`` or Llama's 8/3 x width, rounded up to a multiple of 32."""
    if config.d_ff:
        return config.d_ff
    return int(math.ceil(8 * config.d_model / 3 / 32) * 32)


def head_dim(config: ModelConfig) -> int:
    return config.head_dim or config.d_model // config.n_heads


class SwiGLU(nn.Module):
    def __init__(self, d_model: int, d_ff: int) -> None:
        super().__init__()
        self.gate_up = nn.Linear(d_model, 2 * d_ff, bias=False)
        self.down = nn.Linear(d_ff, d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up(x).chunk(2, dim=-1)
        return self.down(F.silu(gate) * up)


def run_recurrence(mode: str, library: str, chunked: Callable[..., torch.Tensor],
                   recurrent: Callable[..., torch.Tensor], args: tuple[torch.Tensor, ...],
                   chunk: int, segments: torch.Tensor | None) -> torch.Tensor:
    """A linear-RNN mixer's kernel on ``args``: the step-by-step reference in ``recurrent``
    mode; else on CUDA ``gpu_kernels.<library>`` when it serves (imported there only),
    falling back to our ``chunked`` kernel."""
    if mode != "chunk":
        return recurrent(*args, segments)
    if args[0].is_cuda:
        from convergent.train.models import gpu_kernels

        out = getattr(gpu_kernels, library)(*args, segments)
        if out is not None:
            return out
    return chunked(*args, chunk, segments)


class CausalConv(nn.Module):
    """Depthwise causal 1-D convolution over time on [B, T, C] inputs.

    The parameters live in an ``nn.Conv1d`` (names and init as before); the computation is
    :func:`~convergent.train.models.conv.causal_depthwise_conv` in the [B, T, C] layout.
    """

    def __init__(self, channels: int, kernel: int) -> None:
        super().__init__()
        self.kernel = kernel
        self.conv = nn.Conv1d(channels, channels, kernel, groups=channels, padding=kernel - 1)

    def forward(self, x: torch.Tensor, segments: torch.Tensor | None = None) -> torch.Tensor:
        """With packed ``segments`` [B, T], restarts at each segment start. On CUDA,
        causal-conv1d's kernel when installed."""
        weight, bias = self.conv.weight[:, 0], self.conv.bias
        if x.is_cuda:
            from convergent.train.models import gpu_kernels

            y = gpu_kernels.causal_conv(x, weight, bias, segments)
            if y is not None:
                return y
        return causal_depthwise_conv(x, weight, bias, segments)


class LanguageModel(nn.Module):
    """Embedding -> ``blocks`` (each maps [B, T, d] -> [B, T, d]) -> RMSNorm -> head.

    Weight names are fixed for every family: ``embed.weight`` (input embedding) and
    ``head.weight`` (output embedding; absent when tied, then the head is ``embed.weight``).
    ``segments`` [B, T] (optional, everywhere) are packed document ids of the input
    positions, non-decreasing along a row; positions of different segments never see each
    other. With ``activation_checkpointing`` set, training recomputes each block in the
    backward pass (``torch.utils.checkpoint``, non-reentrant) instead of keeping its
    activations; the LSTM stack counts as one block.
    """

    def __init__(self, config: ModelConfig, vocab_size: int, blocks: nn.Module) -> None:
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(vocab_size, config.d_model)
        self.blocks = blocks
        self.norm = nn.RMSNorm(config.d_model, eps=config.norm_eps)
        self.head = None if config.tie_embeddings else nn.Linear(
            config.d_model, vocab_size, bias=False)
        self.activation_checkpointing = False
        self.reset_parameters()

    def reset_parameters(self) -> None:
        std = self.config.init_std
        for name, module in self.named_modules():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=std)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
                if name.endswith(("out_proj", "down", "o_proj")):
                    module.weight.data /= math.sqrt(2 * self.config.n_layers)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, std=std)
        for module in self.modules():
            reset = getattr(module, "reset_special", None)
            if reset is not None:
                reset()

    def trunk(self, ids: torch.Tensor, segments: torch.Tensor | None = None) -> torch.Tensor:
        """The blocks' output [B, T, d] (before the final norm) for token ids [B, T]."""
        x = self.embed(ids)
        if segments is not None:
            segments = check_segments(segments, tuple(ids.shape))
        recompute = self.activation_checkpointing and self.training and torch.is_grad_enabled()
        blocks = self.blocks if isinstance(self.blocks, nn.Sequential) else (self.blocks,)
        for block in blocks:
            if recompute:
                x = checkpoint(block, x, segments, use_reentrant=False)
            elif segments is None:
                x = block(x)
            else:
                x = block(x, segments)
        return x

    def hidden(self, ids: torch.Tensor, segments: torch.Tensor | None = None) -> torch.Tensor:
        return self.norm(self.trunk(ids, segments))

    def forward(self, ids: torch.Tensor, segments: torch.Tensor | None = None) -> torch.Tensor:
        """Logits [B, T, V] for token ids [B, T]."""
        return self.logits(self.hidden(ids, segments))

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        """The output head on final-norm states ``h`` [..., d]."""
        return self.head(h) if self.head is not None else h @ self.embed.weight.T

    def loss(self, tokens: torch.Tensor, mask: torch.Tensor | None = None,
             segments: torch.Tensor | None = None) -> torch.Tensor:
        """Mean next-token cross-entropy over ``tokens`` [B, L+1] (``mask`` [B, L] selects).

        ``segments`` [B, L] are the packed segment ids of the inputs ``tokens[:, :-1]``.
        With a mask the head runs only on the selected positions; the value equals the
        full-logits masked mean. The head and the softmax run fused in row blocks
        (:func:`~convergent.train.models.head_loss.linear_cross_entropy`); the loss is
        float32 under autocast.
        """
        h = self.trunk(tokens[:, :-1], segments)
        targets = tokens[:, 1:]
        if mask is None:
            h, targets = h.reshape(-1, h.shape[-1]), targets.reshape(-1)
        else:
            h, targets = h[mask], targets[mask]
        weight = self.head.weight if self.head is not None else self.embed.weight
        return linear_cross_entropy(self.norm(h), weight, targets)


class Residual(nn.Module):
    """Pre-norm residual: x + f(norm(x))."""

    def __init__(self, d_model: int, eps: float, inner: nn.Module) -> None:
        super().__init__()
        self.norm = nn.RMSNorm(d_model, eps=eps)
        self.inner = inner

    def forward(self, x: torch.Tensor, segments: torch.Tensor | None = None) -> torch.Tensor:
        if segments is None:
            return x + self.inner(self.norm(x))
        return x + self.inner(self.norm(x), segments)
