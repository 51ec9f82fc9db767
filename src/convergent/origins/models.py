"""Next-token models for the latent-concept simulator: logits(x, y) = f(x)^T g(y).

- :class:`LogLinear`: f(x) is a free vector per context id (the paper's log-linear model).
- :class:`NeuralEncoder`: f(x) is a small MLP of the context's revealed concept values.

Both have an unembedding table g [n_tokens, d] without bias, and draw every weight from
N(0, init_scale^2) with a seeded generator, so small ``init_scale`` starts near the origin,
where the implicit bias of gradient descent matters most.
"""

from __future__ import annotations

import numpy as np
import torch

from convergent.errors import ConvergentError
from convergent.origins.simulator import context_features

MODEL_KINDS = ("loglinear", "neural")


def build_model(
    kind: str,
    m: int,
    dim: int,
    *,
    init_scale: float = 0.01,
    hidden: int = 64,
    seed: int = 0,
) -> torch.nn.Module:
    """A next-token model for m concepts in dimension ``dim`` (see module docstring)."""
    if dim < 1:
        raise ConvergentError(f"dimension must be positive, got {dim}")
    if init_scale <= 0:
        raise ConvergentError(f"init scale must be positive, got {init_scale}")
    generator = torch.Generator().manual_seed(seed)
    if kind == "loglinear":
        return LogLinear(m, dim, init_scale, generator)
    if kind == "neural":
        if hidden < 1:
            raise ConvergentError(f"hidden width must be positive, got {hidden}")
        return NeuralEncoder(m, dim, hidden, init_scale, generator)
    raise ConvergentError(f"unknown model {kind!r}; choose one of {', '.join(MODEL_KINDS)}")


def _normal(shape: tuple[int, ...], scale: float, generator: torch.Generator) -> torch.Tensor:
    return torch.randn(shape, generator=generator) * scale


class _NextTokenModel(torch.nn.Module):
    """Shared parts: the unembedding g and logits of context ids."""

    g: torch.nn.Parameter

    def embed(self, contexts: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def unembeddings(self) -> torch.Tensor:
        return self.g

    def logits(self, contexts: torch.Tensor) -> torch.Tensor:
        return self.embed(contexts) @ self.g.T

    def forward(self, contexts: torch.Tensor) -> torch.Tensor:
        return self.logits(contexts)


class LogLinear(_NextTokenModel):
    """f: one free d-vector per context id (3^m rows), g: one per token (2^m rows)."""

    def __init__(self, m: int, dim: int, init_scale: float, generator: torch.Generator) -> None:
        super().__init__()
        self.m = m
        self.f = torch.nn.Parameter(_normal((3**m, dim), init_scale, generator))
        self.g = torch.nn.Parameter(_normal((2**m, dim), init_scale, generator))

    def embed(self, contexts: torch.Tensor) -> torch.Tensor:
        return self.f[contexts]


class NeuralEncoder(_NextTokenModel):
    """f(x) = W2 gelu(W1 onehot(x) + b1) + b2 over 2m revealed-value features; g a table."""

    def __init__(
        self, m: int, dim: int, hidden: int, init_scale: float, generator: torch.Generator
    ) -> None:
        super().__init__()
        self.m = m
        states = (np.arange(3**m)[:, None] // 3 ** np.arange(m)) % 3
        self.register_buffer("features", torch.from_numpy(context_features(states)))
        # The encoder's first layer uses a fan-in scale so hidden units are O(1); the output
        # layer and g use init_scale, so f and g both start small.
        self.w1 = torch.nn.Parameter(_normal((hidden, 2 * m), (2 * m) ** -0.5, generator))
        self.b1 = torch.nn.Parameter(torch.zeros(hidden))
        self.w2 = torch.nn.Parameter(_normal((dim, hidden), init_scale, generator))
        self.b2 = torch.nn.Parameter(torch.zeros(dim))
        self.g = torch.nn.Parameter(_normal((2**m, dim), init_scale, generator))

    def embed(self, contexts: torch.Tensor) -> torch.Tensor:
        h = torch.nn.functional.gelu(self.features[contexts] @ self.w1.T + self.b1)
        return h @ self.w2.T + self.b2
