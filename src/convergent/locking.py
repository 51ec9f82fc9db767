"""One writer per output folder: an advisory lock that every verb can take.

::

    from convergent.locking import folder_lock

    with folder_lock(out, what="convergent numbers"):
        ...  # write into out

A second writer is refused in one line (:class:`~convergent.errors.ConvergentError`, so the
CLI exits 2) naming the process that holds the folder. The lock is ``flock`` on
``OUT/.lock``: the OS releases it when its holder exits or is killed, so a crash never
leaves a stale lock. Worker processes that write into the folder for the holder take
:func:`worker_lock` (shared, on ``OUT/.lock.workers``) for as long as they run; a new
holder waits a few seconds for the workers of a killed one to die (they are tied to their
parent) and is refused if they are still running, so no writer starts beside orphans.
The lock files stay in the folder (removing a lock file races with its next user), except
that a folder the lock created is removed again if nothing else was written into it.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from convergent.errors import ConvergentError

LOCK = ".lock"
WORKERS = ".lock.workers"
ORPHAN_WAIT = 10.0  # seconds a new holder waits for the workers of a killed one to exit


@contextmanager
def folder_lock(out: str | Path, what: str = "convergent",
                orphan_wait: float = ORPHAN_WAIT) -> Iterator[Path]:
    """Hold ``out`` (created if missing) for this process; refuse if another holds it.

    ``what`` names this writer in the refusal another process gets. Yields ``out``.
    """
    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        raise ConvergentError(f"{folder}: not a folder (--out must be a folder)")
    created = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle = open(folder / LOCK, "a+")  # noqa: SIM115 (held for the whole block)
    except OSError as err:
        raise ConvergentError(f"{folder}: cannot write there ({err.strerror})") from None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConvergentError(f"{folder}: {_holder(handle)} is writing to this folder; "
                                  "wait for it to finish or choose another --out") from None
        try:
            _wait_for_workers(folder, orphan_wait)
            _describe(handle, what)
            yield folder
        finally:
            if created:
                _remove_if_unused(folder)
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def worker_lock(out: str | Path) -> Iterator[None]:
    """Mark this process as a worker of ``out``'s holder while the block runs (shared)."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / WORKERS, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _wait_for_workers(folder: Path, seconds: float) -> None:
    """Wait until no worker of an earlier holder runs (they die with it); refuse otherwise."""
    with open(folder / WORKERS, "a") as handle:
        deadline = time.monotonic() + seconds
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise ConvergentError(
                        f"{folder}: worker processes of an earlier run are still writing "
                        f"here ({seconds:.0f} s after it stopped); stop them first") from None
                time.sleep(0.1)
                continue
            fcntl.flock(handle, fcntl.LOCK_UN)
            return


def _remove_if_unused(folder: Path) -> None:
    """Remove a folder this lock created if nothing but the lock files is in it."""
    try:
        if {p.name for p in folder.iterdir()} <= {LOCK, WORKERS}:
            for name in (LOCK, WORKERS):
                (folder / name).unlink(missing_ok=True)
            folder.rmdir()
    except OSError:
        pass


def _describe(handle: IO[str], what: str) -> None:
    """Write who holds the lock into the lock file (read by a refused second writer)."""
    handle.seek(0)
    handle.truncate()
    handle.write(f"{what} (pid {os.getpid()})\n")
    handle.flush()


def _holder(handle: IO[str]) -> str:
    handle.seek(0)
    text = handle.read().strip().splitlines()
    return text[0] if text else "another process"
