"""Model families: chunked kernels equal the step-by-step recurrences; shapes; optimizers."""

from __future__ import annotations

from itertools import pairwise

import pytest
import torch

from convergent.errors import ConvergentError
from convergent.train.config import ModelConfig, TrainConfig
from convergent.train.models import build_model, compile_blocks, set_mode
from convergent.train.models.common import CausalConv
from convergent.train.models.conv import causal_depthwise_conv
from convergent.train.models.deltanet import chunk_gated_delta_rule, recurrent_gated_delta_rule
from convergent.train.models.head_loss import linear_cross_entropy
from convergent.train.models.mamba2 import chunk_ssd, recurrent_ssd
from convergent.train.models.transformer import Attention, rotate
from convergent.train.optim import build_optimizers, lr_factor, split_parameters

TINY = ModelConfig(d_model=32, n_layers=2, n_heads=4, chunk_size=8, d_state=8)


def _delta_inputs(t: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    shape = (2, 3, t)
    q = torch.randn(*shape, 8, generator=g, dtype=torch.float64)
    k = torch.nn.functional.normalize(torch.randn(*shape, 8, generator=g, dtype=torch.float64),
                                      dim=-1)
    v = torch.randn(*shape, 6, generator=g, dtype=torch.float64)
    decay = -torch.rand(*shape, generator=g, dtype=torch.float64) * 2
    beta = torch.rand(*shape, generator=g, dtype=torch.float64)
    return q, k, v, decay, beta


@pytest.mark.parametrize(("t", "chunk"), [(1, 4), (13, 4), (32, 8), (37, 64)])
def test_gated_delta_chunked_equals_recurrent(t, chunk):
    args = _delta_inputs(t)
    expected = recurrent_gated_delta_rule(*args)
    assert torch.allclose(chunk_gated_delta_rule(*args, chunk=chunk), expected, atol=1e-10)


@pytest.mark.parametrize(("t", "chunk"), [(1, 4), (13, 4), (37, 8)])
def test_gated_delta_chunked_gradients_equal_recurrent_gradients(t, chunk):
    args = [x.requires_grad_() for x in _delta_inputs(t, seed=5)]
    weight = torch.randn(2, 3, t, 6, generator=torch.Generator().manual_seed(6),
                         dtype=torch.float64)
    chunked = torch.autograd.grad((chunk_gated_delta_rule(*args, chunk=chunk) * weight).sum(),
                                  args)
    plain = torch.autograd.grad((recurrent_gated_delta_rule(*args) * weight).sum(), args)
    for ours, reference in zip(chunked, plain, strict=True):
        assert torch.allclose(ours, reference, atol=1e-10)


def test_gated_delta_hand_written_backward_passes_gradcheck():
    q, k, v, g, beta = _delta_inputs(7, seed=7)
    args = tuple(x[:1, :1].contiguous().requires_grad_()
                 for x in (q[..., :3], k[..., :3], v[..., :2], g, beta))
    assert torch.autograd.gradcheck(lambda *a: chunk_gated_delta_rule(*a, chunk=3), args)


def test_gated_delta_matches_hugging_face_reference():
    hf = pytest.importorskip("transformers.models.qwen3_next.modeling_qwen3_next")
    q, k, v, g, beta = _delta_inputs(24, seed=3)
    ours = recurrent_gated_delta_rule(q, k, v, g, beta)
    scale = q.shape[-1] ** 0.5  # HF scales q by 1/sqrt(d_k) inside the kernel
    theirs, _ = hf.torch_recurrent_gated_delta_rule(
        *(x.transpose(1, 2) for x in (q * scale, k, v, g, beta)), initial_state=None,
        output_final_state=False, use_qk_l2norm_in_kernel=False)
    assert torch.allclose(ours, theirs.transpose(1, 2).to(ours.dtype), atol=1e-5)


@pytest.mark.parametrize(("t", "chunk"), [(1, 4), (13, 4), (32, 8), (37, 64)])
def test_ssd_chunked_equals_recurrent(t, chunk):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, t, 3, 4, generator=g, dtype=torch.float64)
    dt = torch.rand(2, t, 3, generator=g, dtype=torch.float64)
    a = -torch.rand(3, generator=g, dtype=torch.float64) * 4
    b = torch.randn(2, t, 5, generator=g, dtype=torch.float64)
    c = torch.randn(2, t, 5, generator=g, dtype=torch.float64)
    assert torch.allclose(chunk_ssd(x, dt, a, b, c, chunk), recurrent_ssd(x, dt, a, b, c),
                          atol=1e-10)


def ssd_inputs(seed: int, batch: int, t: int, heads: int, p: int, n: int, a_scale: float):
    """Random float64 (x, dt, a, b, c) for the SSD kernels, requiring gradients."""
    g = torch.Generator().manual_seed(seed)
    inputs = (torch.randn(batch, t, heads, p, generator=g, dtype=torch.float64),
              torch.rand(batch, t, heads, generator=g, dtype=torch.float64),
              -torch.rand(heads, generator=g, dtype=torch.float64) * a_scale,
              torch.randn(batch, t, n, generator=g, dtype=torch.float64),
              torch.randn(batch, t, n, generator=g, dtype=torch.float64))
    return [x.requires_grad_() for x in inputs], g


