"""The paper's figures as experiment specs: ``quick`` (CPU, ~10-15 min on 2 cores) and ``paper``.

``preset_spec(name)`` returns the spec (the same data as ``specs/NAME.toml``, which a test
keeps equal); ``run_preset(name, out, backend)`` runs it and writes the HTML report.

Both presets have the same shape, the paper's three figures:

- *architectures*: the data's own signal (number-token counts, the paper's "Token Dist.",
  and number-by-context co-occurrence rows), bundled GloVe 6B 50-d and SmolLM2-135M beside
  Transformer, Gated DeltaNet and Mamba-2 trained with Muon, AdamW runs, an LSTM, word2vec
  and PPMI, all on the same corpus and tokenizer (the bundled ~2.5M-word corpus for
  ``quick``, FineWeb-Edu for ``paper``);
- *perturbations*: the Transformer + Muon on original and perturbed data;
- *addition*: 9-digit multi-token against 3-digit single-token addition, Muon and AdamW;

plus the Transformer's training dynamics. ``paper`` has the paper's full grid (AdamW for
all three sequence models, 12- and 4-layer LSTMs, ContextLength 2/4/8/64, Isolate 1/2/8,
Swap, Unigram; 3-digit addition to 3B tokens) and analyses 0..999. ``quick`` keeps what
fits its CPU budget (Muon for all three, AdamW Transformer and LSTM, ContextLength-2,
Isolate-1, Swap, Unigram) and analyses numbers 0..99 (the ones a short run sees often
enough, see docs/training.md).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from convergent.errors import ConvergentError
from convergent.experiments.spec import ExperimentSpec, parse_spec
from convergent.train.config import ModelConfig
from convergent.train.presets import (
    PAPER_3DIGIT_TOKENS,
    PAPER_ADDITION_BATCH,
    PAPER_ADDITION_LR,
    PAPER_ADDITION_MODEL,
)

PRESETS = ("quick", "paper")
PERTURBATIONS = ["none", "context-2", "isolate-1", "swap", "unigram"]
# The paper's whole perturbation figure (ContextLength 2/4/8/64, Isolate 1/2/8, Swap, Unigram).
PAPER_PERTURBATIONS = ["none", "context-2", "context-4", "context-8", "context-64",
                       "isolate-1", "isolate-2", "isolate-8", "swap", "unigram"]


def _addition_group(digits: int, tokens: int, batch_size: int, model: ModelConfig,
                    checkpoints: int, train_pairs: int, lr: float = 3e-3) -> dict[str, Any]:
    """The engine settings of issue 5's addition reproduction, at a given budget."""
    sizes = {"model.d_model": model.d_model, "model.n_layers": model.n_layers,
             "model.n_heads": model.n_heads}
    if model.head_dim:
        sizes["model.head_dim"] = model.head_dim
    return {
        "set": {"arch": "transformer", "tokens": tokens, "batch_size": batch_size,
                "lr": lr, "weight_decay": 0.1, "warmup_tokens": tokens // 20,
                "checkpoint_every": tokens // checkpoints, **sizes,
                "model.tie_embeddings": model.tie_embeddings},
        "task": {"digits": digits, "chunk": 3},
        "split": {"test_pairs": 2000, "train_pairs": train_pairs, "seed": 0},
        "grid": {"optimizer": ["muon", "adamw"]},
    }


QUICK_ADDITION_MODEL = ModelConfig(d_model=64, n_layers=2, n_heads=4, tie_embeddings=True)


def _data_sources(corpus: str, vocab_size: int) -> dict[str, dict[str, Any]]:
    """The data's own signal: number-token counts ("Token Dist.") and co-occurrence rows."""
    options = {"tokenizer": "bpe", "vocab_size": vocab_size}
    return {"tokens": {"spec": f"tokens:{corpus}", "options": dict(options)},
            "cooc": {"spec": f"cooc:{corpus}", "options": dict(options)}}


