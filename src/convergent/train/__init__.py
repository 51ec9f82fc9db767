"""Train the paper's model families on natural or perturbed text; every run is a source.

``train(config, out) -> RunResult`` with a :class:`TrainConfig`; presets in
:mod:`convergent.train.presets`. Heavy libraries (torch, tokenizers, gensim) load lazily.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from convergent.train.config import EmbeddingConfig, ModelConfig, TrainConfig

if TYPE_CHECKING:
    from convergent.train.run import RunResult, train

__all__ = ["EmbeddingConfig", "ModelConfig", "RunResult", "TrainConfig", "train"]


def __getattr__(name: str) -> Any:
    if name in ("train", "RunResult"):
        from convergent.train import run

        return getattr(run, name)
    raise AttributeError(f"module 'convergent.train' has no attribute {name!r}")
