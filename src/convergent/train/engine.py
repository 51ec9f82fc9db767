"""Where and how a run executes: device, precision, rank, micro-batches.

One code path serves a one-thread CPU run and a torchrun job on many GPUs, as nanoGPT's
and torchtitan's trainers do: the training loop asks its :class:`Engine` for this rank's
micro-batches on the device, runs forward under the engine's autocast, and lets the engine
sum gradients across micro-batches and ranks. Distribution is PyTorch's own: the process
group comes from torchrun's environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``; NCCL on
GPUs, gloo on CPUs), gradients are averaged by ``DistributedDataParallel`` or sharded by
FSDP2's ``fully_shard``; nothing here is a collective of our own beyond summing two
scalars (target counts and the logged loss) with ``all_reduce``.

Exactness: every micro-batch's mean loss is weighted by its share of the targets of the
whole global batch, so one step with accumulation over any number of micro-batches and
ranks equals one step on the whole batch (up to float summation order). On one CPU
process without accumulation the weight is exactly 1 and runs are bit-identical to the
single-process loop.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from convergent.errors import ConvergentError
from convergent.hardware import available_cores
from convergent.train.config import EngineConfig
from convergent.train.data import Batch

GROUP_TIMEOUT = datetime.timedelta(minutes=60)


def torchrun_world() -> tuple[int, int, int] | None:
    """(rank, world size, local rank) when this process is one rank of several."""
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world <= 1:
        return None
    return int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0"))


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is an error."""
    if name == "cpu":
        return torch.device("cpu")
    available = torch.cuda.is_available()
    if name == "cuda" and not available:
        raise ConvergentError("--device cuda: no CUDA GPU is available here; use --device cpu "
                              "(or auto)")
    return torch.device("cuda") if available else torch.device("cpu")


def resolve_precision(name: str, device: torch.device) -> str:
    """``auto`` -> bf16 autocast on CUDA, fp32 on CPU."""
    if name != "auto":
        return name
    return "bf16" if device.type == "cuda" else "fp32"


def check_placement(engine: EngineConfig) -> torch.device:
    """The run's device type, after checking that ``nproc`` ranks fit this node.

    Called before anything is written, so a bad ``--device``/``--nproc`` leaves no trace.
    """
    device = resolve_device(engine.device)
    if device.type == "cuda":
        count, what = torch.cuda.device_count(), "CUDA GPUs"
    else:
        count, what = available_cores(), "CPU cores"
    if engine.nproc > count:
        raise ConvergentError(f"--nproc {engine.nproc}: this machine has {count} {what}")
    return device


