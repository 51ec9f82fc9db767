"""Atomic file writes: a reader never sees a half-written file, an interruption loses nothing."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` only on success."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; use the user's default
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextmanager
def staged_folder(out: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary sibling folder of ``out`` to write files into; on success each
    file moves into ``out`` (created if missing), on failure the sibling is removed, so a
    failed verb leaves nothing new in ``out``."""
    target = Path(out).resolve()  # "." has a parent to put the sibling in
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial",
                                dir=target.parent))
    try:
        yield tmp
        target.mkdir(parents=True, exist_ok=True)
        for file in sorted(p for p in tmp.rglob("*") if p.is_file()):
            dest = target / file.relative_to(tmp)
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(file, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)



def cache_root() -> Path:
    """The toolkit's cache: ``$CONVERGENT_CACHE``, else ``~/.cache/convergent``."""
    return Path(os.environ.get("CONVERGENT_CACHE") or Path.home() / ".cache" / "convergent")

def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def write_bytes_atomic(path: str | os.PathLike[str], writer: Callable[[BinaryIO], None]) -> Path:
    """Write through ``writer(file)`` into a temporary file, then rename it to ``path``."""
    try:
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            writer(handle)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as err:
        if err.filename is None:  # a full disk names no file: name the one being written
            raise OSError(err.errno, err.strerror or str(err), str(path)) from None
        raise
    return Path(path)


def write_json_atomic(path: str | os.PathLike[str], data: Any) -> Path:
    """Write ``data`` as indented JSON (NaN becomes null) atomically."""
    text = json.dumps(_json_safe(data), indent=2, allow_nan=False)
    return write_bytes_atomic(path, lambda handle: handle.write(text.encode() + b"\n"))


def _json_safe(value: Any) -> Any:
    """Replace non-finite floats by None and numpy scalars/arrays by plain Python values."""
    import math

    import numpy as np

    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return _json_safe(value.tolist())
    if isinstance(value, np.generic):
        return _json_safe(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
