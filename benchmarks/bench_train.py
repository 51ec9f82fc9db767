"""Training speed of our models against Hugging Face implementations of equal configs.

One run measures, on the same CPU and thread count: training tokens/s (forward, backward,
AdamW step) of our Transformer vs ``LlamaForCausalLM``, our Mamba-2 vs
``Mamba2ForCausalLM`` (its pure-PyTorch path, the one that runs without CUDA kernels),
our Gated DeltaNet layer vs the Qwen3-Next ``Qwen3NextGatedDeltaNet`` layer (forward +
backward of the token mixer alone; Hugging Face has no Gated DeltaNet language model
without a mixture-of-experts MLP), and our LSTM (no Hugging Face counterpart); plus
model-FLOPs utilization (MFU) against the float32 matmul peak measured in the same run.

The ``bound`` column (= ratio / MFU) is the ratio our model would reach if it ran at the
measured matmul peak and nothing else took time: Hugging Face's time over the time of the
model FLOPs (6 x parameters x tokens, plus causal attention for the Transformer; the
linear-RNN kernels' own FLOPs are left out, so for them it is a loose upper bound). A
target above it cannot be met with the same math at equal config.
``--profile`` adds, per model of ours, the share of one step spent in matmuls and the
largest other operations (torch.profiler, after the timing).

    .venv/bin/python benchmarks/bench_train.py [--width 512] [--layers 4] [--seq 256]
        [--batch 8] [--vocab 8192] [--d-state 64] [--chunk 64] [--threads 2] [--repeats 3]
        [--clock wall|cpu] [--no-compile] [--profile]

Each of our models is timed twice, eager and with its blocks compiled by ``torch.compile``
(as ``convergent train --compile``; the compile is excluded). The process keeps freed
memory as training does (``keep_freed_memory``), which applies to both sides.

On a machine shared with other jobs, ``--threads 1 --clock cpu`` (process CPU time) is far
less noisy than wall time; the two sides' repeats are interleaved either way.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

from convergent.train.allocator import keep_freed_memory
from convergent.train.config import ModelConfig
from convergent.train.models import build_model, compile_blocks
from convergent.train.models.common import ffn_width
from convergent.train.models.deltanet import GatedDeltaNet


def matmul_peak(now: Callable[[], float], size: int = 1024, repeats: int = 20) -> float:
    """Best float32 GFLOP/s of a square matmul."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    for _ in range(3):
        a @ b
    best = 0.0
    for _ in range(repeats):
        start = now()
        a @ b
        best = max(best, 2 * size**3 / (now() - start) / 1e9)
    return best


def time_steps(fns: list[Callable[[], None] | None], steps: int, repeats: int,
               now: Callable[[], float]) -> list[float | None]:
    """Median seconds per call of each step function (after two warm-up calls each).

    The repeats of the functions are interleaved, so that load from other processes that
    drifts during the run hits every side alike.
    """
    for fn in fns:
        if fn is not None:
            fn()
            fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, record in zip(fns, times, strict=True):
            if fn is None:
                continue
            start = now()
            for _ in range(steps):
                fn()
            record.append((now() - start) / steps)
    return [statistics.median(t) if t else None for t in times]


def lm_step(model: nn.Module, ids: torch.Tensor, hf: bool) -> Callable[[], None]:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step() -> None:
        loss = model(input_ids=ids[:, :-1], labels=ids[:, :-1]).loss if hf else model.loss(ids)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def mixer_step(layer: nn.Module, x: torch.Tensor) -> Callable[[], None]:
    def step() -> None:
        layer(x).square().mean().backward()
        layer.zero_grad(set_to_none=True)

    return step


MATMUL_OPS = ("aten::mm", "aten::addmm", "aten::addmm_", "aten::bmm", "aten::baddbmm",
              "aten::linalg_solve_triangular", "aten::_scaled_dot_product_flash_attention_for_cpu",
              "aten::_scaled_dot_product_flash_attention_for_cpu_backward")


