"""Adapters from our tensor layouts to the established CUDA/Triton kernels (the ``gpu`` extra).

On CUDA, with the optional libraries installed (``pip install 'convergent[gpu]'``):

- :func:`gated_delta_rule` calls flash-linear-attention's ``chunk_gated_delta_rule``;
- :func:`ssd` calls mamba-ssm's ``mamba_chunk_scan_combined``;
- :func:`causal_conv` calls causal-conv1d's ``causal_conv1d_fn``.

Each returns ``None`` when it cannot serve (a CPU tensor, the library missing, a shape the
kernel does not take); the mixers then run our pure-torch kernels, which stay the CPU path
and the reference. A CUDA call without the library warns once per process and library.
Packed documents come as ``segments`` [B, T] int32 (non-decreasing per row): the state resets
where the id changes, through the libraries' own ``cu_seqlens`` / ``seq_idx`` arguments.
The libraries are imported lazily, on the first CUDA call. The adapters run outside
``torch.compile`` graphs (``torch.compiler.disable``), as fla's own entry point does: the
libraries' Triton kernels and autograd Functions are called eagerly from compiled blocks.
"""

from __future__ import annotations

import functools
import importlib
import warnings
from collections import Counter

import torch

__all__ = ["SERVED", "SSD_CHUNK", "causal_conv", "gated_delta_rule", "kernels_used", "ssd"]

SSD_CHUNK = 256
"""Chunk length for mamba-ssm's scan (its own Mamba-2 default; only speed depends on it)."""

_FLA = "fla.ops.gated_delta_rule"
_MAMBA = "mamba_ssm.ops.triton.ssd_combined"
_CONV = "causal_conv1d"
_WHAT = {  # module -> (pip name, what falls back)
    _FLA: ("flash-linear-attention", "Gated DeltaNet"),
    _MAMBA: ("mamba-ssm", "Mamba-2"),
    _CONV: ("causal-conv1d", "the short causal convolutions"),
}
_WARNED: set[str] = set()
SERVED: Counter[str] = Counter()
"""Calls served by each library in this process, by pip name (for benchmarks and logs)."""


@functools.cache
def _missing(module: str) -> str | None:
    """None when ``module`` imports, else why not ("is not installed" or the import error)."""
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as err:
        if err.name and (module == err.name or module.startswith(err.name + ".")):
            return "is not installed"
        return f"failed to import ({_first_line(err)})"
    except (ImportError, OSError, RuntimeError, AttributeError) as err:  # e.g. another ABI
        return f"failed to import ({type(err).__name__}: {_first_line(err)})"
    return None


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [""])[0]


def _ready(module: str, device: torch.device) -> bool:
    """Whether ``module``'s kernel serves tensors on ``device``; warns once if CUDA lacks it."""
    if device.type != "cuda":
        return False
    problem = _missing(module)
    if problem is None:
        SERVED[_WHAT[module][0]] += 1
        return True
    if module not in _WARNED:
        _WARNED.add(module)
        package, what = _WHAT[module]
        warnings.warn(f"convergent: {package} {problem}; {what} runs on the reference kernels "
                      "(pip install 'convergent[gpu]')", stacklevel=3)
    return False


def kernels_used(device: torch.device | str = "cuda") -> dict[str, bool]:
    """Which library kernels would serve on ``device``, by pip name (no warning)."""
    device = torch.device(device)
    return {package: device.type == "cuda" and _missing(module) is None
            for module, (package, _) in _WHAT.items()}


def _cu_seqlens(segments: torch.Tensor) -> torch.Tensor:
    """Start offsets of the packed documents of ``segments`` [B, T] flattened, plus B*T."""
    starts = torch.ones_like(segments, dtype=torch.bool)
    starts[:, 1:] = segments[:, 1:] != segments[:, :-1]
    offsets = starts.flatten().nonzero().flatten()
    return torch.cat((offsets, offsets.new_tensor([segments.numel()])))


