"""Model families trained here: ``build_model(arch, config, vocab_size)``."""

from __future__ import annotations

import importlib

from torch import nn

from convergent.errors import ConvergentError
from convergent.train.config import ModelConfig

FAMILIES = {
    "transformer": "convergent.train.models.transformer",
    "gdn": "convergent.train.models.deltanet",
    "mamba2": "convergent.train.models.mamba2",
    "lstm": "convergent.train.models.lstm",
}


def build_model(arch: str, config: ModelConfig, vocab_size: int) -> nn.Module:
    """A freshly initialised model (seed torch before calling for a reproducible init)."""
    if arch not in FAMILIES:
        raise ConvergentError(f"arch {arch!r}: neural families are {', '.join(FAMILIES)}")
    try:
        return importlib.import_module(FAMILIES[arch]).build(config, vocab_size)
    except ValueError as err:
        raise ConvergentError(f"model config for {arch}: {err}") from None


def compile_blocks(model: nn.Module) -> nn.Module:
    """Compile each block of ``model`` in place with ``torch.compile`` (TorchInductor).

    Inductor fuses the element-wise work around the matmuls into generated C++/OpenMP
    (CPU) or Triton (GPU) kernels, tracing through our hand-written ``autograd.Function``
    backward passes. Only the blocks are compiled: their shapes are fixed for a run, while
    the masked loss head sees a varying number of rows. Parameter names are unchanged, so
    checkpoints of compiled and eager runs are interchangeable; the rounding differs.
    The LSTM (one oneDNN/cuDNN kernel already) is left as is. Returns ``model``.
    """
    blocks = getattr(model, "blocks", None)
    if isinstance(blocks, nn.Sequential):
        for block in blocks:
            block.compile()
    return model


def set_mode(model: nn.Module, mode: str) -> None:
    """Switch every linear-RNN mixer to ``chunk`` (training) or ``recurrent`` (reference)."""
    for module in model.modules():
        if hasattr(module, "mode"):
            module.mode = mode
