"""Packed segments: a packed row equals each segment run alone, in every family and kernel."""

from __future__ import annotations

import pytest
import torch

from convergent.errors import ConvergentError
from convergent.train.config import ModelConfig
from convergent.train.models import build_model, set_mode
from convergent.train.models.conv import causal_depthwise_conv
from convergent.train.models.deltanet import chunk_gated_delta_rule, recurrent_gated_delta_rule
from convergent.train.models.mamba2 import chunk_ssd, recurrent_ssd

TINY = ModelConfig(d_model=32, n_layers=2, n_heads=2, head_dim=16, chunk_size=8, d_state=8)
LENGTHS = [[5, 7, 4, 3], [8, 11]]  # starts inside chunks and on a chunk edge (chunk 8)


def _segments(lengths: list[list[int]]) -> torch.Tensor:
    return torch.stack([torch.repeat_interleave(torch.arange(len(row)), torch.tensor(row))
                        for row in lengths])


def _pieces(lengths: list[int]):
    start = 0
    for n in lengths:
        yield slice(start, start + n)
        start += n


def _per_segment(fn, time_dim: int, inputs: list[torch.Tensor]) -> torch.Tensor:
    """``fn`` run on each segment of each row alone, concatenated back along time."""
    rows = []
    for r, lengths in enumerate(LENGTHS):
        parts = [fn(*(x[r:r + 1].narrow(time_dim, s.start, s.stop - s.start) for x in inputs))
                 for s in _pieces(lengths)]
        rows.append(torch.cat(parts, dim=time_dim))
    return torch.cat(rows)


def _delta_inputs():
    g = torch.Generator().manual_seed(0)
    shape = (2, 3, 19)
    q = torch.randn(*shape, 4, generator=g, dtype=torch.float64)
    k = torch.nn.functional.normalize(torch.randn(*shape, 4, generator=g, dtype=torch.float64),
                                      dim=-1)
    v = torch.randn(*shape, 5, generator=g, dtype=torch.float64)
    decay = -torch.rand(*shape, generator=g, dtype=torch.float64) * 2
    beta = torch.rand(*shape, generator=g, dtype=torch.float64)
    return [x.requires_grad_() for x in (q, k, v, decay, beta)]


def _ssd_inputs():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 19, 3, 4, generator=g, dtype=torch.float64)
    dt = torch.rand(2, 19, 3, generator=g, dtype=torch.float64)
    b, c = (torch.randn(2, 19, 5, generator=g, dtype=torch.float64) for _ in range(2))
    a = -torch.rand(3, generator=g, dtype=torch.float64) * 4
    return [t.requires_grad_() for t in (x, dt, b, c)], a


def test_gated_delta_with_segments_equals_each_segment_alone_and_the_recurrence():
    inputs, segments = _delta_inputs(), _segments(LENGTHS)
    packed = chunk_gated_delta_rule(*inputs, chunk=8, segments=segments)
    alone = _per_segment(lambda *a: chunk_gated_delta_rule(*a, chunk=8), 2, inputs)
    torch.testing.assert_close(packed, alone, atol=1e-10, rtol=0)
    weight = torch.randn_like(packed)
    grads = torch.autograd.grad((packed * weight).sum(), inputs)
    reference = recurrent_gated_delta_rule(*inputs, segments=segments)
    for ours, theirs in zip(grads, torch.autograd.grad((reference * weight).sum(), inputs),
                            strict=True):
        torch.testing.assert_close(ours, theirs, atol=1e-10, rtol=0)


def test_ssd_with_segments_equals_each_segment_alone_and_the_recurrence():
    (x, dt, b, c), a = _ssd_inputs()
    segments = _segments(LENGTHS)
    packed = chunk_ssd(x, dt, a, b, c, 8, segments)
    alone = _per_segment(lambda x_, dt_, b_, c_: chunk_ssd(x_, dt_, a, b_, c_, 8), 1,
                         [x, dt, b, c])
    torch.testing.assert_close(packed, alone, atol=1e-10, rtol=0)
    weight = torch.randn_like(packed)
    inputs = (x, dt, b, c)
    grads = torch.autograd.grad((packed * weight).sum(), inputs)
    reference = recurrent_ssd(x, dt, a, b, c, segments)
    for ours, theirs in zip(grads, torch.autograd.grad((reference * weight).sum(), inputs),
                            strict=True):
        torch.testing.assert_close(ours, theirs, atol=1e-10, rtol=0)


