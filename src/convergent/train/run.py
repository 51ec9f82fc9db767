"""``train(config, out)``: prepare a run directory, its data, and train or resume.

A run directory holds ``config.json``, ``tokenizer.json``, ``data/tokens.npy`` (the token
stream trained on, after any perturbation), ``checkpoints/step-*/`` and ``manifest.json``
(the list of checkpoints and whether the run is complete). Running ``train`` again on the
same directory with the same config resumes; a different config is refused.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from convergent.errors import ConvergentError
from convergent.io import write_bytes_atomic, write_json_atomic
from convergent.provenance import versions
from convergent.train.checkpoint import list_checkpoints
from convergent.train.config import TrainConfig
from convergent.train.data import BatchSource, WindowBatches
from convergent.train.perturb import (
    isolate_windows,
    parse_perturbation,
    swap_numbers,
    unigram_replace,
)

RUN_KIND = "convergent-run"


@dataclass(frozen=True)
class RunResult:
    """What a call to :func:`train` left behind."""

    run_dir: Path
    config: TrainConfig
    complete: bool
    steps: int
    tokens: int
    final_loss: float | None
    checkpoints: tuple[tuple[int, int], ...]

    def to_dict(self) -> dict[str, Any]:
        return {"run_dir": str(self.run_dir), "config": self.config.to_dict(),
                "complete": self.complete, "steps": self.steps, "tokens": self.tokens,
                "final_loss": self.final_loss, "checkpoints": [list(c) for c in self.checkpoints]}


def prepare_run_dir(out: str | Path, config: TrainConfig) -> Path:
    """Create ``out`` or check that it holds a run with exactly this config."""
    run_dir = Path(out)
    saved = run_dir / "config.json"
    if saved.is_file():
        old = TrainConfig.load(saved).to_dict()
        new = config.to_dict()
        if old != new:
            diff = _first_difference(old, new)
            raise ConvergentError(
                f"{run_dir} holds a run with a different config ({diff}); use another --out "
                "or delete the folder"
            )
        return run_dir
    if run_dir.exists() and any(run_dir.iterdir()):
        raise ConvergentError(f"{run_dir}: the folder is not empty and holds no training run")
    run_dir.mkdir(parents=True, exist_ok=True)
    config.save(saved)
    return run_dir


def _first_difference(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> str:
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            if a != b:
                return _first_difference(a, b, f"{prefix}{key}.")
        elif a != b:
            return f"{prefix}{key}: {a!r} there, {b!r} now"
    return "unknown difference"


def _cache_root() -> Path:
    return Path(os.environ.get("CONVERGENT_CACHE", Path.home() / ".cache" / "convergent"))


def prepare_data(run_dir: Path, config: TrainConfig, progress: bool = True):
    """(tokenizer, token stream) of the run, made once and then read from the run dir."""
    from convergent.train.tokenize import encode_documents, load_tokenizer, train_tokenizer

    tok_file, data_file = run_dir / "tokenizer.json", run_dir / "data" / "tokens.npy"
    if tok_file.is_file() and data_file.is_file():
        return load_tokenizer(tok_file), _load_stream(data_file)
    import tokenizers

    min_count = config.embedding.min_count
    key = json.dumps([config.corpus, _fingerprint(config.corpus), config.max_documents,
                      config.tokenizer, config.vocab_size, min_count, tokenizers.__version__, 1])
    cache = _cache_root() / "tokens" / hashlib.sha256(key.encode()).hexdigest()[:16]
    if (cache / "tokenizer.json").is_file() and (cache / "tokens.npy").is_file():
        tok, stream = load_tokenizer(cache / "tokenizer.json"), _load_stream(cache / "tokens.npy")
        meta = json.loads((cache / "corpus.json").read_text())
    else:
        from convergent.train.corpus import load_corpus

        if progress:
            print(f"preparing corpus {config.corpus!r} and a {config.tokenizer} tokenizer")
        corpus = load_corpus(config.corpus, config.max_documents or None)
        tok = train_tokenizer(config.tokenizer, corpus.documents, config.vocab_size, min_count)
        stream = encode_documents(tok, corpus.documents)
        meta = {"corpus": config.corpus, "documents": len(corpus.documents),
                "words": corpus.n_words, "corpus_sha256": corpus.sha256}
        if not config.corpus.startswith("hf:"):  # streamed corpora may change: not cached
            _save_data(cache, tok, stream, meta)
    stream = perturb_stream(stream, tok, config)
    meta = {**meta, "tokens": len(stream), "perturb": config.perturb,
            "stream_sha256": hashlib.sha256(stream.tobytes()).hexdigest()[:16]}
    _save_data(run_dir, tok, stream, meta, data_dir=True)
    return tok, stream


def _fingerprint(spec: str) -> list[Any]:
    """(path, size, mtime) of a local corpus's files, so an edited file is not served stale."""
    path = Path(spec)
    if not path.exists():
        return []
    files = sorted(path.rglob("*")) if path.is_dir() else [path]
    return [[str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns] for f in files
            if f.is_file()]


def _save_data(folder: Path, tok, stream: np.ndarray, meta: dict[str, Any],
               data_dir: bool = False) -> None:
    target = folder / "data" if data_dir else folder
    target.mkdir(parents=True, exist_ok=True)
    dtype = np.uint16 if tok.get_vocab_size() < 2**16 else np.int32
    write_bytes_atomic(target / "tokens.npy", lambda h: np.save(h, stream.astype(dtype)))
    write_json_atomic(target / "corpus.json", meta)
    write_bytes_atomic(folder / "tokenizer.json", lambda h: h.write(tok.to_str().encode()))


