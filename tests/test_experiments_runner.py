"""The runner: local and serial backends, skip by content hash, failures, kill and resume;
Ctrl-C, SIGTERM and SIGKILL leave no worker behind and lose no job."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_experiments_fixtures import make_corpus, periodic_matrix, tiny_train, write_spec

from convergent.cli import main
from convergent.experiments import load_spec, load_table, make_plan, run_experiment
from convergent.experiments.lifetime import alive, descendants
from convergent.experiments.worker import job_dir
from convergent.locking import folder_lock


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("CONVERGENT_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_corpus(tmp_path_factory.mktemp("corpus") / "text.jsonl")


def matrix_spec(tmp_path: Path) -> Path:
    good = periodic_matrix(tmp_path / "good.npy")
    bad = periodic_matrix(tmp_path / "bad.npy", nan=True)
    return write_spec(tmp_path / "m.toml", {
        "experiment": {"name": "m"},
        "numbers": {"numbers": "0:60", "permutations": 20},
        "sources.good": {"spec": f"matrix:{good}"},
        "sources.bad": {"spec": f"matrix:{bad}"},
        "analyses.a": {"sources": ["good", "bad"]},
    })


def test_serial_run_reports_a_failure_and_keeps_the_rest(tmp_path):
    spec = load_spec(matrix_spec(tmp_path))
    out = tmp_path / "out"
    summary = run_experiment(spec, out, backend="serial", progress=False)
    assert (summary.ok, len(summary.failed), summary.skipped) == (1, 1, 0)
    assert "NaN" in summary.failed[0]["error"] or "finite" in summary.failed[0]["error"]
    table = load_table(out).set_index("label")
    assert table.loc["good", "status"] == "ok" and table.loc["bad", "status"] == "failed"
    assert table.loc["good", "kappa_10"] > 80 and abs(table.loc["good", "kappa_3"]) < 30
    assert json.loads(table.loc["good", "config"])["settings"]["permutations"] == 20
    again = run_experiment(spec, out, backend="serial", progress=False)
    assert (again.skipped, again.ok, len(again.failed)) == (1, 0, 1)  # failed jobs retry


def test_local_pool_trains_analyses_and_skips_finished_work(tmp_path, corpus):
    file = write_spec(tmp_path / "t.toml", {
        "experiment": {"name": "t"},
        "numbers": {"numbers": "0:50", "permutations": 10, "contiguous": True},
        "train.g": {"set": tiny_train(corpus), "grid": {"arch": ["transformer", "word2vec"]}},
        "analyses.a": {"sources": ["g"], "checkpoints": "all"},
    })
    out = tmp_path / "out"
    summary = run_experiment(load_spec(file), out, backend="local", workers=2, progress=False)
    assert summary.success and summary.ok == 4, summary.failed
    table = load_table(out)
    runs = table[table.kind == "train"]
    assert set(runs["train.arch"]) == {"transformer", "word2vec"}
    assert runs["final_loss"].notna().sum() == 1  # word2vec has no loss
    numbers = table[table.kind == "numbers"]
    assert len(numbers) > 2 and numbers["step"].notna().all()  # every checkpoint analysed
    assert numbers["kappa_2"].notna().all()
    pids = {json.loads((job_dir(out, k) / "record.json").read_text())["pid"]
            for k in table["job"].unique()}
    assert os.getpid() not in pids  # the work ran in the pool's processes
    again = run_experiment(load_spec(file), out, backend="local", workers=2, progress=False)
    assert (again.skipped, again.ok) == (4, 0)


def test_failed_training_blocks_its_analysis_only(tmp_path, corpus, capsys):
    file = write_spec(tmp_path / "f.toml", {
        "experiment": {"name": "f"},
        "numbers": {"numbers": "0:60", "permutations": 10},
        "sources.good": {"spec": f"matrix:{periodic_matrix(tmp_path / 'g.npy')}"},
        "train.g": {"set": {**tiny_train(corpus), "corpus": str(tmp_path / "missing.txt")}},
        "analyses.a": {"sources": ["good", "g"]},
    })
    code = main(["run", str(file), "--out", str(tmp_path / "out"), "--backend", "serial",
                 "--no-progress"])
    printed = capsys.readouterr().out
    assert code == 1
    assert "1 ok, 1 failed), 1 blocked" in printed and "missing.txt" in printed
    assert "blocked a/g" in printed


def test_killed_run_resumes_from_its_checkpoints(tmp_path, corpus):
    train = {**tiny_train(corpus, tokens=8 * 16 * 200), "checkpoint_every": 8 * 16 * 20}
    file = write_spec(tmp_path / "k.toml", {
        "experiment": {"name": "k"}, "train.g": {"set": train}})
    out = tmp_path / "out"
    command = [str(Path(sys.executable).parent / "convergent"), "run", str(file), "--out",
               str(out), "--backend", "serial", "--no-progress"]
    env = {**os.environ, "CONVERGENT_CACHE": os.environ["CONVERGENT_CACHE"]}
    process = subprocess.Popen(command, env=env, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    (key,) = make_plan(load_spec(file)).jobs
    checkpoints = job_dir(out, key) / "run" / "checkpoints"
    _wait_for(lambda: len(list(checkpoints.glob("step-*"))) >= 2)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert not (job_dir(out, key) / "record.json").exists()
    kept = {p.name: p.stat().st_mtime_ns for p in checkpoints.glob("step-*")}
    summary = run_experiment(load_spec(file), out, backend="serial", progress=False)
    assert summary.success and summary.ok == 1
    after = {p.name: p.stat().st_mtime_ns for p in checkpoints.glob("step-*")}
    assert all(after[name] == mtime for name, mtime in kept.items())  # not redone
    assert (job_dir(out, key) / "log.txt").read_text().count("--- ") == 2
    record = json.loads((job_dir(out, key) / "record.json").read_text())
    assert record["summary"]["steps"] == 200


def _wait_for(condition, timeout: float = 120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError("timed out waiting for the run")


class FlakyBackend:
    """Runs jobs in this process, but the first attempt of each job 'loses its worker'."""

    name, slots = "flaky", 2

    def __init__(self, always: bool = False) -> None:
        self.calls: dict[str, int] = {}
        self.always = always

    def submit(self, job, out):
        from concurrent.futures import Future
        from concurrent.futures.process import BrokenProcessPool

        from convergent.experiments.worker import execute

        self.calls[job["key"]] = self.calls.get(job["key"], 0) + 1
        future = Future()
        if self.always or self.calls[job["key"]] == 1:
            future.set_exception(BrokenProcessPool("a worker was killed"))
        else:
            future.set_result(execute(job, out))
        return future

    def close(self, cancel=False):
        del cancel


def test_jobs_of_a_dead_worker_are_resubmitted(tmp_path):
    spec = load_spec(matrix_spec(tmp_path))
    flaky = FlakyBackend()
    summary = run_experiment(spec, tmp_path / "out", backend=flaky, progress=False)
    assert summary.ok == 1 and set(flaky.calls.values()) == {2}
    hopeless = FlakyBackend(always=True)
    summary = run_experiment(spec, tmp_path / "out2", backend=hopeless, progress=False)
    assert len(summary.failed) == 2 and set(hopeless.calls.values()) == {3}
    assert "worker process running this job died" in summary.failed[0]["error"]


def long_spec(tmp_path: Path, corpus: str, steps: int = 2000, quick: bool = False) -> Path:
    tables = {"experiment": {"name": "long"},
              "train.g": {"set": {**tiny_train(corpus, tokens=8 * 16 * steps),
                                  "checkpoint_every": 8 * 16 * 20}}}
    if quick:
        tables["numbers"] = {"numbers": "0:60", "permutations": 5}
        tables["sources.m"] = {"spec": f"matrix:{periodic_matrix(tmp_path / 'm.npy')}"}
        tables["analyses.a"] = {"sources": ["m"]}
    return write_spec(tmp_path / "long.toml", tables)


def start_runner(spec: Path, out: Path, workers: int = 1) -> subprocess.Popen:
    command = [str(Path(sys.executable).parent / "convergent"), "run", str(spec), "--out",
               str(out), "--workers", str(workers), "--no-progress"]
    return subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, preexec_fn=_as_in_a_terminal)


def _as_in_a_terminal() -> None:
    """Ctrl-C as a terminal delivers it: a shell without job control (``make test &``, a
    CI script) starts background commands with SIGINT ignored, and Python then keeps it
    ignored, so the runner under test would never see the signal."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def keys(spec: Path) -> dict[str, str]:
    return {job.kind: key for key, job in make_plan(load_spec(spec)).jobs.items()}


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_stops_workers_and_records_every_job(tmp_path, corpus, capsys, sig):
    # far more steps than can finish before the signal (on an idle machine 2000 could)
    spec = long_spec(tmp_path, corpus, steps=200_000, quick=True)
    out = tmp_path / "out"
    runner = start_runner(spec, out, workers=2)
    train = job_dir(out, keys(spec)["train"])
    analysis = job_dir(out, keys(spec)["numbers"])
    try:
        _wait_for(lambda: (analysis / "record.json").is_file()
                 and list((train / "run").glob("checkpoints/step-*")))
        workers = descendants(runner.pid)
        assert workers
        assert main(["run", str(spec), "--out", str(out), "--no-progress"]) == 2
        refusal = capsys.readouterr().err.strip()
        assert "\n" not in refusal and f"convergent run (pid {runner.pid})" in refusal
        runner.send_signal(sig)
        assert runner.wait(timeout=60) == 130
    finally:
        if runner.poll() is None:
            os.killpg(runner.pid, signal.SIGKILL)
    assert "interrupted" in runner.stderr.read()
    _wait_for(lambda: not any(alive(p) for p in workers), timeout=10)
    assert json.loads((analysis / "record.json").read_text())["status"] == "ok"
    stopped = json.loads((train / "record.json").read_text())
    assert stopped["status"] == "interrupted"
    with folder_lock(out, orphan_wait=0):  # free at once: no worker holds the folder
        pass
    import pandas as pd

    table = pd.read_parquet(out / "results.parquet").set_index("kind")
    assert table.loc["numbers", "status"] == "ok" and table.loc["train", "status"] == \
        "interrupted"


