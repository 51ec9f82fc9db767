"""The training loop: any model with ``loss(tokens, mask)``, any :class:`BatchSource`.

The loop knows nothing about where tokens come from: batch ``i`` is asked of the batch
source, so the data position is the step count and a resumed run sees exactly the batches
it would have seen. Checkpoints fall at every multiple of ``checkpoint_every`` tokens, at
step 0 (the initialisation) and at the end.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from convergent.errors import ConvergentError
from convergent.train.checkpoint import (
    list_checkpoints,
    load_tensors,
    read_state,
    save_checkpoint,
)
from convergent.train.config import TrainConfig
from convergent.train.data import BatchSource
from convergent.train.optim import Optimizers, build_optimizers, lr_factor


@dataclass
class LoopState:
    step: int = 0
    targets_seen: int = 0
    metrics: list[dict[str, Any]] = field(default_factory=list)


def resume(run_dir: Path, model: nn.Module, optimizers: Optimizers) -> LoopState:
    """Load the last checkpoint into ``model``/``optimizers``; a fresh state if none."""
    checkpoints = list_checkpoints(run_dir)
    if not checkpoints:
        return LoopState()
    folder = checkpoints[-1].path
    state = read_state(folder)
    weights = load_tensors(folder / "model.safetensors")
    missing, unexpected = model.load_state_dict(weights, strict=False)
    if missing or unexpected:
        raise ConvergentError(
            f"{folder}: weights do not match the model (missing {missing[:3]}, unexpected "
            f"{unexpected[:3]})"
        )
    extra = load_tensors(folder / "optimizer.safetensors")
    torch.set_rng_state(extra.pop("rng/torch"))
    optimizers.load_state(extra, state["optimizer"])
    return LoopState(int(state["step"]), int(state["targets_seen"]),
                     list(state.get("metrics", [])))


def checkpoint(run_dir: Path, config: TrainConfig, model: nn.Module,
               optimizers: Optimizers, loop: LoopState) -> Path:
    tensors, rest = optimizers.state_tensors()
    state = {"data_position": loop.step, "targets_seen": loop.targets_seen,
             "optimizer": rest, "metrics": loop.metrics}
    return save_checkpoint(run_dir, loop.step, loop.step * config.tokens_per_step,
                           model.state_dict(), tensors, state)


def train_loop(
    model: nn.Module,
    batches: BatchSource,
    config: TrainConfig,
    run_dir: Path,
    on_checkpoint: Callable[[], None] = lambda: None,
    stop_after: int | None = None,
    progress: bool = True,
    is_main: bool = True,
) -> LoopState:
    """Train to ``config.total_steps`` (resuming from ``run_dir``'s last checkpoint).

    ``stop_after`` ends the call after that many steps of this call without a final
    checkpoint, as a kill would (used to test resuming). Under torch.distributed, only the
    ``is_main`` rank writes checkpoints; every rank waits for it (barrier), so all ranks
    resume from the same folder.
    """
    from tqdm.auto import tqdm

    optimizers = build_optimizers(model, config)
    loop = resume(run_dir, model, optimizers)
    every = max(1, config.checkpoint_every)
    per_step = config.tokens_per_step
    fresh = loop.step == 0 and not list_checkpoints(run_dir)
    _barrier()  # every rank has looked at run_dir before the main rank writes to it
    if fresh:
        _checkpoint_once(run_dir, config, model, optimizers, loop, on_checkpoint, is_main)
    total = config.total_steps
    bar = tqdm(total=total, initial=loop.step, disable=not progress, unit="step",
               desc=f"train {config.arch}", dynamic_ncols=True)
    model.train()
    done_here, started, tokens_here = 0, time.perf_counter(), 0
    while loop.step < total:
        if stop_after is not None and done_here >= stop_after:
            break
        optimizers.set_lr(lr_factor(loop.step, config))
        batch = batches.batch(loop.step)
        loss = model.loss(batch.tokens, batch.mask)
        value = float(loss.detach())
        if not torch.isfinite(loss.detach()):
            raise ConvergentError(
                f"training diverged at step {loop.step} (loss {value}); lower --lr")
        optimizers.zero_grad()
        loss.backward()
        if config.grad_clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizers.step()
        loop.step += 1
        loop.targets_seen += batch.n_targets
        done_here += 1
        tokens_here += per_step
        rate = tokens_here / max(1e-9, time.perf_counter() - started)
        loop.metrics.append({"step": loop.step, "tokens": loop.step * per_step,
                             "loss": round(value, 5),
                             "lr": lr_factor(loop.step - 1, config) * config.lr})
        bar.set_postfix(loss=f"{value:.3f}", tok_s=f"{rate:,.0f}")
        bar.update(1)
        crossed = (loop.step * per_step) // every > ((loop.step - 1) * per_step) // every
        if crossed or loop.step == total:
            _checkpoint_once(run_dir, config, model, optimizers, loop, on_checkpoint, is_main)
    bar.close()
    return loop


def _barrier() -> None:
    """Wait for every rank of an initialised process group (no-op otherwise)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()


def _checkpoint_once(run_dir: Path, config: TrainConfig, model: nn.Module,
                     optimizers: Optimizers, loop: LoopState,
                     on_checkpoint: Callable[[], None], is_main: bool) -> None:
    """Checkpoint on the main rank only; the other ranks wait until it is written."""
    if is_main:
        checkpoint(run_dir, config, model, optimizers, loop)
        on_checkpoint()
    _barrier()