@torch.compiler.disable
def gated_delta_rule(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, g: torch.Tensor,
                     beta: torch.Tensor, segments: torch.Tensor | None = None
                     ) -> torch.Tensor | None:
    """The gated delta rule by flash-linear-attention, or None where it cannot serve.

    Our layout, as :func:`~convergent.train.models.gated_delta.chunk_gated_delta_rule`:
    q, k [B, H, T, Dk] (both L2-normalised, q already scaled by 1/sqrt(Dk), so the kernel's
    ``scale`` is 1), v [B, H, T, Dv], g (log-decay <= 0) and beta [B, H, T]; returns
    o [B, H, T, Dv] in v's dtype. fla takes [B, T, H, D]; q, k, v run in v's dtype when it is
    bf16/fp16, else in bf16 (fla's chunked kernels are written for half precision), g in fp32.
    Segments become ``cu_seqlens`` over the batch flattened to one row.
    """
    if not _ready(_FLA, q.device):
        return None
    from fla.ops.gated_delta_rule import chunk_gated_delta_rule as fla_rule

    b, h, t, _ = q.shape
    dtype = v.dtype if v.dtype in (torch.bfloat16, torch.float16) else torch.bfloat16
    q_, k_, v_ = (x.transpose(1, 2).to(dtype) for x in (q, k, v))
    g_, beta_ = g.transpose(1, 2).float(), beta.transpose(1, 2).to(dtype)
    cu_seqlens = None
    if segments is not None:
        cu_seqlens = _cu_seqlens(segments)
        q_, k_, v_, g_, beta_ = (x.reshape(1, b * t, *x.shape[2:])
                                 for x in (q_, k_, v_, g_, beta_))
    o, _ = fla_rule(q_, k_, v_, g_, beta_, scale=1.0, cu_seqlens=cu_seqlens)
    return o.reshape(b, t, h, -1).transpose(1, 2).to(v.dtype)


@torch.compiler.disable
def ssd(x: torch.Tensor, dt: torch.Tensor, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor,
        segments: torch.Tensor | None = None) -> torch.Tensor | None:
    """Mamba-2's SSD scan by mamba-ssm, or None where it cannot serve.

    Our layout, as :func:`~convergent.train.models.ssd.chunk_ssd`: x [B, T, H, P],
    dt [B, T, H] (after softplus and bias), a [H] (< 0), b, c [B, T, N] (one group);
    returns y [B, T, H, P] without the D skip term, in x's dtype. mamba-ssm takes the same
    layout with a group axis on b, c; segments are its ``seq_idx``.
    """
    if not _ready(_MAMBA, x.device):
        return None
    from mamba_ssm.ops.triton.ssd_combined import mamba_chunk_scan_combined

    seq_idx = None if segments is None else segments.to(torch.int32).contiguous()
    return mamba_chunk_scan_combined(x, dt, a.float(), b.unsqueeze(2).to(x.dtype),
                                     c.unsqueeze(2).to(x.dtype), chunk_size=SSD_CHUNK,
                                     seq_idx=seq_idx)


@torch.compiler.disable
def causal_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                segments: torch.Tensor | None = None) -> torch.Tensor | None:
    """Depthwise causal convolution by causal-conv1d, or None where it cannot serve.

    Our layout, as :func:`~convergent.train.models.conv.causal_depthwise_conv`: x [B, T, C],
    weight [C, K], bias [C]; returns [B, T, C] in x's dtype. [B, T, C] transposed is
    causal-conv1d's channel-last layout, the one that takes ``seq_idx``; it needs
    2 <= K <= 4 and C divisible by 8 (else None, quietly: our kernel serves).
    """
    if not 2 <= weight.shape[1] <= 4 or x.shape[-1] % 8:
        return None
    if not _ready(_CONV, x.device):
        return None
    from causal_conv1d import causal_conv1d_fn

    seq_idx = None if segments is None else segments.to(torch.int32).contiguous()
    bias = None if bias is None else bias.to(weight.dtype)
    y = causal_conv1d_fn(x.contiguous().transpose(1, 2), weight.contiguous(), bias,
                         seq_idx=seq_idx)
    return y.transpose(1, 2)
