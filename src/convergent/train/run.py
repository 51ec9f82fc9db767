"""``train(config, out)``: prepare a run directory, its data, and train or resume.

A run directory holds ``config.json``, ``tokenizer.json``, ``data/tokens.npy`` (the token
stream trained on, after any perturbation), ``checkpoints/step-*/`` and ``manifest.json``
(the list of checkpoints and whether the run is complete). Running ``train`` again on the
same directory with the same config resumes; a different config is refused.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from convergent.errors import ConvergentError
from convergent.io import write_bytes_atomic, write_json_atomic
from convergent.provenance import versions
from convergent.train.checkpoint import list_checkpoints
from convergent.train.config import TrainConfig
from convergent.train.data import BatchSource
from convergent.train.stream import make_batches, prepare_data

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
        old.pop("engine", None)  # how a run executes may change between resumes
        new.pop("engine", None)
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

