"""Named starting configs: ``quick`` (minutes on 2 CPU cores) and ``paper`` (GPU scale).

``quick`` is a tiny model on the bundled ~2.5M-word corpus: 400k tokens (about a tenth of
one epoch; the same budget as ``reproduce --preset quick``) for neural models, 5 epochs for
word2vec, the full corpus for PPMI. It shows the loss falling and the pipeline end to end;
on so few tokens only frequent numbers (about 0..99) are seen often enough to analyse (see
docs/training.md).

``paper`` is the paper's scale (Fu et al. 2026): one epoch of FineWeb-Edu sample-10BT
(~9.4B tokens; prepare it once with ``convergent data prepare``), context 1024, batch
512 x 1024 tokens, a checkpoint every 200M tokens, bf16 on GPUs, models of ~280-300M
parameters (:data:`PAPER_SIZES`; width 1024, 12 layers as in the paper, Mamba-2 with 24
mixer-only layers, the LSTM 1152 wide), a 64k Llama-3-style BPE in which 0..999 are single
tokens and longer digit runs split into three-digit chunks (``tokenizer`` may name any
Hugging Face tokenizer instead, e.g. ``hf:meta-llama/Meta-Llama-3-8B``). Each rank runs
micro-batches of 16 rows. The paper uses grouped-query attention (16 query heads); ours has
16 full heads, 1.6M more parameters per layer.
"""

from __future__ import annotations

from typing import Any

from convergent.errors import ConvergentError
from convergent.train.config import EmbeddingConfig, EngineConfig, ModelConfig, TrainConfig

PRESETS = ("quick", "paper")


def _quick(arch: str) -> TrainConfig:
    model = ModelConfig(d_model=128, n_layers=2, n_heads=4, d_state=32, chunk_size=32)
    if arch == "lstm":
        model = ModelConfig(d_model=192, n_layers=2, n_heads=4)
    return TrainConfig(
        arch=arch, model=model, corpus="bundled", tokenizer="bpe", vocab_size=2048,
        lr=3e-3, warmup_tokens=40_000, tokens=400_000, batch_size=16, seq_len=128,
        checkpoint_every=60_000, embedding=EmbeddingConfig(dim=100, window=5, min_count=5,
                                                           epochs=5, workers=1),
    )


PAPER_TOKENS = 9_400_000_000
PAPER_SIZES = {
    "transformer": ModelConfig(d_model=1024, n_layers=12, n_heads=16, head_dim=64),
    "gdn": ModelConfig(d_model=1024, n_layers=12, n_heads=16, head_dim=64, chunk_size=64),
    "mamba2": ModelConfig(d_model=1024, n_layers=24, n_heads=32, head_dim=64, d_state=128,
                          chunk_size=64),
    "lstm": ModelConfig(d_model=1152, n_layers=12, n_heads=16),
}
# The addition models of the paper preset (``convergent reproduce addition --preset paper``
# and ``reproduce --preset paper``'s addition groups): one definition for both.
PAPER_ADDITION_MODEL = ModelConfig(d_model=1024, n_layers=12, n_heads=16, head_dim=64,
                                   tie_embeddings=True)
PAPER_ADDITION_BATCH = 512
PAPER_ADDITION_LR = 1e-3
# The paper's 3-digit single-token runs: 3B tokens (Muon generalizes by ~0.4B, AdamW
# groks at 1.6-2B).
PAPER_3DIGIT_TOKENS = 3_000_000_000


def _paper(arch: str) -> TrainConfig:
    return TrainConfig(
        arch=arch, model=PAPER_SIZES.get(arch, PAPER_SIZES["transformer"]),
        corpus="hf:HuggingFaceFW/fineweb-edu:sample-10BT", tokenizer="bpe", vocab_size=65536,
        lr=1e-3, warmup_tokens=200_000_000, tokens=PAPER_TOKENS, batch_size=512,
        seq_len=1024, checkpoint_every=200_000_000,
        embedding=EmbeddingConfig(dim=300, window=5, min_count=5, epochs=1, workers=16),
        engine=EngineConfig(micro_batch=16),
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
