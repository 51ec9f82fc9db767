"""``convergent train``: train a model family (or classical embeddings) into a run folder."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from convergent.cli._checks import check_out, positive


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "train",
        help="train a Transformer, Gated DeltaNet, Mamba-2, LSTM, word2vec or PPMI run",
        description="Train on natural (or perturbed) text; checkpoints go to --out, which is "
        "then a source: convergent numbers run:DIR [--dynamics]. Re-running the same "
        "command resumes an interrupted run.",
    )
    p.add_argument("--preset", choices=["quick", "paper"], default="quick")
    p.add_argument("--arch", default=None,
                   choices=["transformer", "gdn", "mamba2", "lstm", "word2vec", "ppmi"])
    p.add_argument("--optimizer", choices=["adamw", "muon"], default=None)
    p.add_argument("--perturb", default=None, metavar="KIND",
                   help="swap (within each document), swap-global, unigram, isolate-K or "
                   "context-L (default: none)")
    p.add_argument("--tokens", type=positive, default=None, help="token budget (neural models)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--corpus", default=None,
                   help="bundled (default), sotu, wiki, lee, a .txt/.jsonl file or folder, "
                   "or hf:NAME[:CONFIG][@SPLIT]")
    p.add_argument("--tokenizer", default=None, metavar="NAME",
                   help="bpe (0..999 single tokens, three-digit chunks), digit, word, or a "
                   "named one: hf:ORG/NAME or a tokenizer.json path")
    p.add_argument("--config", type=Path, default=None,
                   help="a config.json to start from instead of the preset")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any config field, dotted for nested ones (repeatable): "
                   "--set model.d_model=256 --set checkpoint_every=100000 "
                   "--set batch_size=32 --set embedding.epochs=10; values are JSON "
                   "(numbers, true/false) or plain strings, none for null")
    p.add_argument("--threads", type=positive, default=None,
                   help="torch threads (default 1 for the quick preset: faster on a shared "
                   "CPU; the torch default otherwise)")
    p.add_argument("--out", type=Path, default=None,
                   help="run folder (default runs/PRESET-ARCH[-OPTIMIZER][-PERTURB])")
    p.add_argument("--data", default=None, metavar="DIR",
                   help="train on data prepared by `convergent data prepare` (memmapped "
                   "shards; needed for corpora of billions of tokens)")
    engine = p.add_argument_group("engine (where and how; a run may resume under another)")
    engine.add_argument("--device", choices=["auto", "cpu", "cuda"], default=None,
                        help="auto (default) takes CUDA when it is available")
    engine.add_argument("--precision", choices=["auto", "fp32", "bf16"], default=None,
                        help="auto (default): bf16 autocast with TF32 on CUDA, fp32 on CPU")
    engine.add_argument("--micro-batch", type=positive, default=None, metavar="N",
                        help="rows per forward/backward on each rank (gradient accumulation; "
                        "default: the rank's whole share of the batch)")
    engine.add_argument("--activation-checkpointing", action="store_true", default=None,
                        help="recompute each block in backward: far less activation memory")
    engine.add_argument("--nproc", type=positive, default=None, metavar="N",
                        help="ranks on this node (one per GPU), started with torchrun; for "
                        "several nodes run `torchrun ... -m convergent.train.launch`")
    engine.add_argument("--fsdp", action="store_true", default=None,
                        help="shard parameters, gradients and optimizer state over the ranks "
                        "(FSDP2 fully_shard) instead of replicating them (DDP)")
    engine.add_argument("--compile", action="store_true", default=None,
                        help="compile the model's blocks with torch.compile: up to 1.4x "
                        "faster steps after a 15-45 s compile; for runs longer than a few "
                        "minutes")
    p.add_argument("--no-progress", action="store_true")
    from convergent.tasks.cli_support import add_task_arguments

    add_task_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.task or args.arch is None:
        from convergent.tasks.cli_support import run_task_training

        return run_task_training(args)
    import torch

    from convergent.train import TrainConfig, train
    from convergent.train.config import parse_assignments, with_changes, with_engine
    from convergent.train.presets import preset

    changes = {"optimizer": args.optimizer, "perturb": args.perturb, "tokens": args.tokens,
               "seed": args.seed, "lr": args.lr, "corpus": args.corpus,
               "tokenizer": args.tokenizer, "data": args.data}
    if args.data is not None:  # the prepared folder fixes corpus, tokenizer and vocabulary
        from convergent.train.stream import data_fields

        given = {k: v for k, v in changes.items() if v is not None}
        changes = {**data_fields(args.data), **given}
    if args.config is not None:
        base = TrainConfig.load(args.config)
        changes["arch"] = args.arch
        config = base.replace(**{k: v for k, v in changes.items() if v is not None}).validate()
    else:
        config = preset(args.preset, args.arch, **changes)
    if args.set:
        config = with_changes(config, parse_assignments(args.set))
    config = with_engine(config, **engine_options(args))
    threads = args.threads if args.threads is not None else (1 if args.preset == "quick" else 0)
    if threads:
        torch.set_num_threads(threads)
    out = args.out or Path("runs") / _default_name(args.preset, config)
    check_out(out)  # before the corpus or the model is touched
    budget = (f"{config.tokens:,} tokens, optimizer {config.optimizer}" if config.neural
              else f"{config.embedding.epochs} epochs" if config.arch == "word2vec"
              else "one pass")
    say = print if os.environ.get("RANK", "0") == "0" else _quiet  # once under torchrun
    say(f"training {config.arch} into {out} ({budget}, perturbation "
          f"{config.perturb or 'none'})")
    result = train(config, out, progress=not args.no_progress)
    loss = f", final loss {result.final_loss:.3f}" if result.final_loss is not None else ""
    say(f"done: {len(result.checkpoints)} checkpoints in {out}{loss}")
    say(f"next: convergent numbers run:{out} --numbers 0:100 --dynamics --out {out}/numbers")
    return 0


def _quiet(*args: Any, **kwargs: Any) -> None:
    del args, kwargs


ENGINE_OPTIONS = ("device", "precision", "micro_batch", "nproc", "activation_checkpointing",
                  "fsdp", "compile")


def engine_options(args: argparse.Namespace) -> dict[str, Any]:
    """The engine options given on the command line (absent ones left out)."""
    return {k: getattr(args, k) for k in ENGINE_OPTIONS if getattr(args, k, None) is not None}


def _default_name(preset_name: str, config: Any) -> str:
    parts = [preset_name, config.arch]
    if config.optimizer != "adamw":
        parts.append(config.optimizer)
    if config.perturb:
        parts.append(config.perturb)
    return "-".join(parts)
