"""Parameter counts, training FLOPs per token, device peaks and MFU, from the model config.

Convention (Kaplan et al. 2020; Chinchilla, Hoffmann et al. 2022, app. F; PaLM, Chowdhery et
al. 2022, app. B): a matmul of [m, k] by [k, n] is 2 m k n FLOPs; training is forward plus
backward, the backward twice the forward, so 3 x forward. Per token:

- ``6 x`` the block matmul weights (every ``nn.Linear`` weight and the LSTM's gate matrices),
- ``6 x d x V`` for the output head (tied or not; the embedding lookup is free),
- Transformer attention: scores ``Q K^T`` and values ``P V`` are ``4 x T x H x Dh`` forward
  per token and layer for the full square; we count the causal half only (factor
  :data:`CAUSAL_FACTOR` = 0.5), so ``6 x T x H x Dh`` per layer. PaLM's ``12 L H Q T``
  counts the full square, which gives 2x the attention term;
- Gated DeltaNet and Mamba-2: the batched matmuls of the chunked forms in
  :mod:`~convergent.train.models.gated_delta` and :mod:`~convergent.train.models.ssd` (their
  hand-written backwards are exactly 2x their forwards), chunk C = min(chunk_size, T), over the
  padded length ``ceil(T / C) C``. GDN forward per token and head: ``C (6 Dk + 4 Dv) +
  6 Dk Dv``; Mamba-2 forward per token: ``2 C N + 2 C E + 4 E N`` (E = expand x d, N = state);
- the LSTM: its 4-gate input and hidden matrices are its matmul weights (6 x 8 d^2 per layer).

Element-wise work (norms, activations, the softmax, rotary, gates, the depthwise convolution)
and GDN's C x C triangular solve are not counted, as is usual for MFU.
No library computes these for our own model families, so they are written here.
"""

from __future__ import annotations

import math
import re

from convergent.errors import ConvergentError
from convergent.train.config import ModelConfig

CAUSAL_FACTOR = 0.5


def _ffn(config: ModelConfig) -> int:
    from convergent.train.models.common import ffn_width

    return ffn_width(config)


def _head_dim(config: ModelConfig) -> int:
    from convergent.train.models.common import head_dim

    return head_dim(config)


def mamba_sizes(config: ModelConfig) -> tuple[int, int, int]:
    """(inner width E, heads, conv width E + 2N) of a Mamba-2 mixer."""
    inner = config.expand * config.d_model
    return inner, inner // _head_dim(config), inner + 2 * config.d_state


def block_matrices(arch: str, config: ModelConfig) -> list[tuple[int, int]]:
    """Shapes (out, in) of the matmul weights of one block (one layer of the LSTM)."""
    d, f = config.d_model, _ffn(config)
    mlp = [(2 * f, d), (d, f)]
    if arch == "transformer":
        inner = config.n_heads * _head_dim(config)
        return [(3 * inner, d), (d, inner), *mlp]
    if arch == "gdn":
        inner, heads = config.n_heads * _head_dim(config), config.n_heads
        return [(3 * inner, d), (2 * heads, d), (inner, d), (d, inner), *mlp]
    if arch == "mamba2":
        inner, heads, conv = mamba_sizes(config)
        return [(inner + conv + heads, d), (d, inner)]
    if arch == "lstm":
        return [(4 * d, d), (4 * d, d)]
    raise ConvergentError(f"arch {arch!r}: FLOPs are defined for transformer, gdn, mamba2, lstm")


def _block_other(arch: str, config: ModelConfig) -> int:
    """Parameters of one block that are not matmul weights (norms, biases, conv, scalars)."""
    d, k = config.d_model, config.conv_size
    if arch == "transformer":
        return 2 * d
    if arch == "gdn":
        dim, heads = _head_dim(config), config.n_heads
        conv = 3 * heads * dim
        return 2 * d + conv * (k + 1) + 2 * heads + dim
    if arch == "mamba2":
        inner, heads, conv = mamba_sizes(config)
        return d + conv * (k + 1) + 3 * heads + inner
    return 8 * d  # lstm: bias_ih and bias_hh