def test_chunked_kernels_with_segments_pass_gradcheck():
    segments = torch.tensor([[0, 0, 1, 1, 1, 1, 2]])
    q, k, v, decay, beta = (x[:1, :1, :7, :2] if x.dim() == 4 else x[:1, :1, :7]
                            for x in _delta_inputs())
    q, k, v, decay, beta = (x.detach().contiguous().requires_grad_()
                            for x in (q, k, v, decay, beta))
    assert torch.autograd.gradcheck(
        lambda *a: chunk_gated_delta_rule(*a, chunk=3, segments=segments), (q, k, v, decay, beta))
    (x, dt, b, c), a = _ssd_inputs()
    args = tuple(t[:1, :7, :2].detach().requires_grad_() for t in (x, dt, b, c))
    assert torch.autograd.gradcheck(
        lambda x_, dt_, b_, c_: chunk_ssd(x_, dt_, a[:2], b_, c_, 3, segments), args)


def test_causal_conv_restarts_at_segment_starts():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 19, 6, generator=g, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(6, 4, generator=g, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(6, generator=g, dtype=torch.float64, requires_grad=True)
    segments = _segments(LENGTHS)
    packed = causal_depthwise_conv(x, weight, bias, segments)
    alone = _per_segment(lambda x_: causal_depthwise_conv(x_, weight, bias), 1, [x])
    torch.testing.assert_close(packed, alone, atol=1e-12, rtol=0)
    assert torch.autograd.gradcheck(
        lambda *a: causal_depthwise_conv(*a, segments[:1, :9]),
        (x[:1, :9].detach().requires_grad_(), weight, bias))


@pytest.mark.parametrize("arch", ["transformer", "gdn", "mamba2", "lstm"])
def test_packed_row_equals_each_segment_alone_with_gradients(arch):
    torch.manual_seed(0)
    model = build_model(arch, TINY, 41).double()
    ids = torch.randint(0, 41, (2, 19))
    segments = _segments(LENGTHS)
    packed = model(ids, segments)
    alone = _per_segment(model, 1, [ids])
    torch.testing.assert_close(packed, alone, atol=1e-9, rtol=0)
    weight = torch.randn_like(packed)
    params = [p for p in model.parameters()]
    grads = torch.autograd.grad((packed * weight).sum(), params)
    expected = torch.autograd.grad((alone * weight).sum(), params)
    for ours, theirs in zip(grads, expected, strict=True):
        torch.testing.assert_close(ours, theirs, atol=1e-9, rtol=1e-7)
    tokens = torch.cat((ids, torch.randint(0, 41, (2, 1))), dim=1)
    loss = model.loss(tokens, segments=segments)
    full = torch.nn.functional.cross_entropy(packed.reshape(-1, 41), tokens[:, 1:].reshape(-1))
    torch.testing.assert_close(loss, full, atol=1e-10, rtol=0)


@pytest.mark.parametrize("arch", ["gdn", "mamba2"])
def test_recurrent_mode_takes_segments_too(arch):
    torch.manual_seed(0)
    model = build_model(arch, TINY, 41).double()
    ids, segments = torch.randint(0, 41, (2, 19)), _segments(LENGTHS)
    chunked = model(ids, segments)
    set_mode(model, "recurrent")
    torch.testing.assert_close(model(ids, segments), chunked, atol=1e-9, rtol=0)


def test_bad_segments_are_a_clear_error():
    model = build_model("transformer", TINY, 41)
    tokens = torch.randint(0, 41, (2, 9))
    with pytest.raises(ConvergentError, match="shape"):
        model.loss(tokens, segments=torch.zeros(2, 9, dtype=torch.int32))
    with pytest.raises(ConvergentError, match="non-decreasing"):
        model.loss(tokens, segments=torch.tensor([[0, 0, 1, 1, 0, 2, 2, 2]] * 2))
