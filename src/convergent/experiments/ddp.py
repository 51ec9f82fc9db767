"""One training run across processes with torch DistributedDataParallel (gloo on CPU, NCCL).

Built by composition around the unchanged training engine (``convergent.train``):

- every rank builds the same model (same seed; DDP also broadcasts rank 0's weights) and
  reads the same batch ``i``; :class:`ShardedBatches` gives rank r the rows r, r+W, ... of
  it, so the global batch and the token budget are the config's, and with DDP averaging
  the gradients one step equals a single-process step on the whole batch (exactly so
  when every rank's rows hold the same number of targets, as without a mask);
- the model's ``loss`` is routed through a DDP wrapper (:func:`distribute`), so
  gradients are all-reduced in buckets during ``backward``; ``state_dict`` keeps its
  names, so checkpoints are ordinary run checkpoints (``run:DIR`` reads them);
- rank 0 owns the run folder. If the engine's ``train_loop`` takes ``is_main``, only rank 0
  checkpoints and every rank resumes from its folder; otherwise (the loop checkpoints
  unconditionally) the other ranks checkpoint their identical replicas into
  ``DIR/.ddp/rank-R/``, which also keeps resuming after a kill consistent on every rank.

Launch with torchrun (one process per GPU, or per group of CPU cores)::

    torchrun --nproc_per_node 2 -m convergent.experiments.ddp --config config.json --out DIR \
        [--compile]

or :func:`launch` from Python. ``--backend`` defaults to nccl on GPUs and gloo on CPUs.
"""

from __future__ import annotations

import argparse
import inspect
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from convergent.errors import ConvergentError

SCRATCH = ".ddp"


class ShardedBatches:
    """Rows ``rank::world`` of every batch of ``inner`` (a BatchSource)."""

    def __init__(self, inner: Any, rank: int, world: int) -> None:
        self.inner, self.rank, self.world = inner, rank, world

    def batch(self, index: int) -> Any:
        from convergent.train.data import Batch

        full = self.inner.batch(index)
        rows = slice(self.rank, None, self.world)
        mask = None if full.mask is None else full.mask[rows]
        return Batch(full.tokens[rows], mask)


def distribute(model: Any, device_ids: list[int] | None = None) -> Any:
    """Route ``model.loss`` through DistributedDataParallel; returns the DDP wrapper."""
    import torch
    from torch.nn.parallel import DistributedDataParallel

    loss = model.loss  # the bound method of the model's class

    class _Loss(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, tokens: Any, mask: Any = None) -> Any:
            return loss(tokens, mask)

    wrapper = DistributedDataParallel(_Loss(), device_ids=device_ids)
    model.loss = lambda tokens, mask=None: wrapper(tokens, mask)
    return wrapper


def train_distributed(config: Any, out: str | Path, progress: bool = True,
                      compile: bool = False) -> Any:
    """Train ``config`` into ``out`` as one rank of an initialised process group.

    ``compile`` compiles each rank's blocks (as ``convergent train --compile``) before the
    DDP wrapper is put around the loss.
    """
    import torch
    import torch.distributed as dist

    from convergent.train.checkpoint import list_checkpoints
    from convergent.train.loop import train_loop
    from convergent.train.models import build_model
    from convergent.train.run import prepare_run_dir, write_manifest
    from convergent.train.stream import make_batches, prepare_data

    rank, world = dist.get_rank(), dist.get_world_size()
    config.validate()
    if not config.neural:
        raise ConvergentError(f"{config.arch} is not trained by gradient descent; DDP applies "
                              "to transformer, gdn, mamba2 and lstm")
    if config.batch_size % world:
        raise ConvergentError(f"batch_size {config.batch_size} is not divisible by the "
                              f"{world} processes")
    run_dir = Path(out)
    if rank == 0:
        prepare_run_dir(run_dir, config)
        prepare_data(run_dir, config, progress)
    dist.barrier()  # the tokenizer and token stream exist now; the others read them
    tok, stream = prepare_data(run_dir, config, progress=False)
    batches = ShardedBatches(make_batches(stream, tok, config), rank, world)
    torch.manual_seed(config.seed)
    model = build_model(config.arch, config.model, tok.get_vocab_size())
    devices = None
    if torch.cuda.is_available() and dist.get_backend() == "nccl":
        local = int(os.environ.get("LOCAL_RANK", rank))
        torch.cuda.set_device(local)
        model = model.cuda(local)
        devices = [local]
    if compile:
        from convergent.train.compiled import compile_for_training

        compile_for_training(model, batches.batch(0))
    distribute(model, devices)
    manifest = (lambda: write_manifest(run_dir, config, complete=False)) if rank == 0 else (
        lambda: None)
    manifest()
    options: dict[str, Any] = {"on_checkpoint": manifest, "progress": progress and rank == 0}
    if "is_main" in inspect.signature(train_loop).parameters:
        own_dir = run_dir  # the loop checkpoints on rank 0 only; every rank resumes from it
        options["is_main"] = rank == 0
    else:  # an engine whose loop checkpoints on every rank: replicas go to scratch folders
        own_dir = run_dir if rank == 0 else run_dir / SCRATCH / f"rank-{rank}"
        own_dir.mkdir(parents=True, exist_ok=True)
    loop = train_loop(model, batches, config, own_dir, **options)
    dist.barrier()
    if rank == 0:
        from convergent.io import write_json_atomic

        write_manifest(run_dir, config, complete=loop.step >= config.total_steps,
                       extra={"distributed": {"world_size": world,
                                              "backend": dist.get_backend()}})
        write_json_atomic(run_dir / "metrics.json", loop.metrics)
    return loop, list_checkpoints(run_dir)


