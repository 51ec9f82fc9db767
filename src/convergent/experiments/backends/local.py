"""Local backends: a process pool sized to the cores, and in-process serial execution."""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from convergent.errors import ConvergentError
from convergent.experiments.worker import THREADS_ENV, execute


def available_cores() -> int:
    """Cores this process may use (the affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def _init_worker(threads: int) -> None:
    os.environ[THREADS_ENV] = str(threads)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[name] = str(threads)


class LocalBackend:
    """``workers`` processes (default: one per core), each job given cores // workers threads.

    Processes are started with ``spawn`` (safe with torch and threads) and reused across
    jobs, so imports are paid once per worker, not per job.
    """

    name = "local"

    def __init__(self, workers: int | None = None, threads: int | None = None) -> None:
        cores = available_cores()
        self.slots = workers or cores
        if self.slots < 1:
            raise ConvergentError(f"workers {self.slots}: must be at least 1")
        self.threads = threads or max(1, cores // self.slots)
        self._pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=self.slots, mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker, initargs=(self.threads,))

    def submit(self, job: dict[str, Any], out: str) -> Future[dict[str, Any]]:
        try:
            return self._pool.submit(execute, job, out, self.threads)
        except BrokenProcessPool:  # a worker died (its jobs are reported failed): start anew
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._new_pool()
            return self._pool.submit(execute, job, out, self.threads)

    def close(self, cancel: bool = False) -> None:
        self._pool.shutdown(wait=not cancel, cancel_futures=cancel)


class SerialBackend:
    """Jobs run in this process, one after another, when submitted (no parallelism)."""

    name = "serial"
    slots = 1

    def submit(self, job: dict[str, Any], out: str) -> Future[dict[str, Any]]:
        future: Future[dict[str, Any]] = Future()
        future.set_running_or_notify_cancel()
        try:
            future.set_result(execute(job, out))
        except BaseException as err:  # KeyboardInterrupt propagates after recording
            future.set_exception(err)
            if not isinstance(err, Exception):
                raise
        return future

    def close(self, cancel: bool = False) -> None:
        del cancel