def _load_stream(file: Path) -> np.ndarray:
    try:
        return np.load(file, allow_pickle=False).astype(np.int64)
    except Exception as err:
        raise ConvergentError(f"{file}: cannot read the token stream ({err})") from None


def perturb_stream(stream: np.ndarray, tok, config: TrainConfig) -> np.ndarray:
    from convergent.train.tokenize import digit_token_ids

    kind = parse_perturbation(config.perturb, config.arch).kind
    if kind not in ("swap", "unigram"):
        return stream
    is_number = np.isin(stream, digit_token_ids(tok))
    fn = swap_numbers if kind == "swap" else unigram_replace
    return fn(stream, is_number, config.seed)


def make_batches(stream: np.ndarray, tok, config: TrainConfig) -> BatchSource:
    """Shuffled windows of the stream, cut as the perturbation asks."""
    from convergent.train.tokenize import EOS, digit_token_ids

    pert = parse_perturbation(config.perturb, config.arch)
    if pert.kind == "context":
        per_step = config.tokens_per_step
        return WindowBatches(stream, pert.k, max(1, per_step // pert.k), config.seed)
    if pert.kind == "isolate":
        is_number = np.isin(stream, digit_token_ids(tok))
        starts, lengths = isolate_windows(is_number, config.seq_len + 1, pert.k)
        return WindowBatches(stream, config.seq_len, config.batch_size, config.seed,
                             starts, lengths, pad_id=tok.token_to_id(EOS))
    return WindowBatches(stream, config.seq_len, config.batch_size, config.seed)


def write_manifest(run_dir: Path, config: TrainConfig, complete: bool,
                   extra: dict[str, Any] | None = None) -> None:
    data_meta = run_dir / "data" / "corpus.json"
    manifest = {
        "kind": RUN_KIND, "format": 1, "arch": config.arch, "complete": complete,
        "config": "config.json", "tokenizer": "tokenizer.json",
        "data": json.loads(data_meta.read_text()) if data_meta.is_file() else None,
        "checkpoints": [{"step": c.step, "tokens": c.tokens,
                         "path": str(c.path.relative_to(run_dir))}
                        for c in list_checkpoints(run_dir)],
        "versions": versions(), **(extra or {}),
    }
    write_json_atomic(run_dir / "manifest.json", manifest)


def train(
    config: TrainConfig,
    out: str | Path,
    batches: BatchSource | None = None,
    tokenizer: Any = None,
    progress: bool = True,
    stop_after: int | None = None,
    compile: bool = False,
) -> RunResult:
    """Train (or resume) the run ``config`` in folder ``out``.

    ``batches`` replaces the corpus by any :class:`BatchSource` (e.g. a task); then pass the
    ``tokenizer`` (a ``tokenizers.Tokenizer``) it uses so the run stays a source.
    ``stop_after`` stops after that many steps without a checkpoint (a simulated kill);
    for word2vec it counts epochs, each of which ends with a checkpoint.
    ``compile`` compiles the neural blocks with ``torch.compile`` (see
    :mod:`convergent.train.compiled`): same math, different rounding, faster long runs.
    """
    import torch

    config.validate()
    run_dir = prepare_run_dir(out, config)
    if batches is None:
        tok, stream = prepare_data(run_dir, config, progress)
    else:
        if tokenizer is None:
            raise ConvergentError("train(batches=...) also needs the tokenizer they use")
        tok, stream = tokenizer, None
        write_bytes_atomic(run_dir / "tokenizer.json", lambda h: h.write(tok.to_str().encode()))
    if not config.neural:
        from convergent.train.embeddings import train_classical

        if stream is None:
            raise ConvergentError(f"{config.arch} trains on a corpus, not on a batch source")
        train_classical(run_dir, config, tok, stream, progress, stop_after)
        ckpts = tuple((c.step, c.tokens) for c in list_checkpoints(run_dir))
        complete = config.arch == "ppmi" or ckpts[-1][0] >= config.embedding.epochs
        write_manifest(run_dir, config, complete=complete)
        return RunResult(run_dir, config, complete, ckpts[-1][0], ckpts[-1][1], None, ckpts)
    from convergent.train.allocator import keep_freed_memory
    from convergent.train.loop import train_loop
    from convergent.train.models import build_model

    keep_freed_memory()

    if batches is None:
        batches = make_batches(stream, tok, config)
    torch.manual_seed(config.seed)
    model = build_model(config.arch, config.model, tok.get_vocab_size())
    if compile:
        from convergent.train.compiled import compile_for_training

        compile_for_training(model, batches.batch(0))
    write_manifest(run_dir, config, complete=False)
    loop = train_loop(model, batches, config, run_dir,
                      on_checkpoint=lambda: write_manifest(run_dir, config, complete=False),
                      stop_after=stop_after, progress=progress)
    complete = loop.step >= config.total_steps
    write_manifest(run_dir, config, complete=complete)
    write_json_atomic(run_dir / "metrics.json", loop.metrics)
    ckpts = tuple((c.step, c.tokens) for c in list_checkpoints(run_dir))
    final = loop.metrics[-1]["loss"] if loop.metrics else None
    return RunResult(run_dir, config, complete, loop.step, loop.step * config.tokens_per_step,
                     final, ckpts)

