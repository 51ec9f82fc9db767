"""Muon with a float32 Newton-Schulz step on CPU.

``torch.optim.Muon`` orthogonalises every update in bfloat16. On CPUs without bf16 matrix
units that is 4.5-6x slower per training step than the same iteration in float32
(``benchmarks/bench_addition.py`` measures it), and it gains nothing in accuracy.
torch 2.13's ``Muon`` takes no custom orthogonalisation function, so :class:`Muon` is a
subclass whose ``step`` repeats torch's single-tensor update (same momentum, Nesterov
blend, decoupled weight decay, learning-rate adjustment and state layout, so checkpoints
interchange) and picks the orthogonaliser per tensor: float32 on CPU, torch's own bfloat16
one elsewhere (CUDA has fast bf16 matrix units). ``tests/test_train_muon.py`` checks that
with ``float32=False`` the update is bit-identical to ``torch.optim.Muon``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.optim import _muon


def newton_schulz_float32(grad: torch.Tensor, ns_coefficients: tuple[float, float, float],
                          ns_steps: int, eps: float) -> torch.Tensor:
    """torch's ``_zeropower_via_newtonschulz`` (same quintic, coefficients and steps) in
    float32 instead of bfloat16 arithmetic."""
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


Orthogonaliser = Callable[[torch.Tensor, tuple[float, float, float], int, float], torch.Tensor]


class Muon(torch.optim.Muon):
    """``torch.optim.Muon`` that orthogonalises CPU tensors in float32.

    ``float32``: ``None`` (default) uses float32 for CPU tensors and torch's bfloat16
    iteration for the others; ``True``/``False`` force one or the other everywhere.
    """

    def __init__(self, params: Any, *args: Any, float32: bool | None = None,
                 **kwargs: Any) -> None:
        super().__init__(params, *args, **kwargs)
        self.float32 = float32

    def orthogonaliser(self, tensor: torch.Tensor) -> Orthogonaliser:
        use_float32 = tensor.device.type == "cpu" if self.float32 is None else self.float32
        return newton_schulz_float32 if use_float32 else _muon._zeropower_via_newtonschulz

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One Muon step (torch's ``_single_tensor_muon`` with a per-tensor orthogonaliser)."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params: list[torch.Tensor] = []
            grads: list[torch.Tensor] = []
            buffers: list[torch.Tensor] = []
            self._init_group(group, params, grads, buffers)
            lr = float(group["lr"])
            momentum, decay = group["momentum"], group["weight_decay"]
            for param, grad, buf in zip(params, grads, buffers, strict=True):
                if grad.ndim != 2:
                    raise ValueError("Param gradient must be a 2D matrix")
                buf.lerp_(grad, 1 - momentum)
                update = grad.lerp(buf, momentum) if group["nesterov"] else buf
                update = self.orthogonaliser(update)(update, group["ns_coefficients"],
                                                     group["ns_steps"], group["eps"])
                adjusted = _muon._adjust_lr(lr, group["adjust_lr_fn"], param.shape)
                param.mul_(1 - lr * decay)
                param.add_(update, alpha=-adjusted)
        return loss
