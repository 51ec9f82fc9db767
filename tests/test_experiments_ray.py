"""The Ray backend on a local cluster of two CPUs and eight (declared) GPUs: same spec, same
results, failures reported; GPU jobs get num_gpus and their own CUDA_VISIBLE_DEVICES."""

from __future__ import annotations

import json
import os

import pytest
from test_experiments_fixtures import periodic_matrix, write_spec

from convergent.experiments import load_spec, load_table, run_experiment
from convergent.experiments.backends.ray import RayBackend
from convergent.experiments.plan import Job
from convergent.experiments.worker import job_dir

ray = pytest.importorskip("ray", reason="the Ray backend needs pip install 'ray>=2.9'")


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, num_gpus=8, include_dashboard=False, log_to_driver=False,
             logging_level="ERROR")
    yield
    ray.shutdown()


def test_ray_runs_the_spec_like_the_serial_backend(tmp_path, cluster):
    file = write_spec(tmp_path / "r.toml", {
        "experiment": {"name": "r"},
        "numbers": {"numbers": "0:60", "permutations": 10},
        "sources.a": {"spec": f"matrix:{periodic_matrix(tmp_path / 'a.npy')}"},
        "sources.b": {"spec": f"matrix:{periodic_matrix(tmp_path / 'b.npy', seed=1)}"},
        "sources.bad": {"spec": f"matrix:{periodic_matrix(tmp_path / 'c.npy', nan=True)}"},
        "analyses.x": {"sources": ["a", "b", "bad"]},
    })
    backend = RayBackend()
    assert backend.slots == 2
    summary = run_experiment(load_spec(file), tmp_path / "ray", backend=backend,
                             progress=False)
    assert (summary.ok, len(summary.failed)) == (2, 1) and summary.backend == "ray"
    assert "NaN" in summary.failed[0]["error"]
    assert ray.is_initialized()  # a cluster the backend did not start is left running
    serial = run_experiment(load_spec(file), tmp_path / "serial", backend="serial",
                            progress=False)
    assert serial.ok == 2
    on_ray = load_table(tmp_path / "ray").set_index("label")
    here = load_table(tmp_path / "serial").set_index("label")
    for label in ("a", "b"):
        assert on_ray.loc[label, "kappa_10"] == pytest.approx(here.loc[label, "kappa_10"])
        assert on_ray.loc[label, "job"] == here.loc[label, "job"]
        record = json.loads((job_dir(tmp_path / "ray", on_ray.loc[label, "job"])
                             / "record.json").read_text())
        assert record["pid"] != os.getpid()  # ran in a Ray worker
    again = run_experiment(load_spec(file), tmp_path / "ray", backend=RayBackend(),
                           progress=False)
    assert again.skipped == 2


def test_gpu_jobs_ask_ray_for_gpus_and_each_sees_its_own(tmp_path, cluster):
    backend = RayBackend()
    assert backend.gpus == 8
    jobs = [Job("two", "probe", "p/two", {}, gpus=2), Job("four", "probe", "p/four", {},
                                                           gpus=4, cpus=4),
            Job("cpu", "probe", "p/cpu", {})]
    records = [backend.submit(job.to_dict(), str(tmp_path)).result() for job in jobs]
    backend.close()
    two, four, cpu = ([d for d in (r["devices"] or "").split(",") if d] for r in records)
    assert len(two) == 2 and len(four) == 4 and not cpu  # Ray set CUDA_VISIBLE_DEVICES
    assert set(two + four) <= {str(i) for i in range(8)}
    assert all(r["error"] == "KeyError: 'probe'" for r in records)  # ran (no such kind)
