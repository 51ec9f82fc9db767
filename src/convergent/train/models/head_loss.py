"""Output head and mean cross-entropy in row blocks, never forming all [N, V] logits.

``F.cross_entropy(h @ W.T, y)`` writes the [N, V] logits, reads them for the log-softmax,
writes their gradient and reads it twice more in the backward (67 MB at N = 2048 positions,
V = 8192). Here each block of rows gets its logits, log-sum-exp and softmax gradient while
still in cache, with one exponential pass for both, and the gradients of ``h`` and ``W``
are accumulated in the forward pass (the backward only scales them): the usual fused
linear-cross-entropy (as in Liger-Kernel), in torch."""

from __future__ import annotations

import torch

from convergent.train.models.amp import autocast_dtype, without_autocast


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    @without_autocast
    def forward(ctx, h, weight, targets, rows: int, grad_enabled: bool,
                compute: torch.dtype | None):
        n, dtypes = h.shape[0], (h.dtype, weight.dtype)
        if compute is not None:  # autocast: the matmuls in ``compute``, the rest in float32
            h, weight = h.to(compute), weight.to(compute)
        need_h = grad_enabled and ctx.needs_input_grad[0]
        need_w = grad_enabled and ctx.needs_input_grad[1]
        grad_h = torch.empty_like(h) if need_h else None
        grad_w = torch.zeros(weight.shape, dtype=dtypes[1], device=weight.device) if need_w \
            else None
        dtype = torch.promote_types(h.dtype, torch.float32)  # the softmax in >= float32
        total = h.new_zeros((), dtype=dtype)
        for start in range(0, n, rows):
            block, target = h[start:start + rows], targets[start:start + rows, None]
            logits = (block @ weight.T).to(dtype)
            top = logits.amax(dim=-1, keepdim=True)
            picked = logits.gather(1, target)
            probs = logits.sub_(top).exp_()  # one exp pass serves the loss and the gradient
            norm = probs.sum(dim=-1, keepdim=True)
            total += (top + norm.log() - picked).sum()
            if need_h or need_w:
                probs.div_(norm)
                probs.scatter_add_(1, target, probs.new_full(target.shape, -1.0))
                probs = probs.to(h.dtype)
                if need_h:
                    torch.mm(probs, weight, out=grad_h[start:start + rows])
                if need_w and grad_w.dtype == block.dtype:
                    grad_w.addmm_(probs.T, block)
                elif need_w:  # accumulate the weight gradient in its own (float32) dtype
                    grad_w += probs.T @ block
        ctx.save_for_backward(*(g for g in (grad_h, grad_w) if g is not None))
        ctx.n, ctx.need, ctx.dtypes = n, (need_h, need_w), dtypes
        return (total / n).to(torch.promote_types(dtypes[0], torch.float32))

    @staticmethod
    @without_autocast
    def backward(ctx, grad):
        saved = list(ctx.saved_tensors)
        scale = grad / ctx.n
        grad_h = (saved.pop(0) * scale).to(ctx.dtypes[0]) if ctx.need[0] else None
        grad_w = (saved.pop(0) * scale).to(ctx.dtypes[1]) if ctx.need[1] else None
        return grad_h, grad_w, None, None, None, None


def linear_cross_entropy(h: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,
                         rows: int | None = None) -> torch.Tensor:
    """Mean of ``cross_entropy(h @ weight.T, targets)``; h [N, d], weight [V, d], targets [N].

    Softmax and the returned loss in float32 (bf16 inputs included). Under autocast the
    two matmuls run in the autocast dtype, as ``F.linear`` would, and the weight gradient
    accumulates in the weight's dtype. With gradients enabled it computes them during the
    forward pass (for a loss that is backpropagated once, as in training); under
    ``torch.no_grad`` it only evaluates. ``rows`` per block defaults to about 4M logits,
    within [256, 1024] rows.
    Measured (one thread, with freed memory kept as in training; see
    docs/training-speed.md): 0.85-0.92x the time of the unfused pair at N 2048, V 2048,
    d 128, and 0.93-0.95x at V 8192, d 512.
    """
    if rows is None:
        rows = min(1024, max(256, (1 << 22) // max(1, weight.shape[0])))
    return _LinearCrossEntropy.apply(h, weight, targets, rows, torch.is_grad_enabled(),
                                     autocast_dtype(h))
