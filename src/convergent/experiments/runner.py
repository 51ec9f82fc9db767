"""``run_experiment(spec, out, backend)``: run every job not already finished, then the table.

The output folder holds ``spec.toml`` (a copy), ``plan.json`` (jobs and how they group),
``jobs/<key>/`` per job (see :mod:`.worker`) and ``results.parquet`` (:mod:`.store`).
Finished jobs (``record.json`` with status ok) are skipped, so a killed or failed run is
resumed by running it again; a failing job is recorded with its error, the jobs that need
it are reported as blocked, and every other job still runs. One runner at a time may use
a folder (:func:`convergent.locking.folder_lock`, released by the OS if the runner dies).

Workers die with their runner (:mod:`.lifetime`): Ctrl-C or SIGTERM stops the running
jobs, records them as interrupted and keeps every finished one, within seconds; SIGKILL
takes the workers down through the parent-death signal, and the next runner waits for
them to exit before it starts.

Jobs that ask for GPUs (:attr:`.plan.Job.gpus`) start when the backend has them free
(``backend.ready(job)``), in plan order; a job asking for more GPUs than the backend has is
refused before anything runs or is written.
"""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from convergent.errors import ConvergentError
from convergent.experiments.backends import Backend, make_backend
from convergent.experiments.lifetime import interrupt_on_sigterm
from convergent.experiments.plan import Job, Plan, for_backend, make_plan
from convergent.experiments.spec import ExperimentSpec
from convergent.experiments.worker import job_dir
from convergent.io import write_bytes_atomic, write_json_atomic
from convergent.locking import folder_lock

STORE_EVERY = 10.0  # seconds between rewrites of the results table while jobs finish
CRASH_RETRIES = 2  # a job whose worker process died is resubmitted this many times


@dataclass(frozen=True)
class RunSummary:
    """What one call of :func:`run_experiment` did."""

    out: Path
    backend: str
    total: int
    skipped: int
    ok: int
    failed: tuple[dict[str, Any], ...] = ()
    blocked: tuple[str, ...] = ()
    seconds: float = 0.0
    jobs_seconds: float = 0.0
    table: Path | None = None

    @property
    def success(self) -> bool:
        return not self.failed and not self.blocked

    def to_dict(self) -> dict[str, Any]:
        return {"out": str(self.out), "backend": self.backend, "total": self.total,
                "skipped": self.skipped, "ok": self.ok,
                "failed": [{k: r.get(k) for k in ("key", "label", "error")}
                           for r in self.failed],
                "blocked": list(self.blocked), "seconds": self.seconds,
                "jobs_seconds": self.jobs_seconds,
                "table": str(self.table) if self.table else None}


