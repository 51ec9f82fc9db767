"""Scheduling: jobs' GPU/CPU requests, the local GPU slot pool, refusals and the dry run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_experiments_fixtures import tiny_train, write_spec

from convergent.cli import main
from convergent.errors import ConvergentError
from convergent.experiments import load_spec, make_plan, parse_spec, run_experiment, runner
from convergent.experiments.backends.local import LocalBackend
from convergent.experiments.hashing import content_hash
from convergent.experiments.plan import Job, Plan, for_backend, job_identity
from convergent.experiments.runner import _schedule
from convergent.experiments.worker import job_dir

CUDA = {"engine.device": "cuda"}


def gpu_spec(tmp_path: Path, nproc: int = 2) -> Path:
    """A GPU Transformer group, a word2vec group on 3 workers, a GPU addition group."""
    train = tiny_train(str(tmp_path / "c.jsonl"))
    return write_spec(tmp_path / "g.toml", {
        "experiment": {"name": "g"},
        "train.neural": {"processes": nproc, "set": {**train, **CUDA}},
        "train.w2v": {"set": {**train, "arch": "word2vec", "embedding.workers": 3}},
        "addition.add": {"processes": nproc, "set": {"tokens": 4096, "batch_size": 8,
                                                     "model.d_model": 32, **CUDA},
                         "task": {"digits": 3, "chunk": 3}},
    })


def jobs_by_label(the_plan: Plan) -> dict[str, Job]:
    return {job.label: job for job in the_plan.jobs.values()}


def test_jobs_ask_for_gpus_per_rank_and_cpus_for_word2vec(tmp_path):
    jobs = jobs_by_label(make_plan(load_spec(gpu_spec(tmp_path))))
    assert (jobs["neural/neural"].gpus, jobs["neural/neural"].cpus) == (2, 2)
    assert jobs["neural/neural"].config["train"]["engine"]["nproc"] == 2  # processes = nproc
    assert (jobs["add/add"].gpus, jobs["add/add"].config["train"]["engine"]["nproc"]) == (2, 2)
    assert (jobs["w2v/w2v"].gpus, jobs["w2v/w2v"].cpus) == (0, 3)
    assert Job.from_dict(jobs["neural/neural"].to_dict()) == jobs["neural/neural"]


def test_device_auto_asks_for_a_gpu_only_where_the_backend_has_them(tmp_path):
    data = {"experiment": {"name": "a"},
            "train": {"g": {"set": tiny_train("c.jsonl"), "grid": {"arch": ["lstm", "ppmi"]}}}}
    the_plan = make_plan(parse_spec(data))
    assert [(j.gpus, j.cpus) for j in the_plan.jobs.values()] == [(0, 1), (0, 1)]
    on_gpus = for_backend(the_plan, cuda=True)
    assert [(j.gpus, j.cpus) for j in on_gpus.jobs.values()] == [(1, 1), (0, 1)]
    assert list(on_gpus.jobs) == list(the_plan.jobs)  # requests are not part of the key


def test_keys_of_default_engine_runs_are_unchanged_and_engine_changes_count():
    group = {"set": tiny_train("c.jsonl")}
    data = {"experiment": {"name": "k"}, "train": {"g": group}}
    (job,) = make_plan(parse_spec(data)).jobs.values()
    before = {k: v for k, v in job.config["train"].items() if k not in ("engine", "data")}
    assert job.key == content_hash({"kind": "train", "train": before})  # as before engines
    group["processes"] = 2
    (ddp,) = make_plan(parse_spec(data)).jobs.values()
    assert ddp.key == content_hash({"kind": "train", "train": before, "processes": 2})
    group["set"] = {**tiny_train("c.jsonl"), "engine.precision": "bf16"}
    (bf16,) = make_plan(parse_spec(data)).jobs.values()
    assert "engine" in job_identity("train", bf16.config)["train"] and bf16.key != ddp.key


def test_processes_and_engine_nproc_must_agree():
    group = {"processes": 2, "set": {**tiny_train("c.jsonl"), "engine.nproc": 4}}
    data = {"experiment": {"name": "k"}, "train": {"g": group}}
    with pytest.raises(ConvergentError, match=r"processes 2 and engine\.nproc 4 disagree"):
        make_plan(parse_spec(data))


def probe(key: str, gpus: int) -> Job:
    """A job of a kind no runner has: it fails at once, but its record shows its devices."""
    return Job(key, "probe", f"probe/{key}", {}, gpus=gpus)


def test_local_pool_gives_each_gpu_job_its_own_devices_and_waits_for_free_ones(
        tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "STORE_EVERY", float("inf"))  # no results table here
    backend = LocalBackend(workers=1, threads=1, gpus=["4", "7"])
    assert backend.gpus == 2
    jobs = {j.key: j for j in [probe("a", 1), probe("b", 2), probe("c", 1), probe("cpu", 0)]}
    seen: list[list[str]] = []
    submit = backend.submit

    def checked(job, out):  # devices of unfinished jobs never overlap
        future = submit(job, out)
        busy = [d for f, ids in backend._held.items() if not f.done() for d in ids]
        assert len(busy) == len(set(busy)) <= 2
        seen.append(busy)
        return future

    backend.submit = checked
    try:
        _schedule(Plan("p", "", jobs, {}, {}), tmp_path, backend, progress=False)
    finally:
        backend.close()
    records = {k: json.loads((job_dir(tmp_path, k) / "record.json").read_text())
               for k in jobs}
    for key, job in jobs.items():
        devices = records[key]["devices"]
        assert records[key]["error"] == "KeyError: 'probe'"
        if job.gpus:
            assert sorted(devices.split(",")) == (["4", "7"] if job.gpus == 2 else [devices])
            assert devices in ("4", "7", "4,7")
        else:
            assert devices == ""  # CPU jobs see no GPU
    assert len({records[k]["pid"] for k in "abc"}) == 3  # a fresh process per GPU job
    assert len(seen) == 4


def test_gpu_slots_come_from_cuda_visible_devices(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    assert LocalBackend(workers=1).gpus == 2
    assert LocalBackend(workers=1, gpus=1)._devices == ["3"]  # the first N visible
    with pytest.raises(ConvergentError, match="--gpus 4: only 2 visible"):
        LocalBackend(workers=1, gpus=4).ready({"gpus": 1})
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert LocalBackend(workers=1).gpus == 0


def test_a_job_asking_for_more_gpus_than_the_machine_has_is_refused(tmp_path, capsys,
                                                                     monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    spec = gpu_spec(tmp_path, nproc=4)
    out = tmp_path / "out"
    code = main(["run", str(spec), "--out", str(out), "--gpus", "2", "--no-progress"])
    error = capsys.readouterr().err
    assert code == 2 and "asks for 4 GPU(s)" in error and "has 2" in error
    assert not out.exists()  # nothing written
    with pytest.raises(ConvergentError, match="serial backend has none"):
        run_experiment(load_spec(spec), out, backend="serial", gpus=0)
    assert not out.exists()


def test_dry_run_of_a_gpu_spec_prints_devices_and_writes_nothing(tmp_path, capsys):
    spec = gpu_spec(tmp_path)
    before = sorted(tmp_path.iterdir())
    assert main(["run", str(spec), "--dry-run", "--gpus", "8"]) == 0
    printed = capsys.readouterr().out
    lines = {line.split()[1]: line for line in printed.splitlines()[2:-1]}
    assert "2 x GPU" in lines["neural/neural"] and "768" in lines["neural/neural"]
    assert "3 CPU" in lines["w2v/w2v"] and "2 x GPU" in lines["add/add"]
    assert printed.splitlines()[-1].startswith("total: 2 GPU job(s) (4 GPUs asked for), 1 CPU")
    assert "GPU-hours" in printed
    assert sorted(tmp_path.iterdir()) == before
    assert main(["run", str(spec), "--dry-run", "--gpus", "1"]) == 2
    assert "asks for 2 GPU(s)" in capsys.readouterr().err


def test_dry_run_of_the_quick_preset(capsys):
    assert main(["reproduce", "--preset", "quick", "--dry-run", "--gpus", "0"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("plan quick: 31 jobs, placed for no visible GPU(s)")
    rows = {line.split()[1]: line.split() for line in printed[2:-1]}
    assert rows["muon/transformer"][:5] == ["train", "muon/transformer", "1", "CPU", "400.0k"]
    assert rows["dynamics/transformer"][-3:] == ["-", "-", "-"]
    assert printed[-1] == "total: 0 GPU job(s) (0 GPUs asked for), 31 CPU job(s)"
    assert main(["reproduce", "--preset", "quick", "--dry-run", "--gpus", "8"]) == 0
    rows = {line.split()[1]: line for line in capsys.readouterr().out.splitlines()[2:-1]}
    assert "1 x GPU" in rows["muon/transformer"] and "1 CPU" in rows["classical/ppmi"]