def profile_step(step: Callable[[], None], top: int = 6) -> str:
    """One profiled step: matmul share of the time and the largest other operations."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    events = [e for e in prof.key_averages() if e.key.startswith("aten::")]
    total = sum(e.self_cpu_time_total for e in events)
    matmul = sum(e.self_cpu_time_total for e in events if e.key in MATMUL_OPS)
    rest = sorted((e for e in events if e.key not in MATMUL_OPS),
                  key=lambda e: -e.self_cpu_time_total)[:top]
    others = ", ".join(f"{e.key[6:]} {100 * e.self_cpu_time_total / total:.0f}%" for e in rest)
    return f"matmuls {100 * matmul / total:.0f}%; then {others}"


def flops_per_token(model: nn.Module, layers: int, width: int, seq: int) -> float:
    """6 x (parameters touched per token) + causal attention, the usual MFU convention."""
    params = sum(p.numel() for n, p in model.named_parameters() if n != "embed.weight")
    attention = 6 * layers * seq * width  # 12 L T d for full attention, halved for causal
    return 6 * params + attention


def hf_llama(config: ModelConfig, vocab: int, seq: int) -> nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=vocab, hidden_size=config.d_model,
                      intermediate_size=ffn_width(config), num_hidden_layers=config.n_layers,
                      num_attention_heads=config.n_heads, num_key_value_heads=config.n_heads,
                      max_position_embeddings=seq + 1, rms_norm_eps=1e-6,
                      tie_word_embeddings=False)
    cfg._attn_implementation = "sdpa"
    return LlamaForCausalLM(cfg)


def hf_mamba2(config: ModelConfig, vocab: int) -> nn.Module:
    from transformers import Mamba2Config, Mamba2ForCausalLM

    inner = config.expand * config.d_model
    cfg = Mamba2Config(vocab_size=vocab, hidden_size=config.d_model,
                       num_hidden_layers=config.n_layers, state_size=config.d_state,
                       expand=config.expand, head_dim=config.head_dim,
                       num_heads=inner // config.head_dim, n_groups=1,
                       conv_kernel=config.conv_size, chunk_size=config.chunk_size,
                       use_bias=False, tie_word_embeddings=False)
    return Mamba2ForCausalLM(cfg)


def hf_gdn(config: ModelConfig) -> nn.Module:
    from transformers.models.qwen3_next.configuration_qwen3_next import Qwen3NextConfig
    from transformers.models.qwen3_next.modeling_qwen3_next import Qwen3NextGatedDeltaNet

    cfg = Qwen3NextConfig(hidden_size=config.d_model, num_hidden_layers=1,
                          layer_types=["linear_attention"],
                          linear_num_value_heads=config.n_heads,
                          linear_num_key_heads=config.n_heads,
                          linear_key_head_dim=config.d_model // config.n_heads,
                          linear_value_head_dim=config.d_model // config.n_heads,
                          linear_conv_kernel_dim=config.conv_size)
    return Qwen3NextGatedDeltaNet(cfg, layer_idx=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--vocab", type=int, default=8192)
    parser.add_argument("--d-state", type=int, default=64, help="Mamba-2 state width")
    parser.add_argument("--chunk", type=int, default=64, help="linear-RNN chunk length")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="cpu: process CPU time, for --threads 1 on a shared machine")
    parser.add_argument("--no-compile", dest="compile", action="store_false",
                        help="skip the torch.compile'd variant of our models")
    parser.add_argument("--profile", action="store_true",
                        help="also profile one step of each of our models")
    args = parser.parse_args()
    if args.clock == "cpu" and args.threads != 1:
        parser.error("--clock cpu measures one thread: use it with --threads 1")
    now = time.process_time if args.clock == "cpu" else time.perf_counter
    if args.threads:
        torch.set_num_threads(args.threads)
    keep_freed_memory()  # as `convergent train` does; process-wide, so both sides get it
    import transformers.utils.logging as hf_logging

    hf_logging.set_verbosity_error()
    torch.manual_seed(0)
    tokens = args.batch * args.seq
    ids = torch.randint(0, args.vocab, (args.batch, args.seq + 1))
    peak = matmul_peak(now)
    print(f"threads {torch.get_num_threads()}, {args.clock} clock, matmul peak {peak:.1f} GFLOP/s; "
          f"width {args.width}, layers {args.layers}, seq {args.seq}, batch {args.batch}, "
          f"vocab {args.vocab}")
    heads = max(1, args.width // 64)
    base = ModelConfig(d_model=args.width, n_layers=args.layers, n_heads=heads, head_dim=0,
                       d_state=args.d_state, chunk_size=args.chunk)
    mamba_cfg = ModelConfig(**{**base.__dict__, "head_dim": 64})
    rows = []
    profiles = []

    def pair(name, theirs, ours_step, compiled_step, theirs_step, flops):
        if compiled_step is not None and args.compile:
            started = time.perf_counter()
            compiled_step()
            compile_notes.append(f"{name}: compiled in {time.perf_counter() - started:.0f} s")
        else:
            compiled_step = None
        t_ours, t_comp, t_hf = time_steps([ours_step, compiled_step, theirs_step], args.steps,
                                          args.repeats, now)
        best = min(t for t in (t_ours, t_comp) if t is not None)
        mfu = flops * tokens / best / 1e9 / peak
        bound = t_hf / (flops * tokens / 1e9 / peak) if t_hf else None  # = ratio / MFU
        rows.append((name, t_ours, t_comp, t_hf, mfu, bound, theirs))
        if args.profile:
            profiles.append((name, profile_step(ours_step)))

    def language_model(arch: str, config: ModelConfig, compiled: bool) -> nn.Module:
        model = build_model(arch, config, args.vocab)
        return compile_blocks(model) if compiled else model

    compile_notes: list[str] = []
    for arch, name, config, attention_layers, theirs, hf_model in (
        ("transformer", "Transformer", base, args.layers, "LlamaForCausalLM",
         lambda: hf_llama(base, args.vocab, args.seq)),
        ("mamba2", "Mamba-2", mamba_cfg, 0, "Mamba2ForCausalLM",
         lambda: hf_mamba2(mamba_cfg, args.vocab)),
    ):
        ours = language_model(arch, config, False)
        pair(name, theirs, lm_step(ours, ids, False),
             lm_step(language_model(arch, config, True), ids, False),
             lm_step(hf_model(), ids, True),
             flops_per_token(ours, attention_layers, args.width, args.seq))
    x = torch.randn(args.batch, args.seq, args.width, requires_grad=False)
    ours_layer, compiled_layer = GatedDeltaNet(base), GatedDeltaNet(base)
    compiled_layer.compile()
    pair("Gated DeltaNet (layer)", "Qwen3NextGatedDeltaNet", mixer_step(ours_layer, x),
         mixer_step(compiled_layer, x), mixer_step(hf_gdn(base), x),
         6 * sum(p.numel() for p in ours_layer.parameters() if p.ndim == 2))
    ours = language_model("lstm", base, False)
    pair("LSTM", "(none in transformers)", lm_step(ours, ids, False), None, None,
         flops_per_token(ours, 0, 0, args.seq))

    def rate(t: float | None) -> str:
        return f"{tokens / t:,.0f}" if t else "-"

    def ratio(t: float | None, t_hf: float | None) -> str:
        return f"{t_hf / t:.2f}x" if t and t_hf else "-"

    print("\n| model | ours tokens/s | ours compiled | Hugging Face | ratio | compiled ratio "
          "| bound | MFU | reference |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, t_ours, t_comp, t_hf, mfu, bound, ref in rows:
        bound_text = f"{bound:.2f}x" if bound else "-"
        print(f"| {name} | {rate(t_ours)} | {rate(t_comp)} | {rate(t_hf)} | {ratio(t_ours, t_hf)} "
              f"| {ratio(t_comp, t_hf)} | {bound_text} | {100 * mfu:.0f}% | {ref} |")
    for note in compile_notes:
        print(note)
    for name, text in profiles:
        print(f"\n{name}: {text}")

if __name__ == "__main__":
    main()
