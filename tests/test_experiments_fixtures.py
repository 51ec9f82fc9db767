"""Helpers shared by the experiment tests: tiny corpora, matrices and specs (no tests here)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np


def make_corpus(path: Path, docs: int = 40, seed: int = 0, largest: int = 120) -> str:
    """Small text where numbers 0..largest sit in regular contexts (a tiny model learns it)."""
    rng = random.Random(seed)
    words = ["the", "year", "was", "a", "time", "of", "growth", "and", "people", "in", "many",
             "states", "paid", "tax"]
    lines = []
    for _ in range(docs):
        parts = []
        for _ in range(40):
            n = rng.randrange(0, largest)
            parts.append(f"{' '.join(rng.sample(words, 4))} {n} and {n + 1} .")
        lines.append(json.dumps({"text": " ".join(parts)}))
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def tiny_train(corpus: str, tokens: int = 8 * 16 * 6) -> dict:
    """A ``set`` table for a training group that trains in about a second."""
    return {"corpus": corpus, "vocab_size": 1300, "tokens": tokens, "batch_size": 8,
            "seq_len": 16, "checkpoint_every": 8 * 16 * 3, "warmup_tokens": 0,
            "model.d_model": 32, "model.n_layers": 1, "model.n_heads": 2,
            "model.chunk_size": 8, "model.d_state": 8, "embedding.min_count": 1,
            "embedding.dim": 16, "embedding.epochs": 1}


def periodic_matrix(path: Path, n: int = 60, period: int = 10, noise: float = 0.3,
                    seed: int = 0, nan: bool = False) -> str:
    """e(n) = (cos, sin)(2 pi n / period) plus noise dimensions: separable mod ``period``."""
    rng = np.random.default_rng(seed)
    angle = 2 * np.pi * np.arange(n) / period
    values = np.concatenate([np.stack([np.cos(angle), np.sin(angle)], 1) * 3,
                             rng.normal(0, noise, (n, 6))], 1).astype(np.float32)
    if nan:
        values[3, 2] = np.nan
    np.save(path, values)
    return str(path)


def toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {toml_value(v)}"
                                for k, v in value.items()) + " }"
    return repr(value)


def write_spec(path: Path, tables: dict[str, dict]) -> Path:
    """Write ``{"experiment": {...}, "sources.x": {...}}`` as TOML."""
    lines = []
    for table, body in tables.items():
        head, _, rest = table.partition(".")
        name = head + (f".{json.dumps(rest)}" if rest else "")
        lines.append(f"[{name}]")
        lines.extend(f"{json.dumps(k)} = {toml_value(v)}" for k, v in body.items())
        lines.append("")
    path.write_text("\n".join(lines))
    return path