def _read_json(file: Path) -> Any:
    try:
        return json.loads(file.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def read_record(out: Path, key: str) -> dict[str, Any] | None:
    return _read_json(job_dir(out, key) / "record.json")


def is_done(out: Path, job: Job) -> bool:
    record = read_record(out, job.key)
    if record is None or record.get("status") != "ok":
        return False
    folder = job_dir(out, job.key)
    needed = folder / ("run" if job.kind == "train" else "result.json")
    return needed.exists()


def write_plan(spec: ExperimentSpec, the_plan: Plan, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    if spec.path is not None:
        text = spec.path.read_bytes()
        write_bytes_atomic(out / "spec.toml", lambda h: h.write(text))
    write_json_atomic(out / "plan.json", the_plan.to_dict())
    for job in the_plan.jobs.values():
        file = job_dir(out, job.key) / "job.json"
        if _read_json(file) != job.to_dict():  # new, or a label or request that changed
            write_json_atomic(file, job.to_dict())


def check_resources(the_plan: Plan, gpus: int, where: str) -> None:
    """Refuse, in one line, a job that asks for more GPUs than ``where`` has (``gpus``)."""
    for job in the_plan.jobs.values():
        if job.gpus > gpus:
            raise ConvergentError(
                f"{job.label} asks for {job.gpus} GPU(s) (one per rank on CUDA) but {where} "
                f"has {gpus or 'none'}; lower processes/engine.nproc or set "
                "engine.device = \"cpu\"")


def place(the_plan: Plan, backend: Backend) -> Plan:
    """``the_plan`` with each job's request for ``backend`` (checked to fit it)."""
    if any(job.kind != "numbers" for job in the_plan.jobs.values()):
        gpus = int(getattr(backend, "gpus", 0))
        the_plan = for_backend(the_plan, gpus > 0)
        check_resources(the_plan, gpus, f"the {backend.name} backend")
    return the_plan


def run_experiment(
    spec: ExperimentSpec,
    out: str | Path | None = None,
    backend: str | Backend = "local",
    workers: int | None = None,
    address: str | None = None,
    progress: bool = True,
    gpus: int | None = None,
) -> RunSummary:
    """Run ``spec`` into ``out`` (default ``out/<name>``) on ``backend``; see module doc.

    ``gpus``: how many GPUs the local backend hands out, or a local Ray cluster declares
    (default: the visible ones).
    """
    from convergent.experiments.store import write_table

    target = (Path(out) if out is not None else spec.default_out()).resolve()
    the_plan = make_plan(spec)  # a bad config fails before a backend starts
    started = time.perf_counter()
    runner = (backend if not isinstance(backend, str)
              else make_backend(backend, workers=workers, address=address, gpus=gpus))
    try:
        the_plan = place(the_plan, runner)
        with folder_lock(target, what="convergent run"), interrupt_on_sigterm():
            write_plan(spec, the_plan, target)
            state = _State()
            try:
                _schedule(the_plan, target, runner, progress, state)
            except BaseException:  # Ctrl-C, SIGTERM: stop the workers, record every job
                _stop(target, runner, state)
                _log_call(target, runner, state, time.perf_counter() - started)
                raise
            runner.close()
            table = write_table(target)
            _log_call(target, runner, state, time.perf_counter() - started)
    except BaseException:  # refused or interrupted: drop queued work, keep what is finished
        runner.close(cancel=True)
        raise
    return RunSummary(target, runner.name, len(the_plan.jobs), state.skipped, state.ok,
                      tuple(state.failed), tuple(state.blocked),
                      round(time.perf_counter() - started, 3), round(state.jobs_seconds, 3),
                      table)


@dataclass
class _State:
    done: set[str] = field(default_factory=set)
    failed: list[dict[str, Any]] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    skipped: int = 0
    ok: int = 0
    jobs_seconds: float = 0.0
    running: dict[Future[dict[str, Any]], Job] = field(default_factory=dict)
    began: float = field(default_factory=time.time)


def _schedule(the_plan: Plan, out: Path, backend: Backend, progress: bool,
              state: _State | None = None) -> _State:
    """Run the plan's unfinished jobs; ``state`` (filled as jobs end) survives an interrupt."""
    from tqdm.auto import tqdm

    from convergent.experiments.store import write_table

    state = _State() if state is None else state
    pending: dict[str, Job] = {}
    for key, job in the_plan.jobs.items():
        if is_done(out, job):
            state.done.add(key)
            state.skipped += 1
        else:
            pending[key] = job
    bad: set[str] = set()
    attempts: dict[str, int] = {}
    running = state.running
    bar = tqdm(total=len(pending), disable=not progress, unit="job", desc="jobs",
               dynamic_ncols=True)
    last_store = time.monotonic()
    ready = getattr(backend, "ready", lambda job: True)
    while pending or running:
        cpu_jobs = sum(not j.gpus for j in running.values())
        gpu_waiting = False  # GPU jobs start in plan order: a large one is not overtaken
        for key, job in list(pending.items()):
            if any(d in bad for d in job.deps):
                del pending[key]
                bad.add(key)
                state.blocked.append(job.label)
                bar.update(1)
            elif not all(d in state.done for d in job.deps):
                continue
            elif job.gpus and (gpu_waiting or not ready(job.to_dict())):
                gpu_waiting = True
            elif job.gpus or cpu_jobs < 2 * backend.slots:
                del pending[key]
                cpu_jobs += not job.gpus
                running[backend.submit(job.to_dict(), str(out))] = job
        if not running:
            break  # only jobs whose dependencies are missing: nothing can run
        finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
        for future in finished:
            job = running.pop(future)
            record = _record_of(future, job)
            if record.get("crashed") and attempts.get(job.key, 0) < CRASH_RETRIES:
                attempts[job.key] = attempts.get(job.key, 0) + 1  # a lost worker: run again
                running[backend.submit(job.to_dict(), str(out))] = job
                continue
            write_json_atomic(job_dir(out, job.key) / "record.json", record)
            state.jobs_seconds += float(record.get("seconds") or 0.0)
            if record["status"] == "ok":
                state.done.add(job.key)
                state.ok += 1
            else:
                bad.add(job.key)
                state.failed.append(record)
                bar.write(f"failed: {job.label}: {record.get('error')} "
                          f"(log: {job_dir(out, job.key) / 'log.txt'})")
            bar.update(1)
            bar.set_postfix(ok=state.ok, failed=len(state.failed))
        if time.monotonic() - last_store > STORE_EVERY:
            write_table(out)
            last_store = time.monotonic()
    bar.close()
    return state


def _stop(out: Path, backend: Backend, state: _State) -> None:
    """After an interrupt: stop every worker, then record each job that was submitted.

    A job that finished has its record (written by its worker, or here from its future);
    one that was stopped is recorded ``interrupted`` (it reruns, resuming from its last
    checkpoint, on the next call). The results table is rebuilt.
    """
    from convergent.experiments.store import write_table

    backend.close(cancel=True)  # returns when the last worker has exited
    for future, job in state.running.items():
        record = read_record(out, job.key)
        if record is not None and float(record.get("finished") or 0) < state.began:
            record = None  # an earlier call's record of a job rerun by this one
        if record is None and future.done() and not future.cancelled() \
                and future.exception() is None:
            record = future.result()
            write_json_atomic(job_dir(out, job.key) / "record.json", record)
        if record is not None and record.get("status") == "ok":
            state.ok += 1
            state.jobs_seconds += float(record.get("seconds") or 0.0)
        elif record is None:
            write_json_atomic(job_dir(out, job.key) / "record.json", {
                "key": job.key, "kind": job.kind, "label": job.label,
                "status": "interrupted", "seconds": None,
                "error": "interrupted (Ctrl-C or SIGTERM); the next run resumes it"})
    state.running.clear()
    write_table(out)


def _log_call(out: Path, backend: Backend, state: _State, seconds: float) -> None:
    """Append this call's counts and timings to ``out/runs.jsonl`` (read by the report)."""
    line = json.dumps({"started_at": time.strftime("%Y-%m-%d %H:%M:%S"),
                       "backend": backend.name, "slots": backend.slots,
                       "ran": state.ok + len(state.failed), "skipped": state.skipped,
                       "failed": len(state.failed), "seconds": round(seconds, 2),
                       "jobs_seconds": round(state.jobs_seconds, 2)})
    with open(out / "runs.jsonl", "a") as handle:
        handle.write(line + "\n")


def _record_of(future: Future[dict[str, Any]], job: Job) -> dict[str, Any]:
    try:
        return future.result()
    except Exception as err:  # the worker process itself died (out of memory, killed)
        return {"key": job.key, "kind": job.kind, "label": job.label, "status": "failed",
                "crashed": True, "seconds": None, "pid": os.getpid(),
                "error": f"the worker process running this job died ({type(err).__name__}); "
                "out of memory? (a script calling run_experiment with the local backend "
                "needs `if __name__ == '__main__':`, as workers are started with spawn)"}
