"""Every family trains one step under CPU bf16 autocast: float32 loss and gradients, close to
the float32 step."""

from __future__ import annotations

import pytest
import torch

from convergent.train.config import ModelConfig
from convergent.train.models import build_model
from convergent.train.models.gated_delta import chunk_gated_delta_rule
from convergent.train.models.head_loss import linear_cross_entropy
from convergent.train.models.ssd import chunk_ssd

TINY = ModelConfig(d_model=32, n_layers=2, n_heads=2, head_dim=16, chunk_size=8, d_state=8)
FAMILIES = ["transformer", "gdn", "mamba2", "lstm"]


def _step(model: torch.nn.Module, tokens: torch.Tensor, segments: torch.Tensor | None,
          autocast: bool) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    model.zero_grad(set_to_none=True)
    with torch.autocast(tokens.device.type, dtype=torch.bfloat16, enabled=autocast):
        loss = model.loss(tokens, segments=segments)
    loss.backward()
    return loss.detach(), {n: p.grad for n, p in model.named_parameters()}


def _close_to_float32_step(arch: str, packed: bool, device: str,
                           checkpointing: bool = False) -> None:
    torch.manual_seed(0)
    model = build_model(arch, TINY, 61).to(device)
    model.activation_checkpointing = checkpointing
    tokens = torch.randint(0, 61, (3, 21), device=device)
    segments = torch.tensor([0] * 6 + [1] * 9 + [2] * 5, device=device).expand(3, -1) \
        if packed else None
    loss32, grads32 = _step(model, tokens, segments, autocast=False)
    loss16, grads16 = _step(model, tokens, segments, autocast=True)
    assert loss16.dtype == torch.float32
    torch.testing.assert_close(loss16, loss32, rtol=2e-2, atol=0)
    for name, grad in grads16.items():
        assert grad.dtype == torch.float32 and torch.isfinite(grad).all(), name
        cos = torch.nn.functional.cosine_similarity(grad.flatten(), grads32[name].flatten(),
                                                    dim=0)
        assert cos > 0.95, (name, cos)


@pytest.mark.parametrize("packed", [False, True])
@pytest.mark.parametrize("arch", FAMILIES)
def test_one_bf16_autocast_step_per_family(arch, packed):
    _close_to_float32_step(arch, packed, "cpu")


@pytest.mark.gpu
@pytest.mark.parametrize("arch", FAMILIES)
def test_one_bf16_autocast_step_per_family_on_cuda_with_segments_and_checkpointing(arch):
    _close_to_float32_step(arch, True, "cuda", checkpointing=True)


def test_recurrence_kernels_keep_float32_inside_and_return_the_input_dtype():
    g = torch.Generator().manual_seed(0)
    q, k = (torch.nn.functional.normalize(torch.randn(1, 2, 12, 4, generator=g), dim=-1)
            for _ in range(2))
    v = torch.randn(1, 2, 12, 4, generator=g)
    decay, beta = -torch.rand(1, 2, 12, generator=g), torch.rand(1, 2, 12, generator=g)
    expected = chunk_gated_delta_rule(q, k, v, decay, beta, chunk=4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = chunk_gated_delta_rule(q, k, v.bfloat16(), decay, beta, chunk=4)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), expected, rtol=2e-2, atol=2e-2)
    x, b, c = (torch.randn(1, 12, *s, generator=g) for s in ((2, 3), (5,), (5,)))
    dt, a = torch.rand(1, 12, 2, generator=g), -torch.rand(2, generator=g)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = chunk_ssd(x.bfloat16(), dt, a, b, c, 4)
    assert y.dtype == torch.bfloat16
    torch.testing.assert_close(y.float(), chunk_ssd(x.bfloat16().float(), dt, a, b, c, 4),
                               rtol=2e-2, atol=2e-2)


def test_fused_loss_under_autocast_is_float32_with_float32_weight_gradients():
    g = torch.Generator().manual_seed(1)
    h = torch.randn(40, 8, generator=g, requires_grad=True)
    weight = torch.randn(13, 8, generator=g, requires_grad=True)
    targets = torch.randint(0, 13, (40,), generator=g)
    expected = torch.nn.functional.cross_entropy(h @ weight.T, targets)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = linear_cross_entropy(h, weight, targets, rows=16)
    loss.backward()
    assert loss.dtype == torch.float32 and weight.grad.dtype == torch.float32
    assert h.grad.dtype == torch.float32
    torch.testing.assert_close(loss, expected.detach(), rtol=1e-2, atol=0)