def main(argv: list[str] | None = None) -> int:
    """Entry point of each torchrun process."""
    import torch
    import torch.distributed as dist

    parser = argparse.ArgumentParser(description="one rank of a DDP training run")
    parser.add_argument("--config", type=Path, required=True, help="a TrainConfig JSON")
    parser.add_argument("--out", type=Path, required=True, help="run folder")
    parser.add_argument("--backend", choices=["gloo", "nccl"], default=None)
    parser.add_argument("--threads", type=int, default=None, help="torch threads per rank")
    parser.add_argument("--compile", action="store_true",
                        help="compile the blocks with torch.compile (see convergent train)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    from convergent.train.config import TrainConfig

    if args.threads:
        torch.set_num_threads(args.threads)
    backend = args.backend or ("nccl" if torch.cuda.is_available() else "gloo")
    dist.init_process_group(backend=backend)
    try:
        config = TrainConfig.load(args.config)
        train_distributed(config, args.out, progress=not args.no_progress,
                          compile=args.compile)
    except ConvergentError as err:
        print(f"convergent ddp (rank {dist.get_rank()}): error: {err}", file=sys.stderr)
        return 2
    finally:
        dist.destroy_process_group()
    return 0


def launch(config: Any, out: str | Path, processes: int = 2, threads: int = 1,
           backend: str | None = None, progress: bool = False,
           timeout: float | None = None,
           compile: bool = False) -> subprocess.CompletedProcess[str]:
    """Run ``config`` with ``processes`` local ranks through torchrun; raises on failure."""
    import tempfile

    if not config.neural:
        raise ConvergentError(f"{config.arch} is not trained by gradient descent; DDP applies "
                              "to transformer, gdn, mamba2 and lstm")
    if processes < 1 or config.batch_size % processes:
        raise ConvergentError(f"batch_size {config.batch_size} is not divisible by the "
                              f"{processes} processes")
    run_dir = Path(out)
    scratch = Path(tempfile.mkdtemp(prefix="convergent-ddp-"))
    config_file = scratch / "config.json"
    config.save(config_file)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={processes}", "-m", "convergent.experiments.ddp",
               "--config", str(config_file), "--out", str(run_dir), "--threads", str(threads)]
    if backend:
        command += ["--backend", backend]
    if not progress:
        command.append("--no-progress")
    if compile:
        command.append("--compile")
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    finally:
        config_file.unlink(missing_ok=True)
        scratch.rmdir()
    if done.returncode:
        lines = (done.stderr + done.stdout).strip().splitlines()
        ours = [line for line in lines if line.startswith("convergent ddp (rank")]
        detail = ours[0] if ours else " | ".join(lines[-12:])[-600:]
        raise ConvergentError(f"{run_dir}: torchrun with {processes} processes failed "
                              f"(exit {done.returncode}): {detail}")
    return done


if __name__ == "__main__":
    sys.exit(main())
