"""Benchmark: the local backend's throughput against one-after-another in one process.

A grid of small, equal jobs (numbers analyses of planted periodic matrices, each a few
hundred milliseconds to seconds of CPU) runs twice through the same runner: once on the
``serial`` backend (this process, one job after another) and once on the ``local`` backend
(a process pool, one worker per core). Printed: both wall-clock times, their ratio (target:
near the number of cores) and the runner's overhead per job, measured with jobs that do
almost nothing (wall-clock per job minus the time the jobs themselves report), for both
backends. The local backend's time includes starting its worker processes; that start-up
is also printed on its own. On a machine shared with other work the ratio is bounded by the
cores actually free, which the script reports as the CPU time this run received.

    .venv/bin/python benchmarks/bench_runner.py [--jobs 16] [--workers N] [--size 400]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_experiments_fixtures import write_spec

from convergent.experiments import load_spec, run_experiment
from convergent.experiments.backends.local import LocalBackend, available_cores


def make_grid(folder: Path, jobs: int, size: int, dim: int, permutations: int,
              moduli: str) -> Path:
    rng = np.random.default_rng(0)
    tables: dict[str, dict] = {"experiment": {"name": "bench"},
                               "numbers": {"numbers": f"0:{size}", "moduli": moduli,
                                           "permutations": permutations}}
    names = []
    for i in range(jobs):
        n = np.arange(size)
        values = rng.normal(0, 1, (size, dim))
        values[:, 0] += 3 * np.cos(2 * np.pi * n / 10)
        np.save(folder / f"m{i}.npy", values.astype(np.float32))
        tables[f"sources.m{i}"] = {"spec": f"matrix:{folder / f'm{i}.npy'}"}
        names.append(f"m{i}")
    tables["analyses.grid"] = {"sources": names}
    return write_spec(folder / "bench.toml", tables)


def warmed_pool(workers: int, folder: Path) -> LocalBackend:
    """A pool whose workers have all started and imported the analysis code."""
    pool = LocalBackend(workers=workers)
    probes = [pool.submit({"key": f"warm-{i}", "kind": "numbers", "label": "warm/up",
                           "config": {}}, str(folder)) for i in range(workers)]
    for probe in probes:
        probe.result()  # fails fast (no config) after importing what real jobs import
    return pool


def timed_run(spec_file: Path, out: Path, backend: object) -> tuple[float, float]:
    """(wall seconds, sum of the jobs' own seconds)."""
    started = time.perf_counter()
    summary = run_experiment(load_spec(spec_file), out, backend=backend, progress=False)
    wall = time.perf_counter() - started
    if not summary.success:
        raise SystemExit(f"benchmark jobs failed: {summary.failed}")
    return wall, summary.jobs_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=16)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--size", type=int, default=400, help="numbers per matrix")
    parser.add_argument("--dim", type=int, default=64)
    args = parser.parse_args()
    workers = args.workers or available_cores()
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # the serial reference: one thread, too
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        real = make_grid(folder, args.jobs, args.size, args.dim, 100, "2:11")
        tiny = folder / "tiny"
        tiny.mkdir()
        empty = make_grid(tiny, args.jobs, 20, 2, 0, "2:3")
        cpu0 = time.process_time()
        children0 = os.times().children_user + os.times().children_system
        serial_wall, serial_jobs = timed_run(real, folder / "serial", "serial")
        started = time.perf_counter()
        pool = warmed_pool(workers, folder / "warm")
        startup = time.perf_counter() - started
        local_wall, local_jobs = timed_run(real, folder / "local", pool)
        local_total = local_wall + startup
        serial_empty, serial_empty_jobs = timed_run(empty, folder / "se", "serial")
        pool = warmed_pool(workers, folder / "warm2")
        local_empty, local_empty_jobs = timed_run(empty, folder / "le", pool)
        children = os.times().children_user + os.times().children_system - children0
        cpu = time.process_time() - cpu0 + children
    n = args.jobs
    print(f"{n} jobs (numbers analyses of {args.size} x {args.dim} matrices), "
          f"{available_cores()} cores, {workers} workers")
    print(f"{'':28}{'wall s':>10}{'jobs s':>10}")
    print(f"{'serial (one process)':28}{serial_wall:>10.2f}{serial_jobs:>10.2f}")
    print(f"{'local pool incl. start-up':28}{local_total:>10.2f}{local_jobs:>10.2f}")
    print(f"{'local pool start-up alone':28}{startup:>10.2f}")
    print(f"throughput ratio serial / local: {serial_wall / local_total:.2f} "
          f"(target near {workers}); without start-up {serial_wall / local_wall:.2f}")
    print(f"overhead per job: serial {1000 * (serial_empty - serial_empty_jobs) / n:.0f} ms, "
          f"local {1000 * (local_empty - local_empty_jobs / workers) / n:.0f} ms "
          f"(jobs that do almost nothing)")
    print(f"CPU time received by this benchmark: {cpu:.1f} s over "
          f"{serial_wall + local_total + serial_empty + local_empty:.1f} s of wall-clock")


if __name__ == "__main__":
    main()
