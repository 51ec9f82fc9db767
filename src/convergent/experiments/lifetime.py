"""Workers live no longer than their runner.

- :func:`die_with_parent` (in a worker, at start): Linux's parent-death signal, so a worker
  is killed when its runner dies, even by SIGKILL (the OOM killer, a cluster time limit).
  Torchrun, started by a training job, is tied to its worker the same way
  (:mod:`convergent.train.launch`), and stops its ranks.
- :func:`interrupt_on_sigterm` (in the runner): SIGTERM raises :class:`Terminated` (a
  ``KeyboardInterrupt``), so ``kill`` takes the same orderly path as Ctrl-C: finished jobs
  recorded, running ones stopped and recorded as interrupted.
- :func:`stop_processes`: SIGTERM, a short grace, then SIGKILL, and wait for every one.
- :func:`descendants` and :func:`alive` (Linux ``/proc``): what a drill or a test checks.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

PR_SET_PDEATHSIG = 1


class Terminated(KeyboardInterrupt):
    """The runner received SIGTERM."""


def die_with_parent(parent: int, sig: int = signal.SIGKILL) -> None:
    """Have the OS send ``sig`` to this process when ``parent`` dies (Linux; else a no-op).

    Exits at once if ``parent`` has already died (the gap before the signal was armed).
    """
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, int(sig))
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:
        os._exit(1)


@contextmanager
def interrupt_on_sigterm() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated` (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _raise(signum: int, frame: Any) -> None:
        del signum, frame
        raise Terminated()

    before = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


def stop_processes(processes: Iterable[Any], grace: float = 3.0) -> None:
    """Terminate ``multiprocessing.Process`` objects; kill those alive after ``grace`` s."""
    alive = [p for p in processes if p.is_alive()]
    for process in alive:
        process.terminate()
    deadline = time.monotonic() + grace
    for process in alive:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
            process.join()


def descendants(pid: int) -> set[int]:
    """Every live (not zombie) process below ``pid``, from Linux's ``/proc``."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z":
                parents[int(entry.name)] = int(fields[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {p for p, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
