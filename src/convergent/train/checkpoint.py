"""Checkpoints: ``checkpoints/step-XXXXXXXX/`` with ``model.safetensors`` (weights),
``optimizer.safetensors`` (optimizer tensors and the torch RNG state) and ``state.json``
(step, tokens, data position, the optimizer's non-tensor state, sha256 of both files).

A checkpoint is written into a hidden temporary folder and renamed into place, so a folder
named ``step-*`` is always complete; its hashes catch later corruption.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from convergent.errors import ConvergentError
from convergent.io import write_json_atomic

FORMAT = 1


@dataclass(frozen=True)
class CheckpointInfo:
    step: int
    tokens: int
    path: Path


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def checkpoint_dir(run_dir: Path, step: int) -> Path:
    return run_dir / "checkpoints" / f"step-{step:08d}"


def save_checkpoint(
    run_dir: Path,
    step: int,
    tokens: int,
    weights: dict[str, torch.Tensor],
    optimizer_tensors: dict[str, torch.Tensor],
    state: dict[str, Any],
) -> Path:
    """Write one checkpoint atomically; returns its folder."""
    from safetensors.torch import save_file

    final = checkpoint_dir(run_dir, step)
    tmp = final.parent / f".tmp-{final.name}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    save_file({k: v.detach().contiguous() for k, v in weights.items()},
              str(tmp / "model.safetensors"))
    extra = dict(optimizer_tensors)
    extra["rng/torch"] = torch.get_rng_state()
    save_file(extra, str(tmp / "optimizer.safetensors"))
    record = {"format": FORMAT, "step": step, "tokens": tokens, **state,
              "sha256": {name: _sha(tmp / name)
                         for name in ("model.safetensors", "optimizer.safetensors")}}
    write_json_atomic(tmp / "state.json", record)
    for name in ("model.safetensors", "optimizer.safetensors"):
        with open(tmp / name, "rb") as handle:
            os.fsync(handle.fileno())
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    return final


def list_checkpoints(run_dir: Path) -> list[CheckpointInfo]:
    """Complete checkpoints of a run, by step."""
    found = []
    for folder in sorted((run_dir / "checkpoints").glob("step-*")):
        state = folder / "state.json"
        if not state.is_file():
            continue
        try:
            data = json.loads(state.read_text())
            found.append(CheckpointInfo(int(data["step"]), int(data["tokens"]), folder))
        except (json.JSONDecodeError, KeyError, ValueError, TypeError):
            raise ConvergentError(f"{state}: corrupt checkpoint state (not valid JSON)") from None
    return sorted(found, key=lambda c: c.step)


def read_state(folder: Path, verify: bool = True) -> dict[str, Any]:
    """The checkpoint's ``state.json``; with ``verify`` the file hashes are checked."""
    try:
        state = json.loads((folder / "state.json").read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ConvergentError(f"{folder}: corrupt or missing checkpoint state ({err})") from None
    if verify:
        for name, expected in state.get("sha256", {}).items():
            file = folder / name
            if not file.is_file() or _sha(file) != expected:
                raise ConvergentError(
                    f"{file}: checkpoint file is missing or corrupt (sha256 mismatch); delete "
                    f"{folder} to resume from the previous checkpoint"
                )
    return state


def load_tensors(file: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    try:
        return load_file(str(file))
    except Exception as err:
        raise ConvergentError(f"{file}: cannot read the checkpoint tensors ({err})") from None
