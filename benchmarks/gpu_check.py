"""Training speed of every family at the paper's size on one GPU, against Hugging Face's Llama.

Each model (Transformer, Gated DeltaNet, Mamba-2, LSTM at the ``paper`` preset's sizes, and
``transformers.LlamaForCausalLM`` of the Transformer's config with SDPA attention) trains on
random tokens with AdamW in bf16 autocast (TF32 for float32 matmuls): ``--warmup`` steps,
then up to ``--steps`` timed steps (stopped early after ``--budget`` seconds per model, and
the warm-up after a third of that, so five models fit in 10 minutes).
The table gives tokens/s, MFU (model FLOPs per token from :mod:`convergent.train.flops` x
tokens/s over the device's dense bf16 peak), peak memory (``torch.cuda.max_memory_allocated``),
tokens/s relative to the Llama, and the library kernels that served (flash-linear-attention,
mamba-ssm, causal-conv1d; see docs/gpu.md). A model that fails (out of memory, a kernel
error) gets its error in the table and the others still run.

    python benchmarks/gpu_check.py [--batch 8] [--warmup 30] [--steps 100] [--budget 75]
        [--compile] [--precision bf16|fp32] [--families transformer,gdn,mamba2,lstm]
        [--no-hf] [--out gpu_check.json]
    python benchmarks/gpu_check.py --device cpu --steps 3 --tiny   # the plumbing, on a CPU
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from bench_train import hf_llama
from torch import nn

from convergent.io import write_json_atomic
from convergent.train.config import ModelConfig
from convergent.train.flops import flops_per_token, peak_flops
from convergent.train.models import build_model, compile_blocks, gpu_kernels
from convergent.train.presets import preset

FAMILIES = ("transformer", "gdn", "mamba2", "lstm")
GIB = 2**30


@dataclass(frozen=True)
class Row:
    """One model's measurement (``error`` set, and the numbers None, when it failed)."""

    model: str
    arch: str
    params_m: float | None = None
    tokens_per_s: float | None = None
    mfu: float | None = None
    peak_memory_gib: float | None = None
    vs_llama: float | None = None
    kernels: str = ""
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def sizes(arch: str, tiny: bool) -> tuple[ModelConfig, int, int]:
    """(model config, vocabulary, sequence length): the paper preset's, or a tiny one."""
    if tiny:
        return ModelConfig(d_model=64, n_layers=2, n_heads=4, head_dim=16, d_state=16,
                           chunk_size=16), 512, 64
    config = preset("paper", arch)
    return config.model, config.vocab_size, config.seq_len


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def measure(model: nn.Module, loss_of: Callable[[torch.Tensor], torch.Tensor],
            batches: list[torch.Tensor], args: argparse.Namespace,
            device: torch.device) -> float:
    """Tokens/s of AdamW training steps on ``batches`` (cycled) after ``args.warmup`` steps."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device.type == "cuda")

    def step(i: int) -> None:
        with autocast(device, args.precision):
            loss = loss_of(batches[i % len(batches)])
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    start = time.perf_counter()
    for i in range(args.warmup):  # the first steps compile and autotune; a third of the budget
        step(i)
        if time.perf_counter() - start > args.budget / 3:
            break
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    start, done = time.perf_counter(), 0
    while done < args.steps and (done == 0 or time.perf_counter() - start < args.budget):
        step(done)
        done += 1
    sync()
    tokens = done * batches[0].shape[0] * (batches[0].shape[1] - 1)
    return tokens / (time.perf_counter() - start)


def run_one(name: str, arch: str, args: argparse.Namespace, device: torch.device,
            peak: float | None) -> Row:
    """Build, train and measure one model; failures become the row's ``error``."""
    config, vocab, seq = sizes(arch, args.tiny)
    hf = name == "llama (HF)"
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    gpu_kernels.SERVED.clear()
    try:
        torch.manual_seed(0)
        if hf:
            model = hf_llama(config, vocab, seq).to(device)
            if args.compile:
                for layer in model.model.layers:
                    layer.compile()

            def loss_of(tokens: torch.Tensor) -> torch.Tensor:
                ids = tokens[:, :-1]
                return model(input_ids=ids, labels=ids).loss  # shifted inside: L - 1 targets
        else:
            model = build_model(arch, config, vocab).to(device)
            if args.compile:
                compile_blocks(model)
            loss_of = model.loss
        batches = [torch.randint(vocab, (args.batch, seq + 1), device=device)
                   for _ in range(4)]
        rate = measure(model, loss_of, batches, args, device)
    except (RuntimeError, ValueError, AssertionError) as err:  # OOM is a RuntimeError
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        return Row(name, arch, error=f"{type(err).__name__}: {message[:160]}")
    flops = flops_per_token(arch, config, vocab, seq)
    memory = (torch.cuda.max_memory_allocated(device) / GIB if device.type == "cuda" else None)
    return Row(name, arch, params_m=round(sum(p.numel() for p in model.parameters()) / 1e6, 1),
               tokens_per_s=round(rate, 1),
               mfu=round(flops * rate / peak, 4) if peak else None,
               peak_memory_gib=None if memory is None else round(memory, 2),
               kernels=", ".join(sorted(gpu_kernels.SERVED))
               or ("reference" if arch in ("gdn", "mamba2") else "-"))