def parameter_count(arch: str, model_config: ModelConfig, vocab_size: int) -> dict[str, int]:
    """Parameters by part: ``embedding``, ``head`` (0 when tied), ``blocks`` (of which
    ``block_matmul`` are matmul weights), ``final_norm`` and ``total``; from the config."""
    d, layers = model_config.d_model, model_config.n_layers
    matmul = layers * sum(o * i for o, i in block_matrices(arch, model_config))
    blocks = matmul + layers * _block_other(arch, model_config)
    counts = {"embedding": vocab_size * d,
              "head": 0 if model_config.tie_embeddings else vocab_size * d,
              "blocks": blocks, "block_matmul": matmul, "final_norm": d}
    counts["total"] = counts["embedding"] + counts["head"] + blocks + d
    return counts


def _mixer_forward_per_token(arch: str, config: ModelConfig, seq_len: int) -> float:
    """Forward FLOPs per token and layer of the token mixer beyond its projections."""
    if arch == "transformer":
        return 4 * seq_len * config.n_heads * _head_dim(config) * CAUSAL_FACTOR
    if arch not in ("gdn", "mamba2"):
        return 0.0
    chunk = min(config.chunk_size, seq_len)
    padded = math.ceil(seq_len / chunk) * chunk / seq_len
    if arch == "gdn":
        dim = _head_dim(config)
        return padded * config.n_heads * (chunk * 10 * dim + 6 * dim * dim)
    inner, _, _ = mamba_sizes(config)
    state = config.d_state
    return padded * (2 * chunk * state + 2 * chunk * inner + 4 * inner * state)


def flops_breakdown(arch: str, model_config: ModelConfig, vocab_size: int,
                    seq_len: int) -> dict[str, float]:
    """Training FLOPs per token by term: ``matmul`` (block weights), ``head``, ``mixer``
    (attention or the chunked scan, all layers) and ``total``."""
    counts = parameter_count(arch, model_config, vocab_size)
    out = {"matmul": 6.0 * counts["block_matmul"],
           "head": 6.0 * model_config.d_model * vocab_size,
           "mixer": 3.0 * model_config.n_layers * _mixer_forward_per_token(
               arch, model_config, seq_len)}
    out["total"] = out["matmul"] + out["head"] + out["mixer"]
    return out


def flops_per_token(arch: str, model_config: ModelConfig, vocab_size: int,
                    seq_len: int) -> float:
    """Training (forward + backward) FLOPs per token; see the module docstring."""
    return flops_breakdown(arch, model_config, vocab_size, seq_len)["total"]


