"""Local backends: a process pool sized to the cores (plus GPU slots), and serial execution.

``concurrent.futures`` has no notion of devices, so :class:`LocalBackend` keeps a small pool
of GPU slots of its own: a GPU job takes as many free devices as it asks for, runs in a fresh
spawned process with ``CUDA_VISIBLE_DEVICES`` set to them (torchrun ranks inherit it), and
gives them back when it ends. The runner asks :meth:`LocalBackend.ready` before submitting,
so GPU jobs wait for free devices instead of sharing them.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from functools import cached_property
from typing import Any

from convergent.errors import ConvergentError
from convergent.experiments.lifetime import die_with_parent, stop_processes
from convergent.experiments.worker import DEVICES_ENV, THREADS_ENV, execute
from convergent.hardware import available_cores


def visible_gpus() -> list[str]:
    """The GPU ids jobs may be given: ``CUDA_VISIBLE_DEVICES`` if set, else torch's count."""
    listed = os.environ.get(DEVICES_ENV)
    if listed is not None:
        return [d.strip() for d in listed.split(",") if d.strip() and d.strip() != "-1"]
    try:
        import torch
    except ModuleNotFoundError:
        return []
    return [str(i) for i in range(torch.cuda.device_count())]


def _gpu_ids(gpus: int | Sequence[str] | None) -> list[str]:
    if gpus is None:
        return visible_gpus()
    if isinstance(gpus, int):  # the first N of CUDA_VISIBLE_DEVICES, else ids 0..N-1
        if gpus < 0:
            raise ConvergentError(f"gpus {gpus}: must be >= 0")
        if os.environ.get(DEVICES_ENV) is None:
            return [str(i) for i in range(gpus)]
        ids = visible_gpus()
        if gpus > len(ids):
            raise ConvergentError(f"--gpus {gpus}: only {len(ids)} visible "
                                  f"({DEVICES_ENV}={os.environ[DEVICES_ENV]!r})")
        return ids[:gpus]
    return [str(g) for g in gpus]


def _init_worker(threads: int, hide_gpus: bool, parent: int) -> None:
    """Each worker: dies with the runner, leaves Ctrl-C to it, takes its share of threads."""
    die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the runner stops its workers itself
    os.environ[THREADS_ENV] = str(threads)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[name] = str(threads)
    if hide_gpus:  # CPU jobs see no GPU, so none of them takes a GPU job's device
        os.environ[DEVICES_ENV] = ""


class LocalBackend:
    """``workers`` processes (default: one per core), each job given cores // workers threads.

    CPU jobs run in processes started with ``spawn`` and reused across jobs, so imports are
    paid once per worker. GPU jobs (``job["gpus"] > 0``) each get a fresh process and their
    own devices from ``gpus`` (a count or a list of ids; default: :func:`visible_gpus`).
    """

    name = "local"

    def __init__(self, workers: int | None = None, threads: int | None = None,
                 gpus: int | Sequence[str] | None = None) -> None:
        cores = available_cores()
        self.slots = workers or cores
        if self.slots < 1:
            raise ConvergentError(f"workers {self.slots}: must be at least 1")
        self.threads = threads or max(1, cores // self.slots)
        self._given = gpus
        self._held: dict[Future[dict[str, Any]], list[str]] = {}
        self._pool = self._new_pool(False)
        self._gpu_pool: ProcessPoolExecutor | None = None

    def _new_pool(self, for_gpus: bool) -> ProcessPoolExecutor:
        if for_gpus:  # one fresh process per job: CUDA_VISIBLE_DEVICES precedes CUDA's start
            return ProcessPoolExecutor(
                max_workers=self.gpus, mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker, initargs=(self.threads, False, os.getpid()),
                max_tasks_per_child=1)
        return ProcessPoolExecutor(
            max_workers=self.slots, mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker, initargs=(self.threads, True, os.getpid()))

    @cached_property
    def _devices(self) -> list[str]:  # looked up on first use (torch's import is slow)
        return _gpu_ids(self._given)

    @cached_property
    def _free(self) -> list[str]:
        return list(self._devices)

    @property
    def gpus(self) -> int:
        """How many GPUs this backend hands out."""
        return len(self._devices)

    def ready(self, job: dict[str, Any]) -> bool:
        """Whether ``job`` can start now (enough free GPUs; CPU jobs always can)."""
        self._reclaim()
        return int(job.get("gpus", 0)) <= len(self._free)

    def submit(self, job: dict[str, Any], out: str) -> Future[dict[str, Any]]:
        wanted = int(job.get("gpus", 0))
        if not wanted:
            return self._submit(False, job, out, None)
        if not self.ready(job):
            raise ConvergentError(f"{job['label']}: asks for {wanted} GPU(s), "
                                  f"{len(self._free)} of {self.gpus} are free")
        taken, self._free = self._free[:wanted], self._free[wanted:]
        future = self._submit(True, job, out, ",".join(taken))
        self._held[future] = taken
        return future

    def _submit(self, for_gpus: bool, job: dict[str, Any], out: str,
                devices: str | None) -> Future[dict[str, Any]]:
        pool = self._gpu_pool if for_gpus else self._pool
        if pool is None:
            pool = self._gpu_pool = self._new_pool(True)
        try:
            return pool.submit(execute, job, out, self.threads, devices)
        except BrokenProcessPool:  # a worker died (its jobs are reported failed): start anew
            pool.shutdown(wait=False, cancel_futures=True)
            pool = self._new_pool(for_gpus)
            if for_gpus:
                self._gpu_pool = pool
            else:
                self._pool = pool
            return pool.submit(execute, job, out, self.threads, devices)

    def _reclaim(self) -> None:
        """Return the devices of finished GPU jobs to the free list (in their first order)."""
        for future in [f for f in self._held if f.done()]:
            self._free.extend(self._held.pop(future))
        self._free.sort(key=self._devices.index)

    def close(self, cancel: bool = False) -> None:
        """Wait for the workers; with ``cancel``, drop queued jobs and stop running ones."""
        for pool in (self._pool, self._gpu_pool):
            if pool is None:
                continue
            processes = list((getattr(pool, "_processes", None) or {}).values())
            pool.shutdown(wait=not cancel, cancel_futures=cancel)
            if cancel:  # running jobs would otherwise hold the exit until they finish
                stop_processes(processes)


class SerialBackend:
    """Jobs run in this process, one after another, when submitted (no parallelism).

    A GPU job sees every visible device (one job at a time, so none is shared).
    """

    name = "serial"
    slots = 1

    def __init__(self, gpus: int | Sequence[str] | None = None) -> None:
        self._given = gpus

    @cached_property
    def gpus(self) -> int:
        return len(_gpu_ids(self._given))

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
