"""``train(config, out)``: prepare a run directory, its data, and train or resume.

A run directory holds ``config.json``, ``tokenizer.json``, ``data/corpus.json`` (which
prepared token shards it reads, see :mod:`convergent.train.stream`), ``checkpoints/step-*/``,
``metrics.json`` and ``manifest.json``
(the list of checkpoints and whether the run is complete). Running ``train`` again on the
same directory with the same config resumes; a different config is refused.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
from collections.abc import Iterator
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
    from convergent.locking import LOCK, WORKERS

    if run_dir.exists() and any(p.name not in (LOCK, WORKERS) for p in run_dir.iterdir()):
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
    ``compile`` (or ``config.engine.compile``) compiles the neural blocks with
    ``torch.compile`` (see :mod:`convergent.train.compiled`): same math, different rounding.

    ``config.engine`` says where: with ``nproc`` > 1 this process prepares the run folder
    and its data, then starts ``nproc`` ranks with torchrun (:mod:`convergent.train.launch`)
    and waits; inside torchrun (this process is one rank) it trains as that rank.
    """
    from convergent.train.engine import check_placement, torchrun_world

    config.validate()
    if compile and not config.engine.compile:
        config = config.replace(engine=dataclasses.replace(config.engine, compile=True))
    if config.neural:
        check_placement(config.engine)
        plan = check_memory(config)
        if progress and (torchrun_world() or (0,))[0] == 0:
            print(plan)
    with _removed_unless_started(Path(out), main=(torchrun_world() or (0,))[0] == 0), \
            _writer_lock(Path(out)):
        if config.engine.nproc > 1 and config.neural and torchrun_world() is None:
            from convergent.train.launch import launch_ranks

            run_dir = prepare_run_dir(out, config)
            if batches is None:
                prepare_data(run_dir, config, progress)  # ready before any rank starts
            elif tokenizer is not None:
                _save_tokenizer(run_dir, tokenizer)
            launch_ranks(run_dir, config, progress=progress, stop_after=stop_after)
            return read_result(run_dir, config)
        if not config.neural:
            return _train_classical(config, out, batches, progress, stop_after)
        return _train_neural(config, out, batches, tokenizer, progress, stop_after)


def _writer_lock(run_dir: Path) -> Any:
    """One writer per run folder: the launching process holds it (torchrun's ranks run
    inside their parent's lock, so they take none)."""
    from contextlib import nullcontext

    from convergent.locking import folder_lock
    from convergent.train.engine import torchrun_world

    if torchrun_world() is not None:
        return nullcontext()
    return folder_lock(run_dir, what="convergent train")


@contextlib.contextmanager
def _removed_unless_started(run_dir: Path, main: bool) -> Iterator[None]:
    """On failure before a new run's first checkpoint, leave ``run_dir`` as it was found.

    A run that fails while its folder is being set up (a missing, empty or offline corpus,
    a tokenizer that cannot be read) leaves no ``config.json`` behind, so the corrected
    command is not refused as "a run with a different config". A run that has
    checkpoints keeps them: it resumes.
    """
    existed = run_dir.exists()
    fresh = not existed or (run_dir.is_dir() and not any(run_dir.iterdir()))
    try:
        yield
    except BaseException:
        if fresh and main and run_dir.is_dir() and not list_checkpoints(run_dir):
            if existed:
                for child in run_dir.iterdir():
                    if child.is_dir():
                        shutil.rmtree(child)
                    else:
                        child.unlink()
            else:
                shutil.rmtree(run_dir, ignore_errors=True)
        raise


def check_memory(config: TrainConfig) -> str:
    """Refuse in one line a run whose estimated peak memory exceeds its device.

    Returns the plan as one line: parameters and the memory estimate per device.
    """
    from convergent.train.engine import resolve_device
    from convergent.train.flops import parameter_count
    from convergent.train.memory import check_fits, describe, device_memory_bytes, estimate_memory

    device = resolve_device(config.engine.device)
    estimate = estimate_memory(config, config.vocab_size, config.engine.nproc)
    capacity = device_memory_bytes(device)
    if capacity is not None and device.type == "cpu":
        capacity //= config.engine.nproc  # the ranks share the node's memory
    if capacity is not None:
        check_fits(estimate, capacity, f"{config.arch} on {device.type}")
    params = parameter_count(config.arch, config.model, config.vocab_size)["total"]
    return f"{config.arch}: {params / 1e6:,.1f}M parameters; {describe(estimate)}"


