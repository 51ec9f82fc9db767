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


def set_mode(model: nn.Module, mode: str) -> None:
    """Switch every linear-RNN mixer to ``chunk`` (training) or ``recurrent`` (reference)."""
    for module in model.modules():
        if hasattr(module, "mode"):
            module.mode = mode
