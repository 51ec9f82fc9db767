"""Execution backends: where jobs run. Each returns ``concurrent.futures.Future`` objects.

``local`` (a process pool sized to the cores), ``serial`` (this process, one job after
another; for debugging and as the benchmark's reference) and ``ray`` (a local Ray cluster
or an existing one at ``address``).
"""

from __future__ import annotations

from typing import Any

from convergent.errors import ConvergentError
from convergent.experiments.backends.base import Backend

BACKENDS = ("local", "serial", "ray")


def make_backend(name: str, **options: Any) -> Backend:
    """The backend ``name`` with its options (``workers``, ``gpus``; ``address`` for ray)."""
    options = {k: v for k, v in options.items() if v is not None}
    if name in ("local", "serial"):
        if "address" in options:
            raise ConvergentError(f"--address applies only to --backend ray, not {name}")
        from convergent.experiments.backends.local import LocalBackend, SerialBackend

        if name == "serial":
            return SerialBackend(gpus=options.get("gpus"))
        return LocalBackend(**options)
    if name == "ray":
        from convergent.experiments.backends.ray import RayBackend

        return RayBackend(**options)
    raise ConvergentError(f"backend {name!r}: choose one of {', '.join(BACKENDS)}")


__all__ = ["BACKENDS", "Backend", "make_backend"]