def _save_tokenizer(run_dir: Path, tok: Any) -> None:
    write_bytes_atomic(run_dir / "tokenizer.json", lambda h: h.write(tok.to_str().encode()))


def _train_classical(config: TrainConfig, out: str | Path, batches: BatchSource | None,
                     progress: bool, stop_after: int | None) -> RunResult:
    from convergent.train.embeddings import train_classical

    if batches is not None:
        raise ConvergentError(f"{config.arch} trains on a corpus, not on a batch source")
    run_dir = prepare_run_dir(out, config)
    tok, stream = prepare_data(run_dir, config, progress)
    train_classical(run_dir, config, tok, stream, progress, stop_after)
    ckpts = list_checkpoints(run_dir)
    complete = config.arch == "ppmi" or ckpts[-1].step >= config.embedding.epochs
    write_manifest(run_dir, config, complete=complete)
    return read_result(run_dir, config)


def _train_neural(config: TrainConfig, out: str | Path, batches: BatchSource | None,
                  tokenizer: Any, progress: bool, stop_after: int | None) -> RunResult:
    """Train as this process's rank (the only one, or one of torchrun's)."""
    import torch

    from convergent.train.allocator import keep_freed_memory
    from convergent.train.engine import start_engine, stop_engine
    from convergent.train.loop import train_loop
    from convergent.train.models import build_model

    if batches is not None and tokenizer is None:
        raise ConvergentError("train(batches=...) also needs the tokenizer they use")
    engine = start_engine(config.engine, config.batch_size)
    try:
        run_dir = Path(out)
        data = None  # (tokenizer, stream), once this rank has it
        if engine.is_main:
            prepare_run_dir(run_dir, config)
            if batches is None and (config.data or not engine.distributed):
                data = prepare_data(run_dir, config, progress)
            elif batches is not None:
                _save_tokenizer(run_dir, tokenizer)
        engine.barrier()  # the run folder exists; every rank reads it
        if engine.distributed and batches is None and not config.data and \
                not (run_dir / "data" / "corpus.json").is_file():
            raise ConvergentError(
                "a run of several ranks reads prepared data, so that no rank waits for "
                "another's tokenization: run `convergent data prepare` and pass --data, or "
                "start the ranks with --nproc (which prepares first)")
        if batches is None:
            tokenizer, stream = data or prepare_data(run_dir, config, progress=False)
            batches = make_batches(stream, tokenizer, config)
        keep_freed_memory()
        torch.manual_seed(config.seed)
        model = build_model(config.arch, config.model, tokenizer.get_vocab_size())
        extra = {"engine": {**config.engine.to_dict(), "resolved": engine.describe(),
                            "world_size": engine.world}}

        def manifest(complete: bool = False) -> None:
            if engine.is_main:
                write_manifest(run_dir, config, complete=complete, extra=extra)

        if engine.is_main and progress:
            print(f"engine: {engine.describe()}")
        manifest()
        loop = train_loop(model, batches, config, run_dir, engine, on_checkpoint=manifest,
                          stop_after=stop_after, progress=progress,
                          compile=config.engine.compile)
        engine.barrier()
        if engine.is_main:
            manifest(complete=loop.step >= config.total_steps)
            write_json_atomic(run_dir / "metrics.json", loop.metrics)
        engine.barrier()
    finally:
        stop_engine(engine)
    return read_result(run_dir, config)


def read_result(run_dir: Path, config: TrainConfig) -> RunResult:
    """The :class:`RunResult` of the run in ``run_dir``, from its files."""
    ckpts = tuple((c.step, c.tokens) for c in list_checkpoints(run_dir))
    manifest = run_dir / "manifest.json"
    complete = bool(json.loads(manifest.read_text()).get("complete")) \
        if manifest.is_file() else False
    metrics_file = run_dir / "metrics.json"
    metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else []
    final = metrics[-1]["loss"] if metrics else None
    step, tokens = ckpts[-1] if ckpts else (0, 0)
    if metrics and config.neural:
        step, tokens = metrics[-1]["step"], metrics[-1]["tokens"]
    return RunResult(run_dir, config, complete, step, tokens, final, ckpts)