def _spec(name: str, description: str, numbers: str, train: dict[str, Any],
          addition: dict[str, dict[str, Any]], data: dict[str, dict[str, Any]],
          full_grid: bool) -> dict[str, Any]:
    """A preset; ``full_grid`` adds the paper's AdamW linear RNNs, the 4-layer LSTM and the
    ContextLength 4/8/64 and Isolate 2/8 perturbations."""
    preset = name
    adamw = ["transformer", "gdn", "mamba2", "lstm"] if full_grid else ["transformer", "lstm"]
    groups: dict[str, Any] = {
        "muon": {"preset": preset, "set": {**train, "optimizer": "muon"},
                 "grid": {"arch": ["transformer", "gdn", "mamba2"]}},
        "adamw": {"preset": preset, "set": train, "grid": {"arch": adamw}},
    }
    if full_grid:  # the paper's shallower LSTM (its main LSTM has 12 layers)
        groups["lstm4"] = {"preset": preset, "set": {**train, "model.n_layers": 4},
                           "grid": {"arch": ["lstm"]}}
    groups["classical"] = {"preset": preset, "set": train,  # CPU jobs, in a group of their own
                           "grid": {"arch": ["word2vec", "ppmi"]}}
    groups["perturbations"] = {
        "preset": preset, "set": {**train, "arch": "transformer", "optimizer": "muon"},
        "grid": {"perturb": PAPER_PERTURBATIONS if full_grid else PERTURBATIONS}}
    rows = ["tokens", "cooc", "glove", "smollm2", *(g for g in groups if g != "perturbations")]
    return {
        "experiment": {"name": name, "description": description},
        "numbers": {"numbers": numbers, "moduli": "2:11", "folds": 5, "seed": 0,
                    "permutations": 100},
        "sources": {**data, "glove": {"spec": "glove-6b-50d"},
                    "smollm2": {"spec": "smollm2-135m"}},
        "train": groups,
        "addition": addition,
        "analyses": {
            "architectures": {"title": "Architectures (the paper's Figure: spectra and "
                                       "mod-T kappa)", "sources": rows},
            "perturbations": {"title": "Data perturbations (Transformer + Muon)",
                              "sources": ["perturbations"]},
            "dynamics": {"title": "Training dynamics (Transformer + Muon)",
                         "sources": ["muon/transformer"], "checkpoints": "all"},
        },
    }


QUICK_TOKENS = 400_000

QUICK = _spec(
    "quick",
    "The paper's architecture, data-perturbation and addition figures at CPU scale: "
    "tiny models, 400k training tokens of the bundled corpus, numbers 0..99, with the "
    "data's own number-token counts and co-occurrence rows. About 10-15 minutes on 2 idle "
    "cores; the effects are weak at this scale (see docs/experiments.md). Left out for time "
    "(the paper preset has them): Gated DeltaNet and Mamba-2 with AdamW, the 4-layer LSTM, "
    "ContextLength-4/8/64 and Isolate-2/8.",
    "0:100", {"tokens": QUICK_TOKENS, "checkpoint_every": 100_000},
    {"addition-9digit": _addition_group(9, 600_000, 32, QUICK_ADDITION_MODEL, 4, 0),
     "addition-3digit": _addition_group(3, 300_000, 32, QUICK_ADDITION_MODEL, 4, 100_000)},
    _data_sources("bundled", 2048), full_grid=False,
)

PAPER_CORPUS = "hf:HuggingFaceFW/fineweb-edu:sample-10BT"

PAPER = _spec(
    "paper",
    "The paper's full grid at its sizes: ~300M-parameter models, one epoch (~9.4B tokens) "
    "of FineWeb-Edu sample-10BT (needs a network and the datasets package), numbers 0..999; "
    "Transformer, Gated DeltaNet and Mamba-2 with Muon and AdamW, 12- and 4-layer LSTMs, "
    "word2vec, PPMI, the data's own token counts; ContextLength-2/4/8/64, Isolate-1/2/8, "
    "Swap, Unigram; 3-digit addition to 3B tokens. Meant for GPUs or a Ray cluster.",
    "0:1000", {},
    {"addition-9digit": _addition_group(9, 600_000_000, PAPER_ADDITION_BATCH,
                                        PAPER_ADDITION_MODEL, 20, 0, PAPER_ADDITION_LR),
     "addition-3digit": _addition_group(3, PAPER_3DIGIT_TOKENS, PAPER_ADDITION_BATCH,
                                        PAPER_ADDITION_MODEL, 30, 100_000, PAPER_ADDITION_LR)},
    _data_sources(PAPER_CORPUS, 65536), full_grid=True,
)


def preset_spec(name: str) -> ExperimentSpec:
    """The spec of preset ``name`` (``quick`` or ``paper``)."""
    return parse_spec(preset_data(name), where=f"preset {name}")


def preset_data(name: str) -> dict[str, Any]:
    if name not in PRESETS:
        raise ConvergentError(f"preset {name!r}: choose one of {', '.join(PRESETS)}")
    return copy.deepcopy(QUICK if name == "quick" else PAPER)


def run_preset(preset: str, out: str | Path | None = None, backend: str = "local",
               workers: int | None = None, address: str | None = None,
               progress: bool = True, gpus: int | None = None) -> tuple[Any, Path]:
    """Run preset ``preset`` into ``out`` (default ``out/PRESET``); (summary, report path).

    ``gpus`` limits the GPUs jobs are placed on (default: every visible one).
    """
    from convergent.experiments.runner import run_experiment
    from convergent.report.html import write_report

    summary = run_experiment(preset_spec(preset), out, backend=backend, workers=workers,
                             address=address, progress=progress, gpus=gpus)
    return summary, write_report(summary.out)
