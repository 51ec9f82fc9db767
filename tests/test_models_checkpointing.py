"""Activation checkpointing: the same loss and gradients, far fewer saved tensors."""

from __future__ import annotations

import pytest
import torch

from convergent.train.config import ModelConfig
from convergent.train.models import build_model, compile_blocks

TINY = ModelConfig(d_model=32, n_layers=4, n_heads=2, head_dim=16, chunk_size=8, d_state=8)


def _step(model: torch.nn.Module, tokens: torch.Tensor, segments: torch.Tensor | None
          ) -> tuple[torch.Tensor, list[torch.Tensor], int]:
    """Loss, gradients and the bytes of tensors saved for the backward pass."""
    saved = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal saved
        saved += t.numel() * t.element_size()
        return t

    model.zero_grad(set_to_none=True)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = model.loss(tokens, segments=segments)
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in model.parameters()], saved


@pytest.mark.parametrize("packed", [False, True])
@pytest.mark.parametrize("arch", ["transformer", "gdn", "mamba2", "lstm"])
def test_checkpointing_keeps_loss_and_gradients_and_saves_far_less(arch, packed):
    torch.manual_seed(0)
    model = build_model(arch, TINY, 29).double().train()
    tokens = torch.randint(0, 29, (2, 25))
    segments = torch.tensor([0] * 10 + [1] * 9 + [2] * 5).expand(2, -1) if packed else None
    loss, grads, saved = _step(model, tokens, segments)
    model.activation_checkpointing = True
    loss_ckpt, grads_ckpt, saved_ckpt = _step(model, tokens, segments)
    torch.testing.assert_close(loss_ckpt, loss, atol=1e-12, rtol=0)
    for a, b in zip(grads_ckpt, grads, strict=True):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-10)
    assert saved_ckpt < saved / 3, (saved_ckpt, saved)


def test_checkpointing_is_off_in_eval_and_without_gradients():
    model = build_model("gdn", TINY, 29).eval()
    model.activation_checkpointing = True
    tokens = torch.randint(0, 29, (2, 9))
    with torch.no_grad():
        assert torch.isfinite(model.loss(tokens))
    assert torch.isfinite(model(tokens[:, :-1])).all()


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["transformer", "gdn"])
def test_checkpointing_composes_with_compiled_blocks_and_segments(arch):
    torch.manual_seed(0)
    eager = build_model(arch, TINY, 29)
    compiled = build_model(arch, TINY, 29)
    compiled.load_state_dict(eager.state_dict())
    compile_blocks(compiled)
    compiled.activation_checkpointing = True
    tokens = torch.randint(0, 29, (2, 25))
    segments = torch.tensor([0] * 10 + [1] * 9 + [2] * 5).expand(2, -1)
    loss, grads, saved = _step(eager, tokens, segments)
    loss_c, grads_c, saved_c = _step(compiled, tokens, segments)
    torch.testing.assert_close(loss_c, loss, rtol=1e-5, atol=1e-6)
    for a, b in zip(grads_c, grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    assert saved_c < saved / 3