def test_ssd_chunked_gradients_equal_recurrent_gradients():
    inputs, g = ssd_inputs(2, batch=2, t=19, heads=3, p=4, n=5, a_scale=4)
    weight = torch.randn(2, 19, 3, 4, generator=g, dtype=torch.float64)
    chunked = torch.autograd.grad((chunk_ssd(*inputs, 4) * weight).sum(), inputs)
    plain = torch.autograd.grad((recurrent_ssd(*inputs) * weight).sum(), inputs)
    for ours, reference in zip(chunked, plain, strict=True):
        assert torch.allclose(ours, reference, atol=1e-10)


def test_ssd_hand_written_backward_passes_gradcheck():
    args, _ = ssd_inputs(4, batch=1, t=7, heads=2, p=2, n=3, a_scale=2)
    assert torch.autograd.gradcheck(lambda *a: chunk_ssd(*a, 3), args)


@pytest.mark.parametrize("t", [1, 2, 3, 9])
def test_causal_conv_matches_conv1d_and_its_backward_passes_gradcheck(t):
    torch.manual_seed(t)
    module = CausalConv(5, 4).double()
    x = torch.randn(2, t, 5, dtype=torch.float64, requires_grad=True)
    reference = module.conv(x.transpose(1, 2))[..., :t].transpose(1, 2)
    assert torch.allclose(module(x), reference, atol=1e-12)
    weight = module.conv.weight[:, 0].detach().clone().requires_grad_()
    bias = module.conv.bias.detach().clone().requires_grad_()
    assert torch.autograd.gradcheck(causal_depthwise_conv, (x, weight, bias))
    assert torch.autograd.gradcheck(causal_depthwise_conv, (x, weight, None))


@pytest.mark.parametrize("arch", ["gdn", "mamba2"])
def test_whole_model_chunked_equals_recurrent_with_gradients(arch):
    torch.manual_seed(0)
    model = build_model(arch, TINY, 50).double()
    ids = torch.randint(0, 50, (2, 21))
    chunked = model(ids)
    grad_chunked = torch.autograd.grad(chunked.square().sum(), model.embed.weight)[0]
    set_mode(model, "recurrent")
    recurrent = model(ids)
    grad_recurrent = torch.autograd.grad(recurrent.square().sum(), model.embed.weight)[0]
    assert torch.allclose(chunked, recurrent, atol=1e-9)
    assert torch.allclose(grad_chunked, grad_recurrent, atol=1e-8)


@pytest.mark.parametrize("arch", ["transformer", "gdn", "mamba2", "lstm"])
@pytest.mark.parametrize("tied", [False, True])
def test_families_are_causal_and_name_their_embeddings(arch, tied):
    torch.manual_seed(0)
    config = ModelConfig(**{**TINY.__dict__, "tie_embeddings": tied})
    model = build_model(arch, config, 40).double()
    ids = torch.randint(0, 40, (2, 12))
    changed = ids.clone()
    changed[:, 7:] = (changed[:, 7:] + 1) % 40
    a, b = model(ids), model(changed)
    assert a.shape == (2, 12, 40)
    assert torch.allclose(a[:, :7], b[:, :7]) and not torch.allclose(a[:, 7:], b[:, 7:])
    names = dict(model.named_parameters())
    assert "embed.weight" in names and ("head.weight" in names) != tied


@pytest.mark.parametrize("tied", [False, True])
def test_masked_loss_equals_the_masked_mean_of_full_logits(tied):
    torch.manual_seed(0)
    model = build_model("transformer", ModelConfig(**{**TINY.__dict__, "tie_embeddings": tied}),
                        40).double()
    tokens = torch.randint(0, 40, (3, 15))
    mask = torch.rand(3, 14) < 0.3
    mask[0, 0] = True
    logits = model(tokens[:, :-1])
    expected = torch.nn.functional.cross_entropy(
        logits.reshape(-1, 40), tokens[:, 1:].masked_fill(~mask, -100).reshape(-1))
    grad_expected = torch.autograd.grad(expected, model.embed.weight)[0]
    loss = model.loss(tokens, mask)
    assert torch.allclose(loss, expected, atol=1e-12)
    assert torch.allclose(torch.autograd.grad(loss, model.embed.weight)[0], grad_expected,
                          atol=1e-12)
    full = torch.nn.functional.cross_entropy(logits.reshape(-1, 40), tokens[:, 1:].reshape(-1))
    assert torch.allclose(model.loss(tokens), full, atol=1e-12)