# Dense (no sparsity) peak FLOP/s per device: (bf16 tensor, tf32 tensor; fp32 where the
# device has no TF32). Sources are the vendors' datasheets, whose headline tensor numbers
# count 2:4 sparsity; the dense figure is half of those.
DEVICE_PEAKS: dict[str, tuple[float, float]] = {
    # NVIDIA H100 Tensor Core GPU datasheet (SXM5 / PCIe / NVL)
    "H100 SXM": (989.4e12, 494.7e12),
    "H100 PCIe": (756.0e12, 378.0e12),
    "H100 NVL": (835.0e12, 417.5e12),
    # NVIDIA H200 Tensor Core GPU datasheet (SXM / NVL)
    "H200": (989.4e12, 494.7e12),
    "H200 NVL": (835.0e12, 417.5e12),
    # NVIDIA H800 product brief (China variant of H100, same tensor peaks)
    "H800": (989.4e12, 494.7e12),
    "H800 PCIe": (756.0e12, 378.0e12),
    # NVIDIA GH200 Grace Hopper Superchip datasheet (the H100 in it)
    "GH200": (989.4e12, 494.7e12),
    # NVIDIA A100 Tensor Core GPU datasheet (SXM and PCIe alike); A800 has the same peaks
    "A100": (312.0e12, 156.0e12),
    "A800": (312.0e12, 156.0e12),
    # NVIDIA A10 datasheet; A10G (AWS G5) per AWS's instance documentation
    "A10": (125.0e12, 62.5e12),
    "A10G": (70.0e12, 35.0e12),
    # NVIDIA L4 / L40 / L40S datasheets
    "L4": (121.0e12, 60.0e12),
    "L40": (181.0e12, 90.5e12),
    "L40S": (362.0e12, 183.0e12),
    # NVIDIA Ada Lovelace architecture whitepaper (FP16/BF16 with FP32 accumulate)
    "RTX 4090": (165.2e12, 82.6e12),
    # NVIDIA Ampere GA102 whitepaper (FP16/BF16 with FP32 accumulate)
    "RTX 3090": (71.0e12, 35.6e12),
    # NVIDIA DGX B200 / HGX B200 datasheets, per GPU; GB200 NVL72 datasheet, per GPU
    "B200": (2250.0e12, 1100.0e12),
    "GB200": (2500.0e12, 1250.0e12),
    # AMD Instinct MI300X / MI325X datasheets (TF32 matrix); MI250X (FP32 matrix, no TF32)
    "MI300X": (1307.4e12, 653.7e12),
    "MI325X": (1307.4e12, 653.7e12),
    "MI250X": (383.0e12, 95.7e12),
}

# torch.cuda.get_device_name() strings -> DEVICE_PEAKS keys, most specific first
# ("NVIDIA H100 80GB HBM3" is the SXM part, "NVIDIA A100-SXM4-80GB", "AMD Instinct MI300X").
_NAME_PATTERNS: tuple[tuple[str, str], ...] = (
    (r"GH200", "GH200"), (r"GB200", "GB200"), (r"B200", "B200"),
    (r"H100.*PCI", "H100 PCIe"), (r"H100.*NVL", "H100 NVL"), (r"H100", "H100 SXM"),
    (r"H200.*NVL", "H200 NVL"), (r"H200", "H200"),
    (r"H800.*PCI", "H800 PCIe"), (r"H800", "H800"),
    (r"A100", "A100"), (r"A800", "A800"), (r"A10G", "A10G"), (r"\bA10\b", "A10"),
    (r"L40S", "L40S"), (r"\bL40\b", "L40"), (r"\bL4\b", "L4"),
    (r"4090", "RTX 4090"), (r"3090", "RTX 3090"),
    (r"MI300X", "MI300X"), (r"MI325X", "MI325X"), (r"MI250X", "MI250X"),
)


def device_key(device_name: str) -> str | None:
    """The :data:`DEVICE_PEAKS` key for a ``torch.cuda.get_device_name()`` string."""
    for pattern, key in _NAME_PATTERNS:
        if re.search(pattern, device_name, re.IGNORECASE):
            return key
    return None


def peak_flops(device_name: str, precision: str) -> float | None:
    """Dense peak FLOP/s of ``device_name`` at ``precision`` (``bf16``, or ``fp32``/``tf32``
    meaning float32 matmuls on TF32 tensor cores, as the engine runs them on CUDA);
    None for an unknown device or precision."""
    key = device_key(device_name)
    column = {"bf16": 0, "fp32": 1, "tf32": 1}.get(precision)
    if key is None or column is None:
        return None
    return DEVICE_PEAKS[key][column]


def mfu(tokens_per_second: float, flops_per_token: float, peak: float) -> float:
    """Model FLOPs utilization: achieved training FLOP/s over ``peak``, both per device
    (pass one device's tokens/s: the total over ``nproc``)."""
    if peak <= 0:
        raise ConvergentError(f"peak FLOP/s must be positive, got {peak}")
    return tokens_per_second * flops_per_token / peak
