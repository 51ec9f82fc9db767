"""Train one task run through the training engine, then evaluate every checkpoint.

``train_task(spec, out)`` writes a normal run directory (``convergent.train.run.train``
with an :class:`AdditionBatches` source and the task's tokenizer), plus ``task.json`` (the
task and split, checked on resume) and ``eval/step-XXXXXXXX.json`` per checkpoint (test
accuracy, train accuracy on a fixed sample, and the number analysis of the embedding rows
of the operand tokens 0..base-1, also when a 'whole' answer adds sum tokens above them).
Evaluation reads the saved checkpoints, so it resumes too, and works on any finished task
run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from convergent.errors import ConvergentError
from convergent.io import write_json_atomic
from convergent.tasks.addition import AdditionTask
from convergent.tasks.dataset import AdditionBatches, AdditionSplit, SplitConfig
from convergent.train.config import TrainConfig

TASK_FILE = "task.json"
MIN_ANALYSED = 100  # number tokens needed for the mod-T probe with 5 folds up to T = 10
TRAIN_SAMPLE = 2000
NULL_SHUFFLES = 4  # shuffled-number probes at the last checkpoint (~2 s each at N = 1000)


@dataclass(frozen=True)
class TaskRunSpec:
    """A task run: the task format, the split and the engine config."""

    task: AdditionTask
    split: SplitConfig
    config: TrainConfig
    loss_on: str = "answer"
    permutations: int = 100
    probe_seed: int = 0
    meta: dict[str, Any] = field(default_factory=dict)

    def task_record(self) -> dict[str, Any]:
        return {"kind": "addition", "task": self.task.to_dict(), "split": self.split.to_dict(),
                "loss_on": self.loss_on, "permutations": self.permutations,
                "probe_seed": self.probe_seed}


def task_config(task: AdditionTask, base: TrainConfig) -> TrainConfig:
    """``base`` made to fit the task: its sequence length, vocabulary and corpus label."""
    return base.replace(seq_len=task.seq_len - 1, vocab_size=task.vocab_size,
                        tokenizer="word", corpus=f"task:{task.spec}").validate()


def _with_answer(record: dict[str, Any]) -> dict[str, Any]:
    """A task record written before the ``answer`` field existed: those runs all wrote the
    carry-mod answer."""
    if "answer" in record.get("task", {}):
        return record
    return {**record, "task": {**record["task"], "answer": "carry-mod"}}


def _check_task_file(run_dir: Path, record: dict[str, Any]) -> None:
    file = run_dir / TASK_FILE
    if file.is_file():
        old = _with_answer(json.loads(file.read_text()))
        if old != record:
            raise ConvergentError(
                f"{run_dir} holds a run of a different task or split ({old} there, {record} "
                "now); use another --out or delete the folder")
    else:
        write_json_atomic(file, record)


def train_task(spec: TaskRunSpec, out: str | Path, progress: bool = True,
               stop_after: int | None = None, compile: bool = False) -> Any:
    """Train (or resume) the task run into ``out``; returns the engine's ``RunResult``."""
    from convergent.train.run import prepare_run_dir, train

    config = task_config(spec.task, spec.config)
    run_dir = prepare_run_dir(out, config)  # refuses a folder with another run or files
    _check_task_file(run_dir, spec.task_record())
    batches, tokenizer = task_batches(run_dir, config)
    return train(config, run_dir, batches=batches, tokenizer=tokenizer,
                 progress=progress, stop_after=stop_after, compile=compile)


def task_batches(run_dir: Path, config: TrainConfig) -> tuple[AdditionBatches, Any]:
    """The batch source and tokenizer of the task run in ``run_dir`` (from ``task.json``)."""
    record, task, split, _ = load_task_run(run_dir)
    batches = AdditionBatches(split, config.batch_size, config.seed, record["loss_on"])
    return batches, task.tokenizer()


def load_task_run(run_dir: str | Path) -> tuple[dict[str, Any], AdditionTask, AdditionSplit,
                                                TrainConfig]:
    """(task record, task, split, config) of a task run directory."""
    run_dir = Path(run_dir)
    try:
        record = _with_answer(json.loads((run_dir / TASK_FILE).read_text()))
    except (OSError, json.JSONDecodeError, KeyError) as err:
        raise ConvergentError(f"{run_dir}: not a task run ({err})") from None
    task = AdditionTask(**record["task"])
    split = AdditionSplit(task, SplitConfig(**record["split"]))
    config = TrainConfig.load(run_dir / "config.json")
    return record, task, split, config


def evaluate_run(run_dir: str | Path, progress: bool = True,
                 null_shuffles: int = NULL_SHUFFLES) -> list[dict[str, Any]]:
    """Evaluate every checkpoint (cached in ``eval/``); one dict per checkpoint, by step.

    The last checkpoint also gets ``null_kappa``: the probe's chance level on its own
    embedding rows with the numbers shuffled (``null_shuffles`` permutations; 0 skips it).
    """
    import torch
    from tqdm.auto import tqdm

    from convergent.numbers import analyze_numbers
    from convergent.tasks.evaluate import accuracy, number_embeddings, shuffled_kappa
    from convergent.train.checkpoint import list_checkpoints, load_tensors, read_state
    from convergent.train.models import build_model

    run_dir = Path(run_dir)
    record, task, split, config = load_task_run(run_dir)
    model = build_model(config.arch, config.model, task.vocab_size)
    rng = np.random.default_rng([record["split"]["seed"], 5])
    train_a, train_b = split.train_pairs(int(rng.integers(0, 2**31)), TRAIN_SAMPLE,
                                         config.seed)
    points = []
    checkpoints = list_checkpoints(run_dir)
    for info in tqdm(checkpoints, disable=not progress, desc=f"evaluate {run_dir.name}",
                     unit="ckpt", dynamic_ncols=True):
        cache = run_dir / "eval" / f"step-{info.step:08d}.json"
        if cache.is_file():
            points.append(json.loads(cache.read_text()))
            continue
        read_state(info.path, verify=True)
        model.load_state_dict(load_tensors(info.path / "model.safetensors"))
        with torch.no_grad():
            test = accuracy(model, task, *split.test)
            train = accuracy(model, task, train_a, train_b)
        point: dict[str, Any] = {"step": info.step, "tokens": info.tokens,
                                 "test": test.to_dict(), "train": train.to_dict()}
        if task.base >= MIN_ANALYSED:
            result = analyze_numbers(number_embeddings(model, task), range(task.base),
                                     seed=record["probe_seed"],
                                     permutations=record["permutations"],
                                     name=f"{run_dir.name}@{info.step}", site="embed")
            point["numbers"] = result.to_dict()
        write_json_atomic(cache, point)
        points.append(point)
    last = points[-1] if points else {}
    if null_shuffles and "numbers" in last and "null_kappa" not in last:
        model.load_state_dict(load_tensors(checkpoints[-1].path / "model.safetensors"))
        last["null_kappa"] = shuffled_kappa(number_embeddings(model, task), null_shuffles,
                                            seed=record["probe_seed"])
        write_json_atomic(run_dir / "eval" / f"step-{last['step']:08d}.json", last)
    return points
