"""Peak training memory per device, estimated from the config before a run starts.

Terms (bytes per device):

- parameters and gradients: float32 (the master weights; autocast computes in bf16 but keeps
  float32 parameters), divided by the world size under FSDP;
- optimizer state: AdamW's two moments on the parameters it holds, Muon's one momentum on
  the hidden matrices (the roles :func:`convergent.train.optim.split_parameters` assigns);
- activations: the tensors autograd saves for the backward, counted per family from the
  model code (per token and block, in two classes: always float32, such as norm inputs and
  the scans' decay factors, and autocast outputs, bf16 under bf16), times layers x
  micro-batch x seq_len; plus the saved bf16 weight copies autocast makes, and the fused
  head's saved gradients. With activation checkpointing only each block's input
  (float32 residual stream) is kept, plus one block's worth while it is recomputed;
- other: the fused head's logits workspace, DDP's gradient buckets, FSDP's gathered
  blocks, Muon's Newton-Schulz workspace.

Checked against the saved-tensor bytes of tiny models of every family (see
tests/test_train_memory.py: within 4% for every family, fp32 and bf16). The scans' terms are
those of our reference kernels; flash-linear-attention's and mamba-ssm's GPU kernels save
less (they recompute within chunks), so there the estimate errs high. The LSTM's term is
oneDNN's workspace (CPU), measured; cuDNN's reserve space on GPU is of the same order but
not the same. No library estimates this for
our model families, so it is written here.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from typing import Any

from convergent.errors import ConvergentError
from convergent.train.config import ModelConfig, TrainConfig
from convergent.train.flops import block_matrices, mamba_sizes, parameter_count

GIB = 1 << 30
# oneDNN LSTM workspace per token, layer and unit of width (bytes), measured with torch 2.13
LSTM_WORKSPACE = {"fp32": 64, "bf16": 46}


@dataclass(frozen=True)
class MemoryEstimate:
    """Estimated peak bytes per device by term, and the inputs the estimate assumed."""

    parameters: int
    gradients: int
    optimizer: int
    activations: int
    other: int
    total: int
    activation_bytes_per_row: int
    arch: str
    micro_batch: int
    seq_len: int
    precision: str
    activation_checkpointing: bool
    world_size: int
    fsdp: bool
    optimizer_name: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _resolve_precision(config: TrainConfig) -> str:
    """The engine's rule (``auto``: bf16 on CUDA), for a device that may not be here."""
    import torch

    from convergent.train.engine import resolve_precision

    device = config.engine.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return resolve_precision(config.engine.precision, torch.device(device))


def _per_token_block(arch: str, config: ModelConfig, seq_len: int) -> tuple[float, float, float]:
    """Saved elements per token and block: (always float32, autocast dtype, bf16-only)."""
    d, layers = config.d_model, config.n_layers
    norm_f32, norm_act = 2 * d + 1, d  # pre-norm: input, rstd, output; the linear's input
    if arch == "lstm":
        return 0.0, 2 * d / layers, 0.0  # the stack's input and output; workspace apart
    if arch == "mamba2":
        inner, heads, conv = mamba_sizes(config)
        state = config.d_state
        chunk = min(config.chunk_size, seq_len)
        padded = math.ceil(seq_len / chunk) * chunk / seq_len
        f32 = norm_f32 + 2 * conv + 2 * heads + 3 * inner + 1 + padded * (
            2 * inner + 2 * state + 2 * heads * chunk + 2 * heads + inner * state / chunk)
        act = norm_act + 2 * inner + conv + heads + 2 * inner + padded * (chunk + inner)
        return f32, act, 0.0
    from convergent.train.models.common import ffn_width, head_dim

    ffn, heads = ffn_width(config), config.n_heads
    dim = head_dim(config)
    inner = heads * dim
    mlp_act = 4 * ffn  # gate_up output, silu(gate) * up, the down projection's input
    if arch == "transformer":  # q, k (rotated), qkv, attention output and its copy, lse
        return 2 * norm_f32 + heads, 2 * norm_act + 7 * inner + mlp_act, 0.0
    chunk = min(config.chunk_size, seq_len)
    padded = math.ceil(seq_len / chunk) * chunk / seq_len
    f32 = 2 * norm_f32 + 8 * inner + 8 * heads + padded * (
        6 * inner + 3 * heads + 3 * heads * chunk + heads * dim * dim / chunk)
    act = 2 * norm_act + 7 * inner + mlp_act + padded * (3 * inner + 2 * heads * chunk)
    return f32, act, 2 * d  # bf16: the gates' and output gate's own casts of the input