@pytest.mark.slow
def test_a_killed_runner_takes_its_workers_and_resumes_exactly(tmp_path, corpus):
    spec = long_spec(tmp_path, corpus, steps=200)
    out = tmp_path / "out"
    runner = start_runner(spec, out)
    run = job_dir(out, keys(spec)["train"]) / "run"
    try:
        _wait_for(lambda: list(run.glob("checkpoints/step-*")))
        workers = descendants(runner.pid)
        os.kill(runner.pid, signal.SIGKILL)  # the runner only, as the OOM killer does
        runner.wait()
        _wait_for(lambda: not any(alive(p) for p in workers), timeout=10)
    finally:
        if runner.poll() is None:
            os.killpg(runner.pid, signal.SIGKILL)
    assert not (run.parent / "record.json").exists()
    resumed = run_experiment(load_spec(spec), out, backend="serial", progress=False)
    assert resumed.success and resumed.ok == 1
    whole = run_experiment(load_spec(spec), tmp_path / "whole", backend="serial",
                           progress=False)
    assert whole.success
    from safetensors.numpy import load_file

    last = sorted(run.glob("checkpoints/step-*"))[-1]
    reference = tmp_path / "whole" / last.relative_to(out)
    for name in ("model.safetensors", "optimizer.safetensors"):
        a, b = load_file(last / name), load_file(reference / name)
        assert a.keys() == b.keys()
        assert all((a[k] == b[k]).all() for k in a), name
