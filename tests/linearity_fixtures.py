"""Shared fixtures of the linearity tests: a tiny random-weight Llama with a word-level
tokenizer, and a tiny word-vector file (no network)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

WORDS = [f"s{r}_{i}" for r in range(3) for i in range(6)] + [
    f"o{r}_{i}" for r in range(3) for i in range(6)
] + ["the", "a", "is", "of", "said", "word", "multi", "token", "-"]


def tiny_lm(seed: int = 0, tie: bool = False, hidden: int = 16):
    """(model, tokenizer): a 2-layer random Llama over WORDS (+ specials)."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    vocab = {"<unk>": 0, "<s>": 1, **{w: i + 2 for i, w in enumerate(WORDS)}}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>",
                                        unk_token="<unk>")
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(vocab), hidden_size=hidden, intermediate_size=32,
                         num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                         max_position_embeddings=64, tie_word_embeddings=tie)
    model = LlamaForCausalLM(config).eval()
    return model, tokenizer


def pairs_tsv(path: Path, relations: int = 3, pairs: int = 6, extra: str = "") -> Path:
    lines = ["subject\tobject\trelation"]
    for r in range(relations):
        lines += [f"s{r}_{i}\to{r}_{i}\trel{r}" for i in range(pairs)]
    path.write_text("\n".join(lines) + "\n" + extra)
    return path


def glove_file(path: Path, seed: int = 0, dim: int = 8) -> Path:
    """A GloVe-format text file where o{r}_{i} = s{r}_{i} + u_r exactly."""
    rng = np.random.default_rng(seed)
    u = rng.standard_normal((3, dim)) * 3
    rows = []
    for r in range(3):
        for i in range(6):
            s = rng.standard_normal(dim)
            rows += [(f"s{r}_{i}", s), (f"o{r}_{i}", s + u[r])]
    rows += [(f"w{i}", rng.standard_normal(dim)) for i in range(30)]
    path.write_text("".join(w + " " + " ".join(f"{x:.6f}" for x in v) + "\n" for w, v in rows))
    return path
