"""Muon's Newton-Schulz step in float32 on CPU (a scoped patch of ``torch.optim.Muon``).

``torch.optim.Muon`` orthogonalises every update in bfloat16, which on CPUs without bf16
matrix units is several times slower than float32 (``benchmarks/bench_addition.py``
measures it). :func:`float32_newton_schulz` swaps in the same quintic iteration, with the
same coefficients and steps, computed in float32, for the duration of a ``with`` block.
The result differs from torch's only by bfloat16 rounding. Requested upstream in
``convergent.train.optim`` (see docs/addition.md); until then task runs use this patch.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


def newton_schulz_float32(grad: torch.Tensor, ns_coefficients: tuple[float, float, float],
                          ns_steps: int, eps: float) -> torch.Tensor:
    """torch's ``_zeropower_via_newtonschulz`` with float32 instead of bfloat16 arithmetic."""
    if ns_steps >= 100:
        raise ValueError("Number of steps must be less than 100 for computational efficiency")
    if grad.ndim != 2:
        raise ValueError("Input tensor gradient must be a 2D matrix")
    a, b, c = ns_coefficients
    x = grad.float()
    tall = grad.size(0) > grad.size(1)
    if tall:
        x = x.T
    x = x / x.norm().clamp(min=eps)
    for _ in range(ns_steps):
        gram = x @ x.T
        update = torch.addmm(gram, gram, gram, beta=b, alpha=c)
        x = torch.addmm(x, update, x, beta=a)
    return (x.T if tall else x).to(grad.dtype)


@contextmanager
def float32_newton_schulz(enabled: bool = True) -> Iterator[None]:
    """Within the block, ``torch.optim.Muon`` orthogonalises in float32 (CPU speed-up)."""
    from torch.optim import _muon

    original = _muon._zeropower_via_newtonschulz
    if enabled:
        _muon._zeropower_via_newtonschulz = newton_schulz_float32
    try:
        yield
    finally:
        _muon._zeropower_via_newtonschulz = original