def test_attention_rope_equals_the_rotate_half_reference_with_gradients():
    torch.manual_seed(0)
    attention = Attention(ModelConfig(d_model=32, n_heads=4)).double()
    x = torch.randn(2, 9, 32, dtype=torch.float64, requires_grad=True)

    def reference(x):
        q, k, v = attention.qkv(x).view(2, 9, 3, 4, 8).permute(2, 0, 3, 1, 4)
        angles = torch.outer(torch.arange(9.0), 1e4 ** -(torch.arange(0, 8, 2) / 8))
        angles = torch.cat((angles, angles), dim=-1)  # float32, as the model's cache
        q, k = (rotate(z, angles.cos().double(), angles.sin().double()) for z in (q, k))
        out = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        return attention.o_proj(out.transpose(1, 2).reshape(2, 9, 32))

    weight = torch.randn(2, 9, 32, dtype=torch.float64)
    params = (x, attention.qkv.weight)
    ours = attention(x)
    expected = reference(x)
    assert torch.allclose(ours, expected, atol=1e-12)
    for a, b in zip(torch.autograd.grad((ours * weight).sum(), params),
                    torch.autograd.grad((expected * weight).sum(), params), strict=True):
        assert torch.allclose(a, b, atol=1e-12)


def test_fused_head_cross_entropy_equals_the_unfused_pair():
    g = torch.Generator().manual_seed(3)
    h = torch.randn(37, 6, generator=g, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(11, 6, generator=g, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, 11, (37,), generator=g)
    expected = torch.nn.functional.cross_entropy(h @ weight.T, targets)
    grads_expected = torch.autograd.grad(expected, (h, weight))
    loss = linear_cross_entropy(h, weight, targets, rows=8)
    assert torch.allclose(loss, expected, atol=1e-12)
    for ours, reference in zip(torch.autograd.grad(loss * 3, (h, weight)), grads_expected,
                               strict=True):
        assert torch.allclose(ours, 3 * reference, atol=1e-12)
    with torch.no_grad():
        assert torch.allclose(linear_cross_entropy(h, weight, targets, rows=5), expected)


def test_muon_gets_hidden_matrices_only():
    model = build_model("transformer", TINY, 50)
    roles = split_parameters(model)
    assert {n for n, _ in roles["edge"]} == {"embed.weight", "head.weight"}
    assert all(p.ndim == 2 for _, p in roles["hidden_matrix"])
    assert all(p.ndim == 1 for _, p in roles["other"])
    opts = build_optimizers(model, TrainConfig(optimizer="muon"))
    muon = {id(p) for g in opts.parts["muon"].param_groups for p in g["params"]}
    assert muon == {id(p) for _, p in roles["hidden_matrix"]}
    adam = {id(p) for g in opts.parts["adamw"].param_groups for p in g["params"]}
    assert not muon & adam and len(muon | adam) == len(list(model.parameters()))


def test_schedule_warms_up_then_decays_to_the_floor():
    config = TrainConfig(tokens=100 * 2048, warmup_tokens=10 * 2048, min_lr_ratio=0.1)
    factors = [lr_factor(s, config) for s in range(100)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in pairwise(factors[10:]))
    assert factors[-1] == pytest.approx(0.1, abs=1e-3)


def test_bad_model_config_is_a_clear_error():
    with pytest.raises(ConvergentError, match="head_dim"):
        build_model("mamba2", ModelConfig(d_model=30, n_heads=3, head_dim=7), 10)
    with pytest.raises(ConvergentError, match="neural families"):
        build_model("word2vec", TINY, 10)


def test_keep_freed_memory_is_accepted_by_glibc():
    import sys

    from convergent.train.allocator import keep_freed_memory

    accepted = keep_freed_memory()
    assert accepted or not sys.platform.startswith("linux")


@pytest.mark.parametrize("arch", ["transformer", "mamba2", "gdn"])
def test_compiled_blocks_give_the_eager_loss_and_gradients(arch):
    config = ModelConfig(d_model=32, n_layers=2, n_heads=2, head_dim=16 if arch == "mamba2"
                         else 0, chunk_size=8, d_state=8)
    torch.manual_seed(0)
    eager = build_model(arch, config, 97)
    compiled = build_model(arch, config, 97)
    compiled.load_state_dict(eager.state_dict())
    compile_blocks(compiled)
    assert compiled.state_dict().keys() == eager.state_dict().keys()  # checkpoint names kept
    tokens = torch.randint(0, 97, (8, 17))  # T = head_dim once broke Inductor on our RoPE
    losses = []
    for model in (eager, compiled):
        loss = model.loss(tokens)
        loss.backward()
        losses.append(loss.detach())
    torch.testing.assert_close(losses[1], losses[0], rtol=1e-5, atol=1e-6)
    for (name, a), b in zip(eager.named_parameters(), compiled.parameters(), strict=True):
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-4, atol=1e-6, msg=name)


def test_the_cpu_path_never_imports_the_gpu_kernels(monkeypatch):
    import sys

    monkeypatch.delitem(sys.modules, "convergent.train.models.gpu_kernels", raising=False)
    for arch in ("gdn", "mamba2"):
        build_model(arch, TINY, 20).loss(torch.randint(0, 20, (1, 9)),
                                         segments=torch.tensor([[0] * 4 + [1] * 4])).backward()
    assert "convergent.train.models.gpu_kernels" not in sys.modules
