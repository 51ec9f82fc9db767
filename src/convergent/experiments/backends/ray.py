"""The Ray backend: the same jobs on a local Ray cluster or an existing one (``address``).

Each job is one Ray task asking for its CPUs (at least ``threads``, default 1) and its GPUs
(``num_gpus``: one per rank of a neural run on CUDA). Ray places it on a node with that many
free GPUs and sets ``CUDA_VISIBLE_DEVICES`` for it; a GPU task's worker process is not
reused (Ray's ``max_calls=1`` for GPU functions), so CUDA starts fresh in every GPU job. On a
multi-machine cluster the output folder must be on a filesystem every node sees (NFS, a
mounted bucket), and every node needs convergent installed (same version) — or pass a
``runtime_env``.
"""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

from convergent.errors import ConvergentError
from convergent.experiments.worker import execute


def execute_on_gpus(job: dict[str, Any], out: str, threads: int | None = None) -> dict[str, Any]:
    """:func:`execute` as its own Ray function, so GPU tasks get Ray's GPU defaults."""
    return execute(job, out, threads)


class RayBackend:
    """Jobs as Ray tasks. Starts a local cluster unless Ray is running or ``address`` given.

    ``workers`` caps how many CPU jobs are in flight (default: the cluster's CPUs /
    threads); ``gpus`` declares the GPUs of a local cluster this backend starts (default:
    Ray's own detection). :attr:`gpus` is then the most GPUs one node has (a job cannot
    span nodes).
    A cluster this backend started is shut down by :meth:`close`.
    """

    name = "ray"

    def __init__(self, address: str | None = None, workers: int | None = None,
                 threads: int = 1, runtime_env: dict[str, Any] | None = None,
                 gpus: int | None = None) -> None:
        try:
            import ray
        except ModuleNotFoundError:
            raise ConvergentError("--backend ray needs the package 'ray' (pip install "
                                  "'convergent[scale]' or pip install 'ray>=2.9')") from None
        if address and gpus is not None:
            raise ConvergentError("--gpus applies to a local Ray cluster; a running cluster "
                                  "declares its own GPUs")
        self._ray = ray
        self._owned = False
        if not ray.is_initialized():
            options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                       "logging_level": "ERROR"}
            if runtime_env:
                options["runtime_env"] = runtime_env
            try:
                if address:
                    ray.init(address=address, **options)
                else:
                    from convergent.hardware import available_cores

                    ray.init(num_cpus=workers or available_cores(), num_gpus=gpus,
                             **options)
            except ConnectionError as err:
                raise ConvergentError(f"--address {address}: cannot reach a Ray cluster "
                                      f"({err})") from None
            self._owned = True
        elif address:
            raise ConvergentError(f"--address {address}: Ray is already connected in this "
                                  "process; call ray.shutdown() first")
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self.threads = max(1, threads)
        self.slots = workers or max(1, cpus // self.threads)
        nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
        self.gpus = max((int(n.get("GPU", 0)) for n in nodes), default=0)  # per node
        self._node_cpus = max((int(n.get("CPU", 1)) for n in nodes), default=1)
        self._task = ray.remote(max_retries=0)(execute)
        self._gpu_task = ray.remote(num_gpus=1, max_retries=0)(execute_on_gpus)
        self._refs: list[Any] = []

    def ready(self, job: dict[str, Any]) -> bool:
        """Always: Ray queues a task until a node has its resources."""
        del job
        return True

    def submit(self, job: dict[str, Any], out: str) -> Future[dict[str, Any]]:
        gpus = int(job.get("gpus", 0))
        cpus = min(max(self.threads, int(job.get("cpus", 1))), self._node_cpus)
        task = self._gpu_task if gpus else self._task
        ref = task.options(num_cpus=cpus, num_gpus=gpus).remote(job, out, self.threads)
        self._refs.append(ref)
        return ref.future()

    def close(self, cancel: bool = False) -> None:
        if cancel and self._refs:
            _, unfinished = self._ray.wait(self._refs, num_returns=len(self._refs), timeout=0)
            for ref in unfinished:
                self._ray.cancel(ref, force=True)
        self._refs = []
        if self._owned:
            self._ray.shutdown()
            self._owned = False
