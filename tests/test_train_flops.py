"""Parameter counts and training FLOPs from the config, device peaks and MFU."""

from __future__ import annotations

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from convergent.errors import ConvergentError
from convergent.train.config import ModelConfig
from convergent.train.flops import (
    CAUSAL_FACTOR,
    DEVICE_PEAKS,
    flops_breakdown,
    flops_per_token,
    mfu,
    parameter_count,
    peak_flops,
)
from convergent.train.models import build_model

VOCAB = 97
FAMILIES = ("transformer", "gdn", "mamba2", "lstm")
TINY = ModelConfig(d_model=48, n_layers=2, n_heads=3, head_dim=16, d_state=8, chunk_size=16)
OTHER = ModelConfig(d_model=64, n_layers=3, n_heads=4, head_dim=8, d_ff=96, d_state=16,
                    chunk_size=8, expand=1)


@pytest.mark.parametrize("tie", [False, True])
@pytest.mark.parametrize("arch", FAMILIES)
def test_parameter_count_equals_the_model(arch: str, tie: bool) -> None:
    for base in (TINY, OTHER):
        config = ModelConfig(**{**base.__dict__, "tie_embeddings": tie})
        model = build_model(arch, config, VOCAB)
        counts = parameter_count(arch, config, VOCAB)
        assert counts["total"] == sum(p.numel() for p in model.parameters())
        assert counts["blocks"] == sum(p.numel() for p in model.blocks.parameters())
        matrices = sum(p.numel() for p in model.blocks.parameters() if p.ndim == 2)
        assert counts["block_matmul"] == matrices
        assert counts["head"] == (0 if tie else VOCAB * config.d_model)


@pytest.mark.filterwarnings("ignore:TF32 acceleration")
@pytest.mark.parametrize("arch", FAMILIES)
def test_flops_match_the_flop_counter(arch: str) -> None:
    """FlopCounterMode counts matmuls (mm, bmm, baddbmm, addmm, SDPA's math path) in the
    forward and backward. It does not see the in-place ``addmm_`` of the fused head's weight
    gradient (one third of the head term), it counts the full T x T attention square (we
    count the causal half), and nothing element-wise. We run SDPA's math backend and the
    LSTM without oneDNN so that their matmuls reach the counter. Tolerance 1%: the LSTM's
    first step multiplies the zero initial state, which the counter skips in the backward."""
    for config, seq in ((TINY, 24), (OTHER, 20)):  # both padded to whole chunks
        torch.manual_seed(0)
        model = build_model(arch, config, VOCAB)
        tokens = torch.randint(0, VOCAB, (2, seq + 1))
        with (FlopCounterMode(display=False) as counter, sdpa_kernel(SDPBackend.MATH),
              torch.backends.mkldnn.flags(enabled=False)):
            model.loss(tokens).backward()
        terms = flops_breakdown(arch, config, VOCAB, seq)
        seen = terms["total"] - terms["head"] / 3
        if arch == "transformer":
            seen += terms["mixer"] * (1 / CAUSAL_FACTOR - 1)
        measured = counter.get_total_flops() / tokens[:, 1:].numel()
        assert measured == pytest.approx(seen, rel=0.01)
        assert flops_per_token(arch, config, VOCAB, seq) == terms["total"]


def test_flops_follow_the_textbook_formula() -> None:
    """6 N + 6 d V + 6 L T d for a Transformer with head_dim x heads = d."""
    config = ModelConfig(d_model=1024, n_layers=24, n_heads=16)
    counts = parameter_count("transformer", config, 50_000)
    expected = 6 * counts["block_matmul"] + 6 * 1024 * 50_000 + 6 * 24 * 2048 * 1024
    assert flops_per_token("transformer", config, 50_000, 2048) == expected
    assert flops_breakdown("lstm", config, 50_000, 2048)["mixer"] == 0


@pytest.mark.parametrize(("name", "key"), [
    ("NVIDIA H100 80GB HBM3", "H100 SXM"), ("NVIDIA H100 PCIe", "H100 PCIe"),
    ("NVIDIA H100 NVL", "H100 NVL"), ("NVIDIA H200", "H200"), ("NVIDIA H800", "H800"),
    ("NVIDIA GH200 480GB", "GH200"), ("NVIDIA A100-SXM4-80GB", "A100"),
    ("NVIDIA A100 80GB PCIe", "A100"), ("NVIDIA A10G", "A10G"), ("NVIDIA A10", "A10"),
    ("NVIDIA L4", "L4"), ("NVIDIA L40S", "L40S"), ("NVIDIA L40", "L40"),
    ("NVIDIA GeForce RTX 4090", "RTX 4090"), ("NVIDIA B200", "B200"),
    ("AMD Instinct MI300X", "MI300X"),
])
def test_peak_flops_matches_device_names(name: str, key: str) -> None:
    bf16, tf32 = DEVICE_PEAKS[key]
    assert peak_flops(name, "bf16") == bf16
    assert peak_flops(name, "fp32") == peak_flops(name, "tf32") == tf32
    assert bf16 > tf32 > 1e13


def test_unknown_devices_and_mfu() -> None:
    assert peak_flops("cpu", "bf16") is None
    assert peak_flops("NVIDIA H100 80GB HBM3", "fp8") is None
    assert mfu(1e5, 2e9, 4e14) == pytest.approx(0.5)
    with pytest.raises(ConvergentError):
        mfu(1.0, 1.0, 0.0)
