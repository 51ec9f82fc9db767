"""The GPU kernel adapters: CPU behaviour and the one-time fallback warning here; parity of
each adapter with our reference kernels (forward and backward, fp32 and bf16, with and
without packed segments) in ``gpu``-marked tests."""

from __future__ import annotations

import math
import sys
import types
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F

from convergent.train.models import gpu_kernels
from convergent.train.models.conv import causal_depthwise_conv
from convergent.train.models.deltanet import recurrent_gated_delta_rule
from convergent.train.models.gated_delta import chunk_gated_delta_rule
from convergent.train.models.gpu_kernels import causal_conv, gated_delta_rule, ssd
from convergent.train.models.mamba2 import recurrent_ssd
from convergent.train.models.ssd import chunk_ssd


def _gdn_inputs(b=2, h=4, t=200, d=64, device="cpu", dtype=torch.float32):
    q = F.normalize(torch.randn(b, h, t, d, device=device), dim=-1) / math.sqrt(d)
    k = F.normalize(torch.randn(b, h, t, d, device=device), dim=-1)
    v = torch.randn(b, h, t, d, device=device)
    g = F.logsigmoid(torch.randn(b, h, t, device=device) + 3)
    beta = torch.randn(b, h, t, device=device).sigmoid()
    return q.to(dtype), k.to(dtype), v.to(dtype), g, beta


def _ssd_inputs(b=2, t=300, h=4, p=64, n=128, device="cpu", dtype=torch.float32):
    x = torch.randn(b, t, h, p, device=device, dtype=dtype)
    dt = F.softplus(torch.randn(b, t, h, device=device) - 3)
    a = -(torch.rand(h, device=device) * 15 + 1)
    bb = torch.randn(b, t, n, device=device, dtype=dtype) / math.sqrt(n)
    c = torch.randn(b, t, n, device=device, dtype=dtype)
    return x, dt, a, bb, c


def _conv_inputs(b=2, t=200, c=256, k=4, device="cpu", dtype=torch.float32):
    x = torch.randn(b, t, c, device=device, dtype=dtype)
    return x, torch.randn(c, k, device=device) * 0.5, torch.randn(c, device=device)


def _segments(t: int, device="cpu") -> torch.Tensor:
    """Row 0: three documents (lengths 20, 100, rest); row 1: one."""
    row0 = torch.tensor([0] * 20 + [1] * 100 + [2] * (t - 120))
    return torch.stack((row0, torch.full((t,), 3))).to(device=device, dtype=torch.int32)


@pytest.fixture
def fresh(monkeypatch):
    """A process that has warned about nothing yet."""
    monkeypatch.setattr(gpu_kernels, "_WARNED", set())
    monkeypatch.setattr(gpu_kernels, "SERVED", Counter())


def test_cpu_tensors_get_none_and_no_warning(fresh):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert gated_delta_rule(*_gdn_inputs(t=8, d=8)) is None
        assert ssd(*_ssd_inputs(t=8, p=8, n=8)) is None
        assert causal_conv(*_conv_inputs(t=8, c=16)) is None
        segments = torch.tensor([[0] * 4 + [1] * 4] * 2, dtype=torch.int32)
        assert gated_delta_rule(*_gdn_inputs(t=8, d=8), segments=segments) is None
    assert gpu_kernels.kernels_used("cpu") == dict.fromkeys(
        ("flash-linear-attention", "mamba-ssm", "causal-conv1d"), False)


def test_missing_library_warns_once_per_library(fresh, monkeypatch):
    monkeypatch.setattr(gpu_kernels, "_missing", lambda module: "is not installed")
    cuda = torch.device("cuda")
    with pytest.warns(UserWarning) as record:
        assert not gpu_kernels._ready(gpu_kernels._FLA, cuda)
        assert not gpu_kernels._ready(gpu_kernels._FLA, cuda)
        assert not gpu_kernels._ready(gpu_kernels._MAMBA, cuda)
        assert not gpu_kernels._ready(gpu_kernels._MAMBA, cuda)
    messages = [str(w.message) for w in record]
    assert messages == [
        "convergent: flash-linear-attention is not installed; Gated DeltaNet runs on the "
        "reference kernels (pip install 'convergent[gpu]')",
        "convergent: mamba-ssm is not installed; Mamba-2 runs on the reference kernels "
        "(pip install 'convergent[gpu]')",
    ]
    monkeypatch.setattr(gpu_kernels, "_missing", lambda module: None)
    assert gpu_kernels._ready(gpu_kernels._CONV, cuda)
    assert not gpu_kernels._ready(gpu_kernels._CONV, torch.device("cpu"))
    assert gpu_kernels.SERVED == {"causal-conv1d": 1}