@dataclass(frozen=True)
class Engine:
    """The resolved execution settings of this process (one rank)."""

    device: torch.device
    precision: str
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    micro_batch: int = 0
    fsdp: bool = False
    activation_checkpointing: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    def describe(self) -> str:
        ranks = f", {self.world} ranks ({'FSDP2' if self.fsdp else 'DDP'})" \
            if self.distributed else ""
        micro = f", micro-batch {self.micro_batch}" if self.micro_batch else ""
        ckpt = ", activation checkpointing" if self.activation_checkpointing else ""
        return f"{self.device.type} {self.precision}{ranks}{micro}{ckpt}"

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """bf16 autocast for forward passes when the precision is bf16."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16,
                              enabled=self.precision == "bf16")

    def local_parts(self, batch: Batch) -> list[Batch]:
        """This rank's rows of the global ``batch``, cut into micro-batches (still on CPU)."""
        rows = batch.tokens.shape[0] // self.world
        start = self.rank * rows
        mine = _rows(batch, slice(start, start + rows))
        size = self.micro_batch or rows
        return [_rows(mine, slice(i, i + size)) for i in range(0, rows, size)]

    def to_device(self, batch: Batch) -> Batch:
        """``batch`` on the engine's device (pinned, asynchronous copies on CUDA)."""
        if self.device.type == "cpu":
            return batch

        def move(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.pin_memory().to(self.device, non_blocking=True)

        return Batch(move(batch.tokens), move(batch.mask), move(batch.segments))

    def all_sum(self, value: torch.Tensor) -> torch.Tensor:
        """``value`` summed over the ranks (itself on one process)."""
        if self.distributed:
            value = value.to(self.device)
            torch.distributed.all_reduce(value)
        return value

    def barrier(self) -> None:
        if self.distributed:
            torch.distributed.barrier()


def _rows(batch: Batch, rows: slice) -> Batch:
    def cut(t: torch.Tensor | None) -> torch.Tensor | None:
        return None if t is None else t[rows]

    return Batch(batch.tokens[rows], cut(batch.mask), cut(batch.segments))


def start_engine(config: EngineConfig, batch_size: int) -> Engine:
    """Resolve ``config`` for this process, joining torchrun's process group if there is one.

    Checks that the global ``batch_size`` splits into the ranks and the micro-batches.
    Turns on TF32 matmuls on CUDA (the fp32 parts of bf16 autocast use them).
    """
    device = resolve_device(config.device)
    rank, world, local = torchrun_world() or (0, 1, 0)
    if batch_size % world:
        raise ConvergentError(f"batch_size {batch_size} is not divisible by the {world} "
                              "processes")
    rows = batch_size // world
    micro = config.micro_batch if 0 < config.micro_batch < rows else 0
    if micro and rows % micro:
        raise ConvergentError(f"--micro-batch {config.micro_batch} does not divide the "
                              f"{rows} rows of each rank's batch (batch_size {batch_size} / "
                              f"{world} processes)")
    if device.type == "cuda":
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    if world > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        torch.distributed.init_process_group(backend, timeout=GROUP_TIMEOUT)
    return Engine(device, resolve_precision(config.precision, device), rank, world, local,
                  micro, config.fsdp and world > 1, config.activation_checkpointing)


def stop_engine(engine: Engine) -> None:
    """Leave the process group (a no-op on one process)."""
    if engine.distributed and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


class LossModule(nn.Module):
    """``model.loss`` as a ``forward``, so DDP's and FSDP2's hooks run around it."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor | None = None,
                segments: torch.Tensor | None = None) -> torch.Tensor:
        if segments is None:
            return self.model.loss(tokens, mask)
        return self.model.loss(tokens, mask, segments)


@dataclass
class Trainable:
    """The model as the loop drives it: its loss and the gradient-sync switch."""

    model: nn.Module
    loss_module: nn.Module
    no_sync: Callable[[], contextlib.AbstractContextManager[Any]]

    def loss(self, batch: Batch) -> torch.Tensor:
        return self.loss_module(batch.tokens, batch.mask, batch.segments)


def wrap(model: nn.Module, engine: Engine) -> Trainable:
    """``model`` on its device, under DDP or FSDP2 when there are several ranks."""
    if engine.activation_checkpointing:
        if not hasattr(model, "activation_checkpointing"):
            raise ConvergentError("--activation-checkpointing: this model does not support it")
        model.activation_checkpointing = True
    loss_module = LossModule(model)
    if not engine.distributed:
        return Trainable(model, loss_module, contextlib.nullcontext)
    if engine.fsdp:
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        mesh = init_device_mesh(engine.device.type, (engine.world,))
        for block in getattr(model, "blocks", ()):
            fully_shard(block, mesh=mesh)
        fully_shard(loss_module, mesh=mesh)
        return Trainable(model, loss_module, lambda: _fsdp_no_sync(loss_module))
    from torch.nn.parallel import DistributedDataParallel

    ids = [engine.device.index] if engine.device.type == "cuda" else None
    ddp = DistributedDataParallel(loss_module, device_ids=ids)
    return Trainable(model, ddp, ddp.no_sync)


@contextlib.contextmanager
def _fsdp_no_sync(module: Any) -> Iterator[None]:
    module.set_requires_gradient_sync(False)
    try:
        yield
    finally:
        module.set_requires_gradient_sync(True)


def accumulate(trainable: Trainable, engine: Engine, batch: Batch) -> float:
    """Forward and backward the global ``batch`` over this rank's micro-batches.

    Leaves the gradient of the whole batch's mean loss in the parameters (averaged over the
    ranks by DDP/FSDP) and returns that mean loss (the same number on every rank).
    """
    parts = engine.local_parts(batch)
    counts = [part.n_targets for part in parts]
    local = sum(counts)
    masked = batch.mask is not None
    total = float(engine.all_sum(torch.tensor(float(local))).item()) if masked and \
        engine.distributed else float(local * engine.world)
    if total <= 0:
        raise ConvergentError("a training batch holds no targets (every position is masked)")
    loss_sum: torch.Tensor | float = 0.0
    for index, (part, count) in enumerate(zip(parts, counts, strict=True)):
        last = index == len(parts) - 1
        on_device = engine.to_device(part)
        with contextlib.nullcontext() if last else trainable.no_sync():
            with engine.autocast():
                loss = trainable.loss(on_device)
            weight = count * engine.world / total
            (loss if weight == 1.0 else loss * weight).backward()
        loss_sum = loss_sum + loss.detach().float() * count
    return float(engine.all_sum(torch.as_tensor(loss_sum)).item()) / total


def full_tensors(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """CPU copies of ``tensors`` with FSDP2's sharded DTensors gathered (a collective)."""
    from torch.distributed.tensor import DTensor

    out = {}
    for name, tensor in tensors.items():
        if isinstance(tensor, DTensor):
            tensor = tensor.full_tensor()
        out[name] = tensor.detach().cpu()
    return out


def shard_like_parameters(optimizer: torch.optim.Optimizer) -> None:
    """After loading full optimizer state under FSDP2, shard each tensor like its parameter."""
    from torch.distributed.tensor import DTensor, distribute_tensor

    for param, slots in optimizer.state.items():
        if not isinstance(param, DTensor):
            continue
        for key, value in slots.items():
            if isinstance(value, torch.Tensor) and not isinstance(value, DTensor) and \
                    tuple(value.shape) == tuple(param.shape):
                slots[key] = distribute_tensor(value.to(param.device), param.device_mesh,
                                               param.placements)