def activation_terms(config: TrainConfig, precision: str) -> dict[str, int]:
    """Saved bytes by term: per micro-batch row ``blocks`` (all layers, or the one being
    recomputed under activation checkpointing), ``block_inputs`` (checkpointing only),
    ``outside`` (ids, the final norm's input, output and rstd, the head's saved grad of h);
    and independent of the rows
    ``weight_copies`` (autocast's bf16 copies) and ``head_grad`` (the fused head's saved
    weight gradient)."""
    arch, model, seq = config.arch, config.model, config.seq_len
    d, layers, vocab = model.d_model, model.n_layers, config.vocab_size
    half = 2 if precision == "bf16" else 4
    f32, act, bf16_only = _per_token_block(arch, model, seq)
    block = 4 * f32 + half * act + (2 * bf16_only if precision == "bf16" else 0)
    if arch == "lstm":
        block += LSTM_WORKSPACE[precision] * d
    counts = parameter_count(arch, model, vocab)
    copies = 2 * (counts["blocks"] if arch == "lstm" else counts["block_matmul"])
    checkpointed = config.engine.activation_checkpointing and arch != "lstm"
    return {"blocks": int(seq * block * (1 if checkpointed else layers)),
            "block_inputs": 4 * d * layers * seq if checkpointed else 0,
            "outside": seq * (8 + 4 * (2 * d + 1) + half * d),
            "weight_copies": (copies // layers if checkpointed else copies)
            if precision == "bf16" else 0,
            "head_grad": 4 * vocab * d}


def estimate_memory(config: TrainConfig, vocab_size: int, world_size: int = 1, *,
                    precision: str | None = None) -> MemoryEstimate:
    """Peak bytes per device for training ``config`` on ``world_size`` ranks.

    ``precision`` is the resolved one (``fp32``/``bf16``); by default the config's, with
    ``auto`` taken as bf16 on CUDA and fp32 on CPU. The micro-batch is
    ``engine.micro_batch`` or the rank's share of ``batch_size``.
    """
    if not config.neural:
        raise ConvergentError(f"arch {config.arch!r}: memory is estimated for neural models")
    if world_size < 1:
        raise ConvergentError(f"world_size must be a positive integer, got {world_size}")
    config = config.replace(vocab_size=vocab_size)
    precision = precision or _resolve_precision(config)
    if precision not in LSTM_WORKSPACE:
        raise ConvergentError(f"precision {precision!r}: choose fp32 or bf16")
    engine = config.engine
    rows = engine.micro_batch or math.ceil(config.batch_size / world_size)
    counts = parameter_count(config.arch, config.model, vocab_size)
    shard = world_size if engine.fsdp else 1
    total_params = counts["total"]
    muon = counts["block_matmul"] if config.optimizer == "muon" else 0
    params = 4 * total_params // shard
    optimizer = (4 * muon + 8 * (total_params - muon)) // shard
    terms = activation_terms(config, precision)
    per_row = terms["blocks"] + terms["block_inputs"] + terms["outside"]
    fixed = terms["weight_copies"] + terms["head_grad"]
    activations = per_row * rows + fixed
    other = _workspace(config, counts, world_size)
    total = 2 * params + optimizer + activations + other
    return MemoryEstimate(
        parameters=params, gradients=params, optimizer=optimizer, activations=activations,
        other=other, total=total, activation_bytes_per_row=per_row, arch=config.arch,
        micro_batch=rows, seq_len=config.seq_len, precision=precision,
        activation_checkpointing=engine.activation_checkpointing, world_size=world_size,
        fsdp=engine.fsdp, optimizer_name=config.optimizer)


def _workspace(config: TrainConfig, counts: dict[str, int], world_size: int) -> int:
    """Transient buffers: head logits, DDP buckets, FSDP gathers, Newton-Schulz."""
    vocab, d = config.vocab_size, config.model.d_model
    head_rows = min(1024, max(256, (1 << 22) // vocab))  # linear_cross_entropy's row blocks
    other = 2 * 4 * head_rows * vocab + 4 * vocab * d  # logits/probs; grad_w scaled copy
    if world_size > 1 and not config.engine.fsdp:
        other += 4 * counts["total"]  # DDP's gradient buckets
    if config.engine.fsdp:
        other += 2 * 4 * counts["blocks"] // config.model.n_layers  # gathered + prefetched
    if config.optimizer == "muon":
        largest = max(o * i for o, i in block_matrices(config.arch, config.model))
        other += 4 * 4 * largest
    return int(other)


def device_memory_bytes(device: Any) -> int | None:
    """Total memory of a CUDA device; on CPU the available RAM (``/proc/meminfo``, shared
    by every rank on the node); None where neither can be read."""
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        return int(torch.cuda.get_device_properties(device).total_memory)
    if device.type != "cpu" or not os.path.exists("/proc/meminfo"):
        return None
    with open("/proc/meminfo") as handle:
        for line in handle:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return None


def largest_micro_batch(estimate: MemoryEstimate, capacity_bytes: int) -> int:
    """The most rows per forward that fit ``capacity_bytes`` (0 when not even one)."""
    fixed = estimate.total - estimate.activation_bytes_per_row * estimate.micro_batch
    if estimate.activation_bytes_per_row <= 0:
        return estimate.micro_batch if fixed <= capacity_bytes else 0
    return max(0, (capacity_bytes - fixed) // estimate.activation_bytes_per_row)


def check_fits(estimate: MemoryEstimate, capacity_bytes: int, where: str) -> None:
    """Raise ConvergentError (one line) when ``estimate`` exceeds ``capacity_bytes``."""
    if estimate.total <= capacity_bytes:
        return
    rows = largest_micro_batch(estimate, capacity_bytes)
    hints = []
    if 1 <= rows < estimate.micro_batch:
        hints.append(f"--micro-batch {rows}")
    if not estimate.activation_checkpointing and estimate.arch != "lstm":
        hints.append("--activation-checkpointing")
    advice = (f"use {' or '.join(hints)}" if hints
              else "shard the model over more devices with FSDP or use a smaller model")
    raise ConvergentError(
        f"{where}: the estimated memory per device, {estimate.total / GIB:.1f} GiB "
        f"(micro-batch {estimate.micro_batch}), exceeds its {capacity_bytes / GIB:.1f} GiB; "
        f"{advice}")


def describe(estimate: MemoryEstimate) -> str:
    """One line: the total and each term, in GiB (MiB below 1 GiB)."""
    unit, scale = ("GiB", GIB) if estimate.total >= GIB else ("MiB", 1 << 20)
    parts = {"params": estimate.parameters, "grads": estimate.gradients,
             "optimizer": estimate.optimizer, "activations": estimate.activations,
             "other": estimate.other}
    terms = ", ".join(f"{name} {value / scale:.1f}" for name, value in parts.items())
    return f"memory per device ~ {estimate.total / scale:.1f} {unit} ({terms})"
