"""Resumable training state: weights and optimizer tensors in safetensors, the rest in JSON.

No pickle: ``state.safetensors`` holds ``model.*`` parameters and ``opt{k}.{param}.{name}``
optimizer tensors; ``state.json`` holds the step, the history so far, the optimizers'
non-tensor state and a fingerprint of the configuration (a state from another configuration
is never resumed). Both are written atomically, the tensors first.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from convergent.io import atomic_path, write_json_atomic

STATE_TENSORS = "state.safetensors"
STATE_JSON = "state.json"


def save_state(
    directory: Path,
    fingerprint: str,
    step: int,
    model: torch.nn.Module,
    optimizers: list[torch.optim.Optimizer],
    history: list[dict[str, Any]],
) -> None:
    from safetensors.torch import save_file

    tensors = {f"model.{k}": v.detach().contiguous() for k, v in model.state_dict().items()}
    extra: list[dict[str, Any]] = []
    for k, opt in enumerate(optimizers):
        sd = opt.state_dict()
        plain: dict[str, dict[str, Any]] = {}
        for pid, entries in sd["state"].items():
            for name, value in entries.items():
                if isinstance(value, torch.Tensor):
                    tensors[f"opt{k}.{pid}.{name}"] = value.detach().contiguous()
                else:
                    plain.setdefault(str(pid), {})[name] = value
        extra.append({"plain": plain, "param_groups": sd["param_groups"]})
    directory.mkdir(parents=True, exist_ok=True)
    with atomic_path(directory / STATE_TENSORS) as tmp:
        save_file(tensors, str(tmp))
    write_json_atomic(
        directory / STATE_JSON,
        {"fingerprint": fingerprint, "step": step, "optimizers": extra, "history": history},
    )


def load_state(
    directory: Path,
    fingerprint: str,
    model: torch.nn.Module,
    optimizers: list[torch.optim.Optimizer],
) -> tuple[int, list[dict[str, Any]]] | None:
    """Restore model and optimizers in place; (step, history), or None if nothing to resume."""
    from safetensors.torch import load_file

    meta_path, tensor_path = directory / STATE_JSON, directory / STATE_TENSORS
    if not (meta_path.is_file() and tensor_path.is_file()):
        return None
    meta = json.loads(meta_path.read_text())
    if meta.get("fingerprint") != fingerprint or len(meta["optimizers"]) != len(optimizers):
        return None
    tensors = load_file(str(tensor_path))
    model.load_state_dict(
        {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    )
    for k, (opt, extra) in enumerate(zip(optimizers, meta["optimizers"], strict=True)):
        state: dict[int, dict[str, Any]] = {}
        for pid, entries in extra["plain"].items():
            state.setdefault(int(pid), {}).update(entries)
        prefix = f"opt{k}."
        for key, value in tensors.items():
            if key.startswith(prefix):
                pid, name = key[len(prefix) :].split(".", 1)
                state.setdefault(int(pid), {})[name] = value
        opt.load_state_dict({"state": state, "param_groups": extra["param_groups"]})
    return int(meta["step"]), list(meta["history"])


def clear_state(directory: Path) -> None:
    for name in (STATE_TENSORS, STATE_JSON):
        (directory / name).unlink(missing_ok=True)
