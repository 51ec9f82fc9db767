"""convergent.train.muon: torch's Muon update with a float32 Newton-Schulz step on CPU."""

from __future__ import annotations

import pytest
import torch
from torch.optim import _muon

from convergent.train.config import ModelConfig, TrainConfig
from convergent.train.models import build_model
from convergent.train.muon import Muon, newton_schulz_float32
from convergent.train.optim import build_optimizers

COEFFICIENTS = (3.4445, -4.7750, 2.0315)


@pytest.mark.parametrize("shape", [(64, 160), (160, 64)])
def test_float32_newton_schulz_matches_torch_up_to_bf16_rounding(shape) -> None:
    torch.manual_seed(0)
    grad = torch.randn(*shape)
    reference = _muon._zeropower_via_newtonschulz(grad, COEFFICIENTS, 5, 1e-7).float()
    ours = newton_schulz_float32(grad, COEFFICIENTS, 5, 1e-7)
    assert ours.shape == grad.shape and ours.dtype == grad.dtype
    assert float((ours - reference).abs().max()) < 0.05
    singular = torch.linalg.svdvals(ours)  # roughly orthogonal: singular values near 1
    assert float(singular.min()) > 0.3 and float(singular.max()) < 1.5


def _steps(optimizer_cls, params_from, **kwargs) -> list[torch.Tensor]:
    torch.manual_seed(1)
    params = [torch.nn.Parameter(p.clone()) for p in params_from]
    opt = optimizer_cls(params, lr=0.02, weight_decay=0.1, adjust_lr_fn="match_rms_adamw",
                        **kwargs)
    for _ in range(3):
        opt.zero_grad()
        sum((p ** 3).sum() for p in params).backward()
        opt.step()
    return [p.detach() for p in params]


def test_bf16_mode_is_bit_identical_to_torch_muon() -> None:
    torch.manual_seed(0)
    start = [torch.randn(8, 12), torch.randn(12, 8)]
    reference = _steps(torch.optim.Muon, start)
    ours = _steps(Muon, start, float32=False)
    for a, b in zip(reference, ours, strict=True):
        assert torch.equal(a, b)
    fast = _steps(Muon, start)  # default on CPU: float32, differs by bf16 rounding only
    assert not all(torch.equal(a, b) for a, b in zip(reference, fast, strict=True))
    for a, b in zip(reference, fast, strict=True):
        torch.testing.assert_close(a, b, atol=5e-3, rtol=0)


def test_orthogonaliser_is_float32_on_cpu_and_torchs_elsewhere() -> None:
    opt = Muon([torch.nn.Parameter(torch.zeros(2, 2))])
    assert opt.orthogonaliser(torch.zeros(2, 2)) is newton_schulz_float32
    assert opt.orthogonaliser(torch.zeros(2, 2, device="meta")) is \
        _muon._zeropower_via_newtonschulz
    opt.float32 = True
    assert opt.orthogonaliser(torch.zeros(2, 2, device="meta")) is newton_schulz_float32


def test_training_engine_uses_it_and_state_round_trips() -> None:
    config = TrainConfig(optimizer="muon", model=ModelConfig(d_model=16, n_layers=1, n_heads=2))
    model = build_model("transformer", config.model, 50)
    optimizers = build_optimizers(model, config)
    assert isinstance(optimizers.parts["muon"], Muon)
    assert optimizers.parts["muon"].process_group is None  # no process group: one process
    tokens = torch.randint(0, 50, (4, 9))
    model.loss(tokens, torch.ones(4, 8, dtype=torch.bool)).backward()
    optimizers.step()
    tensors, rest = optimizers.state_tensors()
    again = build_optimizers(model, config)
    again.load_state(tensors, rest)
    assert any("momentum_buffer" in key for key in tensors)
    for key, value in again.state_tensors()[0].items():
        assert torch.equal(value, tensors[key])
