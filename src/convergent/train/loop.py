"""The training loop: any model with ``loss(tokens, mask, segments)``, any BatchSource, any engine.

The loop knows nothing about where tokens come from: batch ``i`` is asked of the batch
source, so the data position is the step count and a resumed run sees exactly the batches
it would have seen. Where it runs is its :class:`~convergent.train.engine.Engine`'s
business: device, bf16 autocast, this rank's micro-batches, DDP or FSDP2. Checkpoints fall
at every multiple of ``checkpoint_every`` tokens, at step 0 (the initialisation) and at the
end; only the main rank writes them (under FSDP2 every rank first gathers its shards) and
every rank resumes from the same folder. Resume is bit-exact on CPU; on GPUs kernels are
not bit-deterministic, so a resumed run matches an uninterrupted one to rounding only.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from convergent.errors import ConvergentError
from convergent.train.checkpoint import (
    CheckpointInfo,
    list_checkpoints,
    load_tensors,
    read_state,
    save_checkpoint,
)
from convergent.train.config import TrainConfig
from convergent.train.data import BatchSource
from convergent.train.engine import (
    Engine,
    Trainable,
    accumulate,
    full_tensors,
    shard_like_parameters,
    wrap,
)
from convergent.train.optim import Optimizers, build_optimizers, lr_factor
from convergent.train.throughput import Throughput


@dataclass
class LoopState:
    step: int = 0
    targets_seen: int = 0
    metrics: list[dict[str, Any]] = field(default_factory=list)


def load_weights(folder: Path, model: nn.Module) -> None:
    """Load a checkpoint's weights into the (not yet wrapped) ``model``."""
    weights = load_tensors(folder / "model.safetensors")
    missing, unexpected = model.load_state_dict(weights, strict=False)
    if missing or unexpected:
        raise ConvergentError(
            f"{folder}: weights do not match the model (missing {missing[:3]}, unexpected "
            f"{unexpected[:3]})"
        )


def load_training_state(folder: Path, optimizers: Optimizers, engine: Engine) -> LoopState:
    """The loop state, optimizer state and RNG of checkpoint ``folder``."""
    state = read_state(folder)
    extra = load_tensors(folder / "optimizer.safetensors")
    torch.set_rng_state(extra.pop("rng/torch"))
    optimizers.load_state(extra, state["optimizer"])
    if engine.fsdp:
        for _, optimizer in optimizers:
            shard_like_parameters(optimizer)
    return LoopState(int(state["step"]), int(state["targets_seen"]),
                     list(state.get("metrics", [])))


def checkpoint(run_dir: Path, config: TrainConfig, model: nn.Module, optimizers: Optimizers,
               loop: LoopState, engine: Engine) -> Path | None:
    """Write a checkpoint from the main rank (every rank calls: FSDP2 gathers shards)."""
    tensors, rest = optimizers.state_tensors()
    weights, tensors = full_tensors(model.state_dict()), full_tensors(tensors)
    folder = None
    if engine.is_main:
        state = {"data_position": loop.step, "targets_seen": loop.targets_seen,
                 "optimizer": rest, "metrics": loop.metrics}
        folder = save_checkpoint(run_dir, loop.step, loop.step * config.tokens_per_step,
                                 weights, tensors, state)
    return folder


def prepare(model: nn.Module, batches: BatchSource, config: TrainConfig, run_dir: Path,
            engine: Engine, compile: bool = False
            ) -> tuple[Trainable, Optimizers, LoopState, list[CheckpointInfo]]:
    """Resume weights, move to the device, compile, wrap, and build the optimizers.

    The order matters: weights load into the plain model, DDP broadcasts and FSDP2 shards
    what was loaded, and optimizer state is loaded for the wrapped (maybe sharded) params.
    """
    existing = list_checkpoints(run_dir)
    if existing:
        load_weights(existing[-1].path, model)
    model.to(engine.device)
    if compile:
        from convergent.train.compiled import compile_for_training

        sample = engine.to_device(engine.local_parts(batches.batch(0))[0])
        with engine.autocast():
            compile_for_training(model, sample)
    trainable = wrap(model, engine)
    optimizers = build_optimizers(model, config)
    loop = load_training_state(existing[-1].path, optimizers, engine) if existing \
        else LoopState()
    return trainable, optimizers, loop, existing


def train_loop(
    model: nn.Module,
    batches: BatchSource,
    config: TrainConfig,
    run_dir: Path,
    engine: Engine | None = None,
    on_checkpoint: Callable[[], None] = lambda: None,
    stop_after: int | None = None,
    progress: bool = True,
    compile: bool = False,
) -> LoopState:
    """Train to ``config.total_steps`` (resuming from ``run_dir``'s last checkpoint).

    ``engine`` defaults to one CPU process in fp32. ``stop_after`` ends the call after
    that many steps of this call without a final checkpoint, as a kill would (used to test
    resuming). ``on_checkpoint`` runs on the main rank after each checkpoint.
    """
    from tqdm.auto import tqdm

    engine = engine or Engine(torch.device("cpu"), "fp32")
    trainable, optimizers, loop, existing = prepare(model, batches, config, run_dir,
                                                    engine, compile)
    engine.barrier()  # every rank has read run_dir before the main rank writes to it
    if not existing:
        _checkpoint_and_wait(run_dir, config, model, optimizers, loop, engine, on_checkpoint)
    every = max(1, config.checkpoint_every)
    per_step, total = config.tokens_per_step, config.total_steps
    bar = tqdm(total=total, initial=loop.step, disable=not (progress and engine.is_main),
               unit="step", desc=f"train {config.arch}", dynamic_ncols=True)
    meter = Throughput(config, engine, model)
    model.train()
    done_here = 0
    while loop.step < total:
        if stop_after is not None and done_here >= stop_after:
            break
        optimizers.set_lr(lr_factor(loop.step, config))
        batch = batches.batch(loop.step)
        optimizers.zero_grad()
        value = accumulate(trainable, engine, batch)
        if not math.isfinite(value):
            raise ConvergentError(
                f"training diverged at step {loop.step} (loss {value}); lower --lr")
        if config.grad_clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizers.step()
        loop.step += 1
        loop.targets_seen += batch.n_targets
        done_here += 1
        rates = meter.tick(per_step)
        loop.metrics.append({"step": loop.step, "tokens": loop.step * per_step,
                             "loss": round(value, 5),
                             "lr": lr_factor(loop.step - 1, config) * config.lr, **rates})
        bar.set_postfix(loss=f"{value:.3f}", **meter.postfix(rates))
        bar.update(1)
        crossed = (loop.step * per_step) // every > ((loop.step - 1) * per_step) // every
        if crossed or loop.step == total:
            _checkpoint_and_wait(run_dir, config, model, optimizers, loop, engine,
                                 on_checkpoint)
    bar.close()
    return loop


def _checkpoint_and_wait(run_dir: Path, config: TrainConfig, model: nn.Module,
                         optimizers: Optimizers, loop: LoopState, engine: Engine,
                         on_checkpoint: Callable[[], None]) -> None:
    """Checkpoint on the main rank; the other ranks wait until it is written."""
    checkpoint(run_dir, config, model, optimizers, loop, engine)
    if engine.is_main:
        on_checkpoint()
    engine.barrier()
