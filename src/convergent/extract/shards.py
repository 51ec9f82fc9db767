"""Safetensors shards: rows ``[start, stop)`` of every site in one file per chunk."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from convergent.errors import ConvergentError
from convergent.io import atomic_path


def shard_file(index: int) -> str:
    return f"shards/{index:05d}.safetensors"


def write_shard(folder: Path, index: int, tensors: dict[str, Any]) -> str:
    """Write one shard atomically; returns its path relative to ``folder``."""
    from safetensors.torch import save_file

    name = shard_file(index)
    with atomic_path(folder / name) as tmp:
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp))
    return name


def read_site(folder: Path, shards: list[dict[str, Any]], site: str) -> np.ndarray:
    """Rows of ``site`` from every shard, in order, as float32."""
    from safetensors import safe_open

    parts = []
    for shard in shards:
        path = folder / shard["file"]
        try:
            with safe_open(str(path), framework="pt") as handle:
                parts.append(handle.get_tensor(site).float().numpy())
        except Exception as err:  # missing or truncated file, absent key
            raise ConvergentError(f"{path}: cannot read site {site} ({err})") from None
        if parts[-1].shape[0] != shard["stop"] - shard["start"]:
            raise ConvergentError(f"{path}: {parts[-1].shape[0]} rows, manifest says "
                                  f"{shard['stop'] - shard['start']}")
    if not parts:
        return np.zeros((0, 0), dtype=np.float32)
    return np.concatenate(parts, axis=0)
