"""The interface of a backend."""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any, Protocol


class Backend(Protocol):
    """Runs :func:`convergent.experiments.worker.execute` on jobs somewhere.

    ``slots`` is how many jobs run at once (the runner keeps that many submitted);
    ``submit`` returns a future of the job's record; ``close(cancel=True)`` drops queued work.
    """

    name: str
    slots: int

    def submit(self, job: dict[str, Any], out: str) -> Future[dict[str, Any]]: ...

    def close(self, cancel: bool = False) -> None: ...