def table(rows: list[Row]) -> str:
    def cell(value: float | None, form: str) -> str:
        return "-" if value is None else format(value, form)

    lines = ["| model | params (M) | tokens/s | MFU | peak memory (GiB) | x Llama | kernels |",
             "| --- | ---: | ---: | ---: | ---: | ---: | --- |"]
    for r in rows:
        if r.error:
            lines.append(f"| {r.model} | failed: {r.error} | | | | | |")
            continue
        lines.append(f"| {r.model} | {cell(r.params_m, '.1f')} | {cell(r.tokens_per_s, ',.0f')}"
                     f" | {cell(None if r.mfu is None else 100 * r.mfu, '.1f')}"
                     f"{'%' if r.mfu is not None else ''} | {cell(r.peak_memory_gib, '.1f')}"
                     f" | {cell(r.vs_llama, '.2f')} | {r.kernels} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--precision", choices=("bf16", "fp32"), default="bf16")
    parser.add_argument("--batch", type=int, default=8, help="sequences per step")
    parser.add_argument("--warmup", type=int, default=30, help="untimed steps (1 on a CPU)")
    parser.add_argument("--steps", type=int, default=100, help="timed steps (at most)")
    parser.add_argument("--budget", type=float, default=75.0,
                        help="seconds of timed steps per model at most (warm-up: a third)")
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument("--compile", action="store_true", help="torch.compile the blocks")
    parser.add_argument("--no-hf", action="store_true", help="skip LlamaForCausalLM")
    parser.add_argument("--tiny", action="store_true", help="a tiny config, to test on a CPU")
    parser.add_argument("--out", help="also write the table as JSON here")
    args = parser.parse_args()
    families = [f for f in args.families.split(",") if f]
    if unknown := sorted(set(families) - set(FAMILIES)):
        parser.error(f"--families: unknown {', '.join(unknown)}; choose from {FAMILIES}")
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("gpu_check: no CUDA GPU is available here; it measures GPU training "
                 "(try the plumbing with --device cpu --steps 3 --tiny)")
    if args.device == "cpu" and args.warmup == parser.get_default("warmup"):
        args.warmup = 1
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    peak = peak_flops(name, args.precision) if device.type == "cuda" else None
    print(f"device {name}, {args.precision}, peak "
          f"{'unknown' if peak is None else f'{peak / 1e12:.0f} TFLOP/s'}, batch {args.batch}, "
          f"compile {args.compile}; library kernels available: "
          f"{gpu_kernels.kernels_used(device)}", flush=True)
    runs = [(arch, arch) for arch in families]
    if not args.no_hf:
        runs.append(("llama (HF)", "transformer"))
    rows = []
    for model_name, arch in runs:
        rows.append(run_one(model_name, arch, args, device, peak))
        print(table(rows[-1:]).splitlines()[-1], flush=True)
    llama = next((r.tokens_per_s for r in rows if r.model == "llama (HF)"), None)
    if llama:
        rows = [Row(**{**r.to_dict(), "vs_llama": round(r.tokens_per_s / llama, 3)})
                if r.tokens_per_s else r for r in rows]
    print(table(rows))
    if args.out:
        write_json_atomic(args.out, {
            "device": name, "precision": args.precision, "peak_flops": peak,
            "batch": args.batch, "seq_len": sizes("transformer", args.tiny)[2], "tiny": args.tiny,
            "compile": args.compile, "warmup": args.warmup, "steps": args.steps,
            "kernels_available": gpu_kernels.kernels_used(device),
            "rows": [r.to_dict() for r in rows]})
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
