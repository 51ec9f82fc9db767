"""The Ray backend: the same jobs on a local Ray cluster or an existing one (``address``).

Each job is one Ray task asking for ``threads`` CPUs (default 1). On a multi-machine
cluster the output folder must be on a filesystem every node sees (NFS, a mounted bucket),
and every node needs convergent installed (same version) — or pass a ``runtime_env``.
"""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

from convergent.errors import ConvergentError
from convergent.experiments.worker import execute


class RayBackend:
    """Jobs as Ray tasks. Starts a local cluster unless Ray is running or ``address`` given.

    ``workers`` caps how many jobs are in flight (default: the cluster's CPUs / threads).
    A cluster this backend started is shut down by :meth:`close`.
    """

    name = "ray"

    def __init__(self, address: str | None = None, workers: int | None = None,
                 threads: int = 1, runtime_env: dict[str, Any] | None = None) -> None:
        try:
            import ray
        except ModuleNotFoundError:
            raise ConvergentError("--backend ray needs the package 'ray' (pip install "
                                  "'convergent[scale]' or pip install 'ray>=2.9')") from None
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
                    from convergent.experiments.backends.local import available_cores

                    ray.init(num_cpus=workers or available_cores(), **options)
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
        self._task = ray.remote(execute).options(num_cpus=self.threads, max_retries=0)
        self._refs: list[Any] = []

    def submit(self, job: dict[str, Any], out: str) -> Future[dict[str, Any]]:
        ref = self._task.remote(job, out, self.threads)
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
