"""``convergent train``: train a model family (or classical embeddings) into a run folder."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


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
                   help="swap, unigram, isolate-K or context-L (default: none)")
    p.add_argument("--tokens", type=int, default=None, help="token budget (neural models)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--corpus", default=None,
                   help="bundled (default), sotu, wiki, lee, a .txt/.jsonl file or folder, "
                   "or hf:NAME[:CONFIG][@SPLIT]")
    p.add_argument("--tokenizer", choices=["bpe", "digit", "word"], default=None)
    p.add_argument("--config", type=Path, default=None,
                   help="a config.json to start from instead of the preset")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any config field, dotted for nested ones (repeatable): "
                   "--set model.d_model=256 --set checkpoint_every=100000 "
                   "--set batch_size=32 --set embedding.epochs=10; values are JSON "
                   "(numbers, true/false) or plain strings, none for null")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads (default 1 for the quick preset: faster on a shared "
                   "CPU; the torch default otherwise)")
    p.add_argument("--out", type=Path, default=None,
                   help="run folder (default runs/PRESET-ARCH[-OPTIMIZER][-PERTURB])")
    p.add_argument("--compile", action="store_true",
                   help="compile the model's blocks with torch.compile: up to 1.4x faster "
                   "steps after a 15-45 s compile; for runs longer than a few minutes")
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
    from convergent.train.config import parse_assignments, with_changes
    from convergent.train.presets import preset

    changes = {"optimizer": args.optimizer, "perturb": args.perturb, "tokens": args.tokens,
               "seed": args.seed, "lr": args.lr, "corpus": args.corpus,
               "tokenizer": args.tokenizer}
    if args.config is not None:
        base = TrainConfig.load(args.config)
        changes["arch"] = args.arch
        config = base.replace(**{k: v for k, v in changes.items() if v is not None}).validate()
    else:
        config = preset(args.preset, args.arch, **changes)
    if args.set:
        config = with_changes(config, parse_assignments(args.set))
    threads = args.threads if args.threads is not None else (1 if args.preset == "quick" else 0)
    if threads:
        torch.set_num_threads(threads)
    out = args.out or Path("runs") / _default_name(args.preset, config)
    budget = (f"{config.tokens:,} tokens, optimizer {config.optimizer}" if config.neural
              else f"{config.embedding.epochs} epochs" if config.arch == "word2vec"
              else "one pass")
    print(f"training {config.arch} into {out} ({budget}, perturbation "
          f"{config.perturb or 'none'})")
    result = train(config, out, progress=not args.no_progress, compile=args.compile)
    loss = f", final loss {result.final_loss:.3f}" if result.final_loss is not None else ""
    print(f"done: {len(result.checkpoints)} checkpoints in {out}{loss}")
    print(f"next: convergent numbers run:{out} --numbers 0:100 --dynamics --out {out}/numbers")
    return 0


def _default_name(preset_name: str, config: Any) -> str:
    parts = [preset_name, config.arch]
    if config.optimizer != "adamw":
        parts.append(config.optimizer)
    if config.perturb:
        parts.append(config.perturb)
    return "-".join(parts)
