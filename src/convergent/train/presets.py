"""Named starting configs: ``quick`` (minutes on 2 CPU cores) and ``paper`` (GPU scale).

``quick`` is a tiny model on the bundled ~2.5M-word corpus: ~600k tokens (a quarter of one
epoch) for neural models, 5 epochs for word2vec, the full corpus for PPMI. It shows the
loss falling and the pipeline end to end; on so few tokens only frequent numbers (about
0..99) are seen often enough to analyse (see docs/training.md).
``paper`` follows the paper: ~300M-parameter models (width 1024, 12 layers), context 1024,
FineWeb-Edu (streamed; needs the ``datasets`` package and a network), a 32k BPE in which
0..999 are single tokens. It is meant for a GPU and is far too slow on a CPU.
"""

from __future__ import annotations

from typing import Any

from convergent.errors import ConvergentError
from convergent.train.config import EmbeddingConfig, ModelConfig, TrainConfig

PRESETS = ("quick", "paper")


def _quick(arch: str) -> TrainConfig:
    model = ModelConfig(d_model=128, n_layers=2, n_heads=4, d_state=32, chunk_size=32)
    if arch == "lstm":
        model = ModelConfig(d_model=192, n_layers=2, n_heads=4)
    return TrainConfig(
        arch=arch, model=model, corpus="bundled", tokenizer="bpe", vocab_size=2048,
        lr=3e-3, warmup_tokens=40_000, tokens=600_000, batch_size=16, seq_len=128,
        checkpoint_every=60_000, embedding=EmbeddingConfig(dim=100, window=5, min_count=5,
                                                           epochs=5, workers=1),
    )


def _paper(arch: str) -> TrainConfig:
    model = ModelConfig(d_model=1024, n_layers=12, n_heads=16, head_dim=64, d_state=128,
                        chunk_size=64)
    if arch == "mamba2":
        model = ModelConfig(d_model=1024, n_layers=24, n_heads=16, head_dim=64, d_state=128)
    return TrainConfig(
        arch=arch, model=model, corpus="hf:HuggingFaceFW/fineweb-edu:sample-10BT",
        max_documents=2_000_000, tokenizer="bpe", vocab_size=32768, lr=1e-3,
        warmup_tokens=200_000_000, tokens=2_000_000_000, batch_size=256, seq_len=1024,
        checkpoint_every=100_000_000,
        embedding=EmbeddingConfig(dim=300, window=5, min_count=5, epochs=5, workers=1),
    )


def preset(name: str, arch: str, **changes: Any) -> TrainConfig:
    """The preset ``name`` for ``arch`` with ``changes`` (None values ignored) applied."""
    if name not in PRESETS:
        raise ConvergentError(f"preset {name!r}: choose one of {', '.join(PRESETS)}")
    config = (_quick if name == "quick" else _paper)(arch)
    if arch in ("word2vec", "ppmi"):
        config = config.replace(tokenizer="word", vocab_size=200_000)
    changes = {k: v for k, v in changes.items() if v is not None}
    return config.replace(**changes).validate()
