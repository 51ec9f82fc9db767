"""``nproc`` ranks of one run on this node, started with torchrun (``--nproc``).

The launching process has already written the run folder and its data; each rank runs
``python -m convergent.train.launch --out DIR``, which reads ``DIR/config.json`` (and, for
a task run, ``DIR/task.json``) and calls :func:`convergent.train.run.train` as one rank of
torchrun's process group. The launcher is torchrun itself (``torch.distributed.run``,
``--standalone``); this module only builds its command line and reports a failed rank in
one line. The torchrun process is tied to this one: it receives SIGTERM if this process
dies (Linux parent-death signal, :func:`convergent.experiments.lifetime.die_with_parent`),
and torchrun then stops its ranks.

Several nodes: run the same rank entry point under torchrun's rendezvous yourself, e.g.
``torchrun --nnodes 2 --nproc_per_node 8 --rdzv_backend c10d --rdzv_endpoint HOST:29500
-m convergent.train.launch --out DIR`` on every node, after ``convergent train ... --out
DIR --nproc 1 --stop-after 0`` (or any first call) has written the folder on a shared
filesystem.
"""

from __future__ import annotations

import argparse
import functools
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from convergent.errors import ConvergentError
from convergent.experiments.lifetime import die_with_parent

RANK_ERROR = "convergent train (rank"
FORWARDED = ("train ", "engine:", "memory", "convergent")


def launch_ranks(run_dir: Path, config: Any, progress: bool = True,
                 stop_after: int | None = None) -> None:
    """Run ``config.engine.nproc`` ranks on ``run_dir`` through torchrun; raise on failure."""
    from convergent.train.engine import available_cores, resolve_device

    nproc = config.engine.nproc
    threads = 0
    if resolve_device(config.engine.device).type == "cpu":
        threads = max(1, available_cores() // nproc)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={nproc}", "-m", "convergent.train.launch",
               "--out", str(run_dir), "--threads", str(threads)]
    if not progress:
        command.append("--no-progress")
    if stop_after is not None:
        command += ["--stop-after", str(stop_after)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               preexec_fn=functools.partial(die_with_parent, os.getpid(),
                                                            signal.SIGTERM))
    tail: list[str] = []
    reader = threading.Thread(target=_relay, args=(process.stdout, tail, progress),
                              daemon=True)
    reader.start()
    try:
        code = process.wait()
    except BaseException:
        process.terminate()
        process.wait()
        raise
    reader.join()
    if code:
        ours = [line for line in tail if line.startswith(RANK_ERROR)]
        detail = ours[0].split("error: ", 1)[-1] if ours else " | ".join(tail[-8:])[-600:]
        raise ConvergentError(f"{run_dir}: {nproc} ranks failed (torchrun exit {code}): "
                              f"{detail}")


def _relay(stream: Any, tail: list[str], progress: bool) -> None:
    """Keep the last lines of the ranks' output; show rank 0's progress when asked."""
    buffer = b""
    while chunk := stream.read1(4096):
        buffer += chunk
        *lines, buffer = buffer.replace(b"\r", b"\n").split(b"\n")
        for raw in lines:
            line = raw.decode(errors="replace").strip()
            if not line:
                continue
            tail.append(line)
            del tail[:-200]
            if progress and line.startswith(FORWARDED) and not line.startswith(RANK_ERROR):
                bar = line.startswith("train ")  # rank 0's tqdm bar: redrawn in place
                print(("\r" if bar else "") + line, end="" if bar else "\n",
                      file=sys.stderr, flush=True)
    if progress:
        print(file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """The entry point of each rank."""
    import torch

    parser = argparse.ArgumentParser(description="one rank of a convergent training run")
    parser.add_argument("--out", type=Path, required=True, help="the run folder")
    parser.add_argument("--threads", type=int, default=0, help="torch threads per rank")
    parser.add_argument("--stop-after", type=int, default=None)
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    rank = os.environ.get("RANK", "0")
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        from convergent.train.config import TrainConfig
        from convergent.train.run import train

        config = TrainConfig.load(args.out / "config.json")
        batches, tokenizer = _task_batches(args.out, config)
        train(config, args.out, batches=batches, tokenizer=tokenizer,
              progress=not args.no_progress and rank == "0", stop_after=args.stop_after)
    except ConvergentError as err:
        print(f"{RANK_ERROR} {rank}): error: {err}", file=sys.stderr, flush=True)
        return 2
    return 0


def _task_batches(run_dir: Path, config: Any) -> tuple[Any, Any]:
    """A task run's batch source and tokenizer, rebuilt from its folder (else None, None)."""
    from convergent.tasks.run import TASK_FILE, task_batches

    if not (run_dir / TASK_FILE).is_file():
        return None, None
    return task_batches(run_dir, config)


if __name__ == "__main__":
    sys.exit(main())