def test_missing_names_an_absent_package_and_a_broken_one(tmp_path, monkeypatch):
    (tmp_path / "convergent_broken_kernel.py").write_text("import convergent_no_such_dep\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert gpu_kernels._missing.__wrapped__("convergent_no_such_pkg.ops") == "is not installed"
    broken = gpu_kernels._missing.__wrapped__("convergent_broken_kernel")
    assert broken is not None and broken.startswith("failed to import")
    assert gpu_kernels._missing.__wrapped__("math") is None


def test_cu_seqlens_starts_every_row_and_document():
    segments = torch.tensor([[0, 0, 1], [1, 1, 2]], dtype=torch.int32)
    assert gpu_kernels._cu_seqlens(segments).tolist() == [0, 2, 3, 5, 6]


# ---- the adapters' layouts and segments, against stand-ins for the libraries on CPU -------
# Each stand-in follows its library's documented contract ([B, T, H, D] and cu_seqlens for
# fla; seq_idx and a group axis for mamba-ssm; channel-last [B, C, T] with seq_idx for
# causal-conv1d) and computes with our step-by-step references.

def _spans(ids: torch.Tensor) -> list[tuple[int, int]]:
    _, lengths = torch.unique_consecutive(ids, return_counts=True)
    ends = lengths.cumsum(0).tolist()
    return list(zip([0, *ends[:-1]], ends, strict=True))


def _fake_fla(q, k, v, g, beta, scale=None, initial_state=None, output_final_state=False,
              use_qk_l2norm_in_kernel=False, cu_seqlens=None):
    assert q.dtype == torch.bfloat16 and g.dtype == torch.float32 and scale == 1.0
    assert initial_state is None and not use_qk_l2norm_in_kernel
    spans = [(0, q.shape[1])]
    if cu_seqlens is not None:
        assert q.shape[0] == 1
        spans = list(zip(cu_seqlens[:-1].tolist(), cu_seqlens[1:].tolist(), strict=True))
    heads_first = [x.float().transpose(1, 2) for x in (q, k, v, g, beta)]
    o = torch.cat([recurrent_gated_delta_rule(*(x[:, :, s:e] for x in heads_first))
                   for s, e in spans], dim=2)
    return o.transpose(1, 2).to(q.dtype), None


def _fake_mamba(x, dt, a, b, c, chunk_size, D=None, z=None, dt_bias=None,
                initial_states=None, seq_idx=None, dt_softplus=False):
    assert b.dim() == c.dim() == 4 and b.shape[2] == 1 and not dt_softplus
    assert D is None and z is None and dt_bias is None and a.dtype == torch.float32
    ids = seq_idx if seq_idx is not None else torch.zeros(x.shape[:2], dtype=torch.int32)
    assert ids.dtype == torch.int32
    rows = [torch.cat([recurrent_ssd(x[r:r + 1, s:e], dt[r:r + 1, s:e], a, b[r:r + 1, s:e, 0],
                                     c[r:r + 1, s:e, 0]) for s, e in _spans(ids[r])], dim=1)
            for r in range(x.shape[0])]
    return torch.cat(rows).to(x.dtype)


def _fake_conv(x, weight, bias=None, seq_idx=None):
    assert x.stride(1) == 1 and (seq_idx is None or seq_idx.dtype == torch.int32)
    ids = seq_idx if seq_idx is not None else torch.zeros(x.shape[::2], dtype=torch.int32)
    btc = x.transpose(1, 2)
    rows = [torch.cat([causal_depthwise_conv(btc[r:r + 1, s:e], weight, bias)
                       for s, e in _spans(ids[r])], dim=1) for r in range(x.shape[0])]
    return torch.cat(rows).transpose(1, 2).to(x.dtype)


@pytest.fixture
def fake_libraries(monkeypatch):
    """The three libraries replaced by the stand-ins above, served on CPU tensors."""
    for name, attr, fn in ((gpu_kernels._FLA, "chunk_gated_delta_rule", _fake_fla),
                           (gpu_kernels._MAMBA, "mamba_chunk_scan_combined", _fake_mamba),
                           (gpu_kernels._CONV, "causal_conv1d_fn", _fake_conv)):
        module = types.ModuleType(name)
        setattr(module, attr, fn)
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(gpu_kernels, "_ready", lambda module, device: True)


# ---- parity on a GPU -------------------------------------------------------------------

def _by_segment(kernel: Callable, segments: torch.Tensor, args: list, time_dims: list,
                out_dim: int) -> torch.Tensor:
    """The reference with state resets: ``kernel`` on every document of every row alone."""
    rows = []
    for row in range(segments.shape[0]):
        _, lengths = torch.unique_consecutive(segments[row], return_counts=True)
        pieces, start = [], 0
        for length in lengths.tolist():
            sliced = [a if d is None else a.narrow(0, row, 1).narrow(d, start, length)
                      for a, d in zip(args, time_dims, strict=True)]
            pieces.append(kernel(*sliced))
            start += length
        rows.append(torch.cat(pieces, dim=out_dim))
    return torch.cat(rows)


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.float() - b.float()).norm() / b.float().norm()).item()


