"""The paper's addition experiment: 9-digit multi-token vs 3-digit single-token, Muon vs AdamW.

The single-token settings write the whole sum as one token by default (the paper's control);
``settings_for(answer="carry-mod")`` gives the earlier carry-plus-sum-mod-1000 variant.

``reproduce_addition(out, ReproConfig())`` trains every (setting, seed) run into
``out/runs/NAME`` through the training engine (two runs at a time by default, one torch
thread each), evaluates every checkpoint (test exact match, Phi_T and kappa of the
embedding rows of the operand tokens 0..999) and returns an :class:`AdditionReproduction`.
Everything resumes: finished checkpoints and evaluations are reused.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from convergent.errors import ConvergentError
from convergent.locking import folder_lock
from convergent.provenance import versions
from convergent.reference.paper import Setting as PaperSetting
from convergent.reference.paper import published
from convergent.tasks.addition import AdditionTask, check_answer_format
from convergent.tasks.dataset import SplitConfig
from convergent.train.config import ModelConfig, TrainConfig

KEY_PERIODS = (2, 5, 10)


@dataclass(frozen=True)
class Setting:
    """One cell of the paper's figure: multi-token (3 chunks per operand) or single-token.

    ``answer`` is the single-token answer format (``"whole"``, the paper's: the sum is one
    token; ``"carry-mod"``: a carry token then the sum mod 10**chunk); multi-token settings
    always write the carry-mod chunks.
    """

    role: str
    optimizer: str
    chunk: int = 3
    answer: str = "whole"

    @property
    def digits(self) -> int:
        return 3 * self.chunk if self.role == "multi" else self.chunk

    @property
    def task_answer(self) -> str:
        return self.answer if self.role == "single" else "carry-mod"

    @property
    def label(self) -> str:
        name = {"muon": "Muon", "adamw": "AdamW"}[self.optimizer]
        notes = ([] if self.chunk == 3 else [f"chunk {self.chunk}"]) + \
            (["carry-mod"] if self.role == "single" and self.answer != "whole" else [])
        return f"{self.digits}-digit {name}" + (f" ({', '.join(notes)})" if notes else "")

    @property
    def paper_label(self) -> str:
        """The paper's setting this one scales (chunk 3 is the paper's own)."""
        name = {"muon": "Muon", "adamw": "AdamW"}[self.optimizer]
        return f"{9 if self.role == 'multi' else 3}-digit {name}"

    @property
    def slug(self) -> str:
        variant = "-carrymod" if self.role == "single" and self.answer != "whole" else ""
        return f"d{self.digits}c{self.chunk}{variant}-{self.optimizer}"


def settings_for(chunk: int = 3, answer: str = "whole") -> tuple[Setting, ...]:
    """The four settings with chunk size ``chunk``: 3*chunk-digit multi-token addition and
    chunk-digit single-token addition with the ``answer`` format, Muon and AdamW (chunk 3,
    answer "whole": the paper's)."""
    if chunk not in (2, 3):  # chunk 1 has 10 number tokens: too few to probe mod 2..10
        raise ConvergentError(f"chunk {chunk}: choose 2 or 3")
    check_answer_format(answer)
    return tuple(Setting(role, opt, chunk, answer) for role in ("multi", "single")
                 for opt in ("muon", "adamw"))


SETTINGS = settings_for(3)


@dataclass(frozen=True)
class ReproConfig:
    """Scale of the reproduction. Defaults are the ``quick`` preset: one seed, 3000 steps of
    batch 256 at ``d_model`` 64, the fastest-learning CPU setting found by the pilots in
    docs/addition.md (about 11 min on 2 idle cores, ``benchmarks/bench_addition.py``)."""

    model: ModelConfig = field(default_factory=lambda: ModelConfig(
        d_model=64, n_layers=2, n_heads=4, tie_embeddings=True))
    steps: int = 3000
    batch_size: int = 256
    lr: float = 3e-3
    weight_decay: float = 0.1
    warmup_fraction: float = 0.05
    checkpoints: int = 10
    seeds: tuple[int, ...] = (0,)
    test_pairs: int = 2000
    train_pairs_single: int = 100_000
    train_pairs_multi: int = 0
    permutations: int = 100
    workers: int = 2
    settings: tuple[Setting, ...] = SETTINGS
    reverse: bool = False
    single_tokens: int = 0  # > 0: single-token runs train this many tokens instead of steps

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or self.checkpoints < 1 or self.workers < 1:
            raise ConvergentError("steps, batch_size, checkpoints and workers must be >= 1")
        if not self.seeds:
            raise ConvergentError("at least one seed is needed")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def run_spec(self, setting: Setting, seed: int):
        """The :class:`~convergent.tasks.run.TaskRunSpec` of one (setting, seed) run."""
        from convergent.tasks.run import TaskRunSpec

        task = AdditionTask(digits=setting.digits, chunk=setting.chunk, reverse=self.reverse,
                            answer=setting.task_answer)
        per_step = self.batch_size * (task.seq_len - 1)
        tokens = self.steps * per_step
        if setting.role == "single" and self.single_tokens > 0:
            tokens = self.single_tokens
        config = TrainConfig(
            arch="transformer", model=self.model, optimizer=setting.optimizer, lr=self.lr,
            weight_decay=self.weight_decay, batch_size=self.batch_size, tokens=tokens,
            warmup_tokens=int(self.warmup_fraction * tokens),
            checkpoint_every=max(per_step, tokens // self.checkpoints), seed=seed)
        train_pairs = self.train_pairs_single if setting.role == "single" \
            else self.train_pairs_multi
        if train_pairs >= 10 ** (2 * task.digits) - self.test_pairs:
            train_pairs = 0  # every pair outside the test set
        split = SplitConfig(test_pairs=self.test_pairs, train_pairs=train_pairs, seed=seed)
        return TaskRunSpec(task, split, config, permutations=self.permutations,
                           meta={"setting": setting.label})


@dataclass(frozen=True)
class RunSummary:
    """One trained run: its setting, seed, final test accuracy and analysis, dynamics."""

    setting: str
    seed: int
    run_dir: str
    final: dict[str, Any]
    dynamics: tuple[dict[str, Any], ...]

    def to_dict(self) -> dict[str, Any]:
        return {"setting": self.setting, "seed": self.seed, "run_dir": self.run_dir,
                "final": self.final, "dynamics": list(self.dynamics)}

    @property
    def entry(self) -> dict[str, Any]:
        """results.json-style entry of the final checkpoint (for the paper-style figure)."""
        entry = dict(self.final["numbers"])
        entry["name"] = f"{self.setting} s{self.seed}"
        return entry


def paper_kappa(setting: Setting) -> dict[str, Any]:
    """The paper's kappa for the paper setting ``setting`` scales, from
    :mod:`convergent.reference`: ``paper_kappa`` (T -> published value), ``paper_note`` (a
    bound the paper states in words, or why there is no value) and ``paper_row``.

    Chunk-2 runs are compared with the chunk-3 row they scale down; the carry-mod variant
    is not the paper's single-token control and has no published value."""
    multi = setting.role == "multi"
    values = published(PaperSetting(
        "addition", optimizer=setting.optimizer, digits=9 if multi else 3, chunk=3,
        answer=None if multi else setting.answer))
    kappa = {t: v for (measure, t), v in sorted(values.items()) if measure == "kappa"}
    exact = {str(t): v.low for t, v in kappa.items() if v.exact}
    bounds = sorted({v.text() for v in kappa.values() if not v.exact})
    note = (f"paper: every 3-digit run has {bounds[0].replace('·', 'kappa')}" if bounds else
            None if kappa else "no published value (the paper's control writes the whole sum)")
    rows = sorted({v.row for v in kappa.values()})
    return {"paper_kappa": exact, "paper_note": note, "paper_row": rows[0] if rows else None}


@dataclass(frozen=True)
class AdditionReproduction:
    """All runs plus a per-setting summary (mean and spread over seeds) and the paper's."""

    config: ReproConfig
    runs: tuple[RunSummary, ...]
    versions: dict[str, str] = field(default_factory=versions)

    def summary(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for setting in self.config.settings:
            runs = [r for r in self.runs if r.setting == setting.label]
            if not runs:
                continue
            acc = np.array([r.final["test"]["exact_match"] for r in runs])
            periods = sorted(int(t) for t in runs[0].final["numbers"]["periods"])
            kappa = {t: np.array([r.final["numbers"]["periods"][str(t)]["kappa"] for r in runs])
                     for t in periods}
            phi = {t: np.array([r.final["numbers"]["periods"][str(t)]["phi"] for r in runs])
                   for t in periods}
            out[setting.label] = {
                "seeds": [r.seed for r in runs],
                "test_exact_match": _stats(acc),
                "kappa": {str(t): _stats(v) for t, v in kappa.items()},
                "null_kappa": _null(runs, periods),
                "init_kappa": {str(t): _stats(np.array(
                    [r.dynamics[0]["periods"][str(t)]["kappa"] for r in runs]))
                    for t in periods},
                "phi": {str(t): _stats(v) for t, v in phi.items()},
                "spike": {str(t): _stats(np.array(
                    [r.final["numbers"]["periods"][str(t)]["spike"] for r in runs]))
                    for t in periods},
                "paper_setting": setting.paper_label,
                **paper_kappa(setting),
            }
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"experiment": "addition", "config": self.config.to_dict(),
                "summary": self.summary(), "runs": [r.to_dict() for r in self.runs],
                "versions": self.versions}


def _null(runs: Sequence[RunSummary], periods: Sequence[int]) -> dict[str, Any] | None:
    """Chance kappa per T: shuffled-number probes of every run's final embedding, pooled."""
    if any("null_kappa" not in r.final for r in runs):
        return None
    return {str(t): _stats(np.array([v for r in runs for v in r.final["null_kappa"][str(t)]
                                     ["values"]])) for t in periods}


def _stats(values: np.ndarray) -> dict[str, Any]:
    return {"mean": float(values.mean()), "std": float(values.std(ddof=0)),
            "values": [float(v) for v in values]}


def _train_one(args: tuple[Any, str, int]) -> str:
    """Worker: train and evaluate one run with one torch thread (returns the run dir)."""
    import torch

    from convergent.tasks.run import evaluate_run, train_task

    spec, run_dir, threads = args
    torch.set_num_threads(threads)
    train_task(spec, run_dir, progress=False)
    evaluate_run(run_dir, progress=False)
    return run_dir


def summarise_run(setting: Setting, seed: int, run_dir: Path) -> RunSummary:
    from convergent.tasks.run import evaluate_run

    points = evaluate_run(run_dir, progress=False)
    if not points or "numbers" not in points[-1]:
        raise ConvergentError(f"{run_dir}: no evaluated checkpoint with number embeddings")
    dynamics = tuple(
        {"step": p["step"], "tokens": p["tokens"], "test": p["test"], "train": p["train"],
         "periods": {t: {"phi": v["phi"], "kappa": v["kappa"], "spike": v["spike"],
                         "accuracy": v.get("accuracy")}
                     for t, v in p["numbers"]["periods"].items()}}
        for p in points)
    return RunSummary(setting.label, seed, str(run_dir), points[-1], dynamics)


def reproduce_addition(out: str | Path, config: ReproConfig | None = None,
                       progress: bool = True) -> AdditionReproduction:
    """Train and evaluate every (setting, seed) run under ``out/runs``; resumable."""
    from tqdm.auto import tqdm

    config = config or ReproConfig()
    out = Path(out)
    jobs = [(s, seed, out / "runs" / f"{s.slug}-s{seed}") for seed in config.seeds
            for s in config.settings]
    work = [(config.run_spec(s, seed), str(d), 1) for s, seed, d in jobs]
    bar = tqdm(total=len(work), disable=not progress, unit="run", desc="addition runs",
               dynamic_ncols=True)
    with folder_lock(out, what="convergent reproduce addition"):
        if config.workers == 1:
            for item in work:
                _train_one(item)
                bar.update(1)
        else:
            _train_in_pool(work, config.workers, bar)
    bar.close()
    runs = tuple(summarise_run(s, seed, d) for s, seed, d in jobs)
    return AdditionReproduction(config, runs)


def _train_in_pool(work: list[tuple[Any, str, int]], workers: int, bar: Any) -> None:
    """The runs in a process pool whose workers die with this process; Ctrl-C stops them
    at once (finished runs are kept: a rerun resumes the others)."""
    import os

    from convergent.experiments.lifetime import die_with_parent, stop_processes

    pool = ProcessPoolExecutor(max_workers=workers, initializer=die_with_parent,
                               initargs=(os.getpid(),))
    try:
        for _ in pool.map(_train_one, work):
            bar.update(1)
    except BaseException:
        stop_processes(list(pool._processes.values()))
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()


def with_changes(config: ReproConfig, **changes: Any) -> ReproConfig:
    """``config`` with the non-None ``changes`` applied."""
    return replace(config, **{k: v for k, v in changes.items() if v is not None})


def setting_labels(settings: Sequence[Setting]) -> list[str]:
    return [s.label for s in settings]
