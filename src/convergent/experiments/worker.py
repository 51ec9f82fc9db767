"""Run one job in whatever process a backend gives it; always return a record, never raise.

A job's folder is ``OUT/jobs/<key>/``: ``job.json`` (written by the runner), ``log.txt``
(everything the job printed), the job's outputs (``run/`` for training and addition runs,
``result.json`` for analyses) and ``record.json`` (status, timings, summary; written here
when the job ends, so a finished job is kept even if its runner dies, and by the runner for
a job whose worker died or was interrupted). While it runs a job, the process holds
:func:`convergent.locking.worker_lock` on ``OUT``, so no new runner starts beside it.
Training resumes from the run's last checkpoint, so a killed job loses at most one
checkpoint interval.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import platform
import time
import traceback
from pathlib import Path
from typing import Any

from convergent.errors import ConvergentError
from convergent.io import write_json_atomic
from convergent.locking import worker_lock

THREADS_ENV = "CONVERGENT_JOB_THREADS"
DEVICES_ENV = "CUDA_VISIBLE_DEVICES"


def job_dir(out: str | Path, key: str) -> Path:
    return Path(out) / "jobs" / key


def run_dir(out: str | Path, key: str) -> Path:
    """The run folder of a train or addition job."""
    return job_dir(out, key) / "run"


def execute(job: dict[str, Any], out: str, threads: int | None = None,
            devices: str | None = None) -> dict[str, Any]:
    """Run ``job`` (a :class:`~convergent.experiments.plan.Job` as a dict) into ``out``.

    ``devices`` (e.g. ``"2,3"``) becomes ``CUDA_VISIBLE_DEVICES`` before anything touches
    CUDA: the backend gives each GPU job a fresh process, so this holds for the whole job
    and for the torchrun ranks it starts. Returns the record: ``status`` ``ok`` or
    ``failed``, ``error`` (one line) and ``traceback``, wall-clock ``seconds``,
    ``cpu_seconds`` (this process, all threads; on a shared machine the honest measure of a
    job's cost), ``host``, ``pid``, ``devices`` (the ``CUDA_VISIBLE_DEVICES`` the job saw)
    and a kind-specific ``summary``.
    """
    if devices is not None:
        os.environ[DEVICES_ENV] = devices
    folder = job_dir(out, job["key"])
    folder.mkdir(parents=True, exist_ok=True)
    threads = threads or int(os.environ.get(THREADS_ENV, "0") or 0)
    started, cpu = time.time(), time.process_time()
    record: dict[str, Any] = {"key": job["key"], "kind": job["kind"], "label": job["label"],
                              "host": platform.node(), "pid": os.getpid(), "started": started,
                              "threads": threads, "gpus": int(job.get("gpus", 0)),
                              "devices": os.environ.get(DEVICES_ENV)}
    with worker_lock(out), open(folder / "log.txt", "a") as log, \
            contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        print(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} {job['kind']} {job['label']} "
              f"(pid {os.getpid()} on {platform.node()})", flush=True)
        try:
            runner = RUNNERS[job["kind"]]
            _limit_threads(threads)
            summary = runner(job, Path(out))
            record.update(status="ok", summary=summary)
        except Exception as err:  # a failing job is reported, never fatal to the others
            trace = traceback.format_exc()
            print(trace, flush=True)
            message = str(err) if isinstance(err, ConvergentError) else (
                f"{type(err).__name__}: {err}")
            record.update(status="failed", error=message.splitlines()[0] if message else
                          type(err).__name__, traceback=trace)
    record["finished"] = time.time()
    record["seconds"] = round(record["finished"] - started, 3)
    record["cpu_seconds"] = round(time.process_time() - cpu, 3)  # all threads of this process
    write_json_atomic(folder / "record.json", record)  # kept even if the runner dies now
    return record


def _limit_threads(threads: int) -> None:
    """One share of the cores per job (set by the backend); 0 leaves the defaults alone."""
    if threads <= 0:
        return
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[name] = str(threads)
    try:
        import torch
    except ModuleNotFoundError:
        return
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def _train(job: dict[str, Any], out: Path) -> dict[str, Any]:
    """A training run; with ``engine.nproc`` > 1, ``train`` starts its torchrun ranks."""
    from convergent.train.config import TrainConfig
    from convergent.train.run import train

    config = TrainConfig.from_dict(job["config"]["train"])
    result = train(config, run_dir(out, job["key"]), progress=False)
    if not result.complete:
        raise ConvergentError(f"{job['label']}: training stopped before the end")
    summary = {"steps": result.steps, "tokens": result.tokens,
               "final_loss": result.final_loss, "checkpoints": len(result.checkpoints),
               "run": str(result.run_dir)}
    if config.engine.nproc > 1:
        summary["processes"] = config.engine.nproc
    return summary


def _addition(job: dict[str, Any], out: Path) -> dict[str, Any]:
    from convergent.tasks.addition import AdditionTask
    from convergent.tasks.dataset import SplitConfig
    from convergent.tasks.run import TaskRunSpec, evaluate_run, train_task
    from convergent.train.config import TrainConfig

    cfg = job["config"]
    spec = TaskRunSpec(AdditionTask(**cfg["task"]), SplitConfig(**cfg["split"]),
                       TrainConfig.from_dict(cfg["train"]), loss_on=cfg["loss_on"])
    folder = run_dir(out, job["key"])
    result = train_task(spec, folder, progress=False)
    points = evaluate_run(folder, progress=False)
    write_json_atomic(job_dir(out, job["key"]) / "result.json", {"points": points})
    last = points[-1] if points else {}
    return {"steps": result.steps, "tokens": result.tokens, "final_loss": result.final_loss,
            "checkpoints": len(points), "run": str(folder),
            "test_exact_match": (last.get("test") or {}).get("exact_match")}


def _numbers(job: dict[str, Any], out: Path) -> dict[str, Any]:
    import warnings

    from convergent.numbers.analysis import analyze_representation
    from convergent.sources import open_source, require_numbers

    cfg = job["config"]
    settings = cfg["settings"]
    source_cfg = cfg["source"]
    if "run" in source_cfg:
        source = open_source(f"run:{run_dir(out, source_cfg['run'])}")
    else:
        source = open_source(source_cfg["spec"], **source_cfg.get("options", {}))
    numbers = range(*settings["numbers"])
    points: list[tuple[int | None, int | None, Any]] = [(None, None, source)]
    if settings["checkpoints"] == "all":
        if not hasattr(source, "checkpoints"):
            raise ConvergentError(f"{job['label']}: checkpoints = 'all' needs a training run")
        points = list(source.checkpoints())
    entries = []
    display = job["label"].partition("/")[2] or job["label"]
    for step, tokens, checkpoint in points:
        for rep in checkpoint.number_representations(list(numbers), settings["sites"]):
            if "run" in source_cfg:
                rep = dataclasses.replace(rep, source=display)
            chosen = require_numbers(rep, numbers, contiguous=settings["contiguous"])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result = analyze_representation(
                    chosen, moduli=settings["moduli"], folds=settings["folds"],
                    seed=settings["seed"], permutations=settings["permutations"])
            entry = result.to_dict()
            if step is not None:
                entry["meta"] = {**entry["meta"], "step": step, "tokens": tokens}
            entries.append(entry)
    write_json_atomic(job_dir(out, job["key"]) / "result.json", {"entries": entries})
    return {"entries": len(entries)}


RUNNERS = {"train": _train, "addition": _addition, "numbers": _numbers}
