"""The interface of a backend."""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any, Protocol


class Backend(Protocol):
    """Runs :func:`convergent.experiments.worker.execute` on jobs somewhere.

    ``slots`` is how many CPU jobs run at once (the runner keeps twice that many
    submitted); ``gpus`` how many GPUs one job may ask for at most; ``ready(job)`` whether
    a GPU job can start now (the runner waits otherwise); ``submit`` returns a future of
    the job's record; ``close(cancel=True)`` drops queued work.
    """

    name: str
    slots: int
    gpus: int

    def ready(self, job: dict[str, Any]) -> bool: ...

    def submit(self, job: dict[str, Any], out: str) -> Future[dict[str, Any]]: ...

    def close(self, cancel: bool = False) -> None: ...