def _parity(fast: Callable, slow: Callable, inputs: tuple, tol: float) -> None:
    """``fast`` (the adapter) on ``inputs`` against ``slow`` (fp32 reference): out and grads."""
    mine = [x.detach().clone().requires_grad_() for x in inputs]
    ref = [x.detach().float().clone().requires_grad_() for x in inputs]
    out = fast(*mine)
    assert out is not None, "the library kernel did not serve"
    expected = slow(*ref)
    assert out.shape == expected.shape and out.dtype == inputs[0].dtype
    grad = torch.randn_like(expected)
    out.float().backward(grad)
    expected.backward(grad)
    assert _relative(out, expected) < tol
    for i, (x, y) in enumerate(zip(mine, ref, strict=True)):
        assert _relative(x.grad, y.grad) < tol, f"gradient of input {i}"


@dataclass(frozen=True)
class Case:
    """One adapter, its reference kernel, inputs and where their time axes are."""

    library: str  # the module a GPU test needs
    adapter: Callable
    reference: Callable
    inputs: Callable  # (device, dtype, small) -> tuple of tensors
    time_dims: list  # per input: its time axis, or None when not per position
    out_dim: int
    tol: dict  # relative error allowed per dtype on a GPU


CASES = {
    "gated_delta_rule": Case(
        "fla", gated_delta_rule, chunk_gated_delta_rule,
        lambda device, dtype, small: _gdn_inputs(t=130 if small else 200, d=8 if small else 64,
                                                 device=device, dtype=dtype),
        [2] * 5, 2, {torch.float32: 3e-2, torch.bfloat16: 5e-2}),  # fla runs fp32 in bf16
    "ssd": Case(
        "mamba_ssm", ssd, chunk_ssd,
        lambda device, dtype, small: _ssd_inputs(t=130 if small else 300, p=8 if small else 64,
                                                 n=8 if small else 128, device=device,
                                                 dtype=dtype),
        [1, 1, None, 1, 1], 1, {torch.float32: 5e-3, torch.bfloat16: 5e-2}),
    "causal_conv": Case(
        "causal_conv1d", causal_conv, causal_depthwise_conv,
        lambda device, dtype, small: _conv_inputs(t=130 if small else 200, c=16 if small else 256,
                                                  device=device, dtype=dtype),
        [1, None, None], 1, {torch.float32: 1e-5, torch.bfloat16: 1e-2}),
}


def _run(case: Case, device: str, dtype: torch.dtype, packed: bool, small: bool,
         tol: float) -> None:
    """The adapter against the reference (per document when packed): output and gradients."""
    torch.manual_seed(0)
    inputs = case.inputs(device, dtype, small)
    t = inputs[0].shape[case.time_dims[0]]
    segments = _segments(t, device) if packed else None

    def slow(*args):
        if segments is None:
            return case.reference(*args)
        return _by_segment(case.reference, segments, list(args), case.time_dims, case.out_dim)

    _parity(lambda *args: case.adapter(*args, segments=segments), slow, inputs, tol)


@pytest.mark.parametrize("packed", [False, True])
@pytest.mark.parametrize("name", CASES)
def test_adapters_map_layouts_and_segments(fake_libraries, name, packed):
    tol = 3e-2 if name == "gated_delta_rule" else 1e-4  # the fla stand-in sees bf16
    _run(CASES[name], "cpu", torch.float32, packed, small=True, tol=tol)


@pytest.mark.gpu
@pytest.mark.parametrize("packed", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("name", CASES)
def test_adapter_matches_reference_on_gpu(name, dtype, packed):
    case = CASES[name]
    pytest.importorskip(case.library)
    _run(case, "cuda", dtype, packed, small=False, tol=case.tol[dtype])
