"""Command-line glue for tasks: ``convergent train --task addition`` and ``reproduce addition``.

Only argparse and the standard library are imported at module level (CLI start-up stays
fast); torch and the training engine load inside the functions.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

TASKS = ("addition",)
PRESETS = ("quick", "paper")
ANSWER_ORDERS = ("lsb", "msb")
ANSWER_HELP = ("addition: the answer format: 'whole' (the sum as one token, ids up to "
               "2*(10**chunk-1): the paper's single-token control) or 'carry-mod' (a carry "
               "token, then each chunk (a_i + b_i + carry_i) mod 10**chunk)")


def _answer_format(text: str) -> str:
    """argparse type: an unknown format is a usage error listing the valid ones."""
    from convergent.errors import ConvergentError
    from convergent.tasks.addition import check_answer_format

    try:
        return check_answer_format(text)
    except ConvergentError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def add_task_arguments(parser: argparse.ArgumentParser) -> None:
    """The task options of ``convergent train`` (they apply only with ``--task``)."""
    group = parser.add_argument_group("task training (--task)")
    group.add_argument("--task", choices=TASKS, default=None,
                       help="train on a synthetic task instead of text (then --arch defaults "
                       "to transformer with tied embeddings)")
    group.add_argument("--digits", type=int, default=9, help="addition: digits per operand")
    group.add_argument("--chunk", type=int, default=3,
                       help="addition: digits per token (1..3); --digits 3 --chunk 3 is "
                       "single-token addition")
    group.add_argument("--answer", type=_answer_format, default=None,
                       help=ANSWER_HELP + "; default: whole for single-token tasks (--digits "
                       "equal to --chunk), carry-mod for multi-token ones (the only format)")
    group.add_argument("--no-final-carry", action="store_true",
                       help="addition: drop the answer's lead carry chunk (sum mod 10**digits)")
    group.add_argument("--answer-order", choices=ANSWER_ORDERS, default=None,
                       help="addition: answer chunks least (lsb) or most (msb) significant "
                       "first (default: the quick preset's)")
    group.add_argument("--train-pairs", type=int, default=None,
                       help="addition: fixed training set size (default: 100000 for <= 3 "
                       "digits, fresh pairs every batch above)")
    group.add_argument("--test-pairs", type=int, default=2000)
    group.add_argument("--steps", type=int, default=None,
                       help="task: optimizer steps (alternative to --tokens)")


def task_defaults(digits: int) -> dict[str, Any]:
    """Defaults shared by ``train --task`` and the quick reproduction."""
    from convergent.tasks.experiment import ReproConfig

    quick = ReproConfig()
    return {"model": quick.model, "steps": quick.steps, "batch_size": quick.batch_size,
            "lr": quick.lr, "weight_decay": quick.weight_decay,
            "train_pairs": quick.train_pairs_single if digits <= 3 else quick.train_pairs_multi,
            "checkpoints": quick.checkpoints, "warmup_fraction": quick.warmup_fraction,
            "reverse": quick.reverse}


def build_task_spec(args: argparse.Namespace):
    """The :class:`~convergent.tasks.run.TaskRunSpec` described by ``args``."""
    from convergent.errors import ConvergentError
    from convergent.tasks.addition import AdditionTask
    from convergent.tasks.dataset import SplitConfig
    from convergent.tasks.run import TaskRunSpec
    from convergent.train.config import TrainConfig

    defaults = task_defaults(args.digits)
    order = getattr(args, "answer_order", None)
    reverse = defaults["reverse"] if order is None else order == "lsb"
    task = AdditionTask(digits=args.digits, chunk=args.chunk,
                        final_carry=not args.no_final_carry, reverse=reverse,
                        answer=getattr(args, "answer", None))
    arch = getattr(args, "arch", None) or "transformer"
    if arch in ("word2vec", "ppmi"):
        raise ConvergentError(f"--task {args.task} trains a neural model, not {arch}")
    config_file = getattr(args, "config", None)
    if config_file is not None:
        base = TrainConfig.load(config_file)
    else:
        base = TrainConfig(model=defaults["model"], lr=defaults["lr"],
                           weight_decay=defaults["weight_decay"],
                           batch_size=defaults["batch_size"])
    per_step = base.batch_size * (task.seq_len - 1)
    steps = getattr(args, "steps", None)
    tokens = getattr(args, "tokens", None)
    if steps is not None and tokens is not None:
        raise ConvergentError("give --steps or --tokens, not both")
    if tokens is None:
        tokens = (steps or defaults["steps"]) * per_step
    changes = {"arch": arch, "optimizer": getattr(args, "optimizer", None),
               "seed": getattr(args, "seed", None), "lr": getattr(args, "lr", None),
               "tokens": tokens,
               "warmup_tokens": int(defaults["warmup_fraction"] * tokens),
               "checkpoint_every": max(per_step, tokens // defaults["checkpoints"])}
    config = base.replace(**{k: v for k, v in changes.items() if v is not None})
    if getattr(args, "set", None):
        from convergent.train.config import parse_assignments, with_changes

        config = with_changes(config, parse_assignments(args.set))
    from convergent.cli.train import engine_options
    from convergent.train.config import with_engine

    config = with_engine(config, **engine_options(args))
    train_pairs = args.train_pairs
    if train_pairs is None:  # the default, or all pairs outside the test set if fewer
        space = 10 ** (2 * task.digits) - args.test_pairs
        train_pairs = defaults["train_pairs"] if defaults["train_pairs"] < space else 0
    split = SplitConfig(test_pairs=args.test_pairs, train_pairs=train_pairs, seed=config.seed)
    return TaskRunSpec(task, split, config)


def run_task_training(args: argparse.Namespace) -> int:
    """``convergent train --task ...``: train, evaluate every checkpoint, print a summary."""
    import torch

    from convergent.errors import ConvergentError
    from convergent.tasks.run import evaluate_run, train_task

    if getattr(args, "task", None) is None:
        raise ConvergentError("--arch is required unless --task is given")
    spec = build_task_spec(args)
    threads = getattr(args, "threads", None)
    torch.set_num_threads(threads or 1)
    out = getattr(args, "out", None) or Path("runs") / f"{spec.task.spec}-{spec.config.optimizer}"
    progress = not getattr(args, "no_progress", False)
    print(f"training {spec.task.name} ({spec.config.arch}, {spec.config.optimizer}) into {out}")
    train_task(spec, out, progress=progress)
    points = evaluate_run(out, progress=progress)
    print_dynamics(points)
    print(f"next: convergent numbers run:{out} --numbers 0:{spec.task.base} --dynamics "
          f"--out {out}/numbers")
    return 0


def print_dynamics(points: list[dict[str, Any]]) -> None:
    print(f"{'step':>7} {'tokens':>10} {'test EM':>8} {'train EM':>8}  kappa_2 kappa_5 kappa_10")
    for p in points:
        periods = p.get("numbers", {}).get("periods", {})
        kappas = " ".join(f"{periods[t]['kappa']:7.1f}" if t in periods else "      -"
                          for t in ("2", "5", "10"))
        print(f"{p['step']:>7} {p['tokens']:>10,} {p['test']['exact_match']:>8.1f} "
              f"{p['train']['exact_match']:>8.1f}  {kappas}")


# convergent reproduce addition ---------------------------------------------------------

def add_reproduce_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--steps", type=int, default=None, help="optimizer steps per run")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--d-model", type=int, default=None)
    parser.add_argument("--layers", type=int, default=None)
    parser.add_argument("--checkpoints", type=int, default=None,
                        help="evaluated checkpoints per run")
    parser.add_argument("--chunk", type=int, default=3, choices=[2, 3],
                        help="digits per token: 3 (the paper: 9-digit vs 3-digit); 2 gives "
                        "the scaled-down 6-digit vs 2-digit version (100 number tokens)")
    parser.add_argument("--answer", type=_answer_format, default="whole",
                        help=ANSWER_HELP + "; for the single-token settings (multi-token ones "
                        "always write carry-mod chunks; default whole)")
    parser.add_argument("--train-pairs-single", type=int, default=None,
                        help="fixed single-token training set size (default 100000 of the "
                        "10**6 3-digit pairs; all non-test pairs if fewer exist)")
    parser.add_argument("--test-pairs", type=int, default=None,
                        help="held-out operand pairs per run (default 2000)")
    parser.add_argument("--permutations", type=int, default=None,
                        help="random orderings for the Phi_T spike p-value (default 100)")
    parser.add_argument("--answer-order", choices=ANSWER_ORDERS, default=None,
                        help="answer chunks least (lsb) or most (msb) significant first "
                        "(the paper does not say; default: the preset's)")
    parser.add_argument("--only", action="append", default=None, metavar="SETTING",
                        help="run only some settings: d9c3-muon, d9c3-adamw, d3c3-muon, "
                        "d3c3-adamw (with --chunk 2: d6c2-..., d2c2-...; with --answer "
                        "carry-mod: d3c3-carrymod-...; repeatable)")


def repro_config(args: argparse.Namespace):
    """The :class:`ReproConfig` of ``--preset`` with the command line's changes."""
    from dataclasses import replace

    from convergent.errors import ConvergentError
    from convergent.tasks.experiment import ReproConfig, settings_for, with_changes
    from convergent.train.presets import (
        PAPER_3DIGIT_TOKENS,
        PAPER_ADDITION_BATCH,
        PAPER_ADDITION_LR,
        PAPER_ADDITION_MODEL,
    )

    base = ReproConfig()
    if args.preset == "paper":  # the models and batches of reproduce --preset paper
        base = replace(base, model=PAPER_ADDITION_MODEL, steps=20_000,
                       batch_size=PAPER_ADDITION_BATCH, lr=PAPER_ADDITION_LR, seeds=(0, 1, 2),
                       checkpoints=20, single_tokens=PAPER_3DIGIT_TOKENS)
    if args.steps is not None:  # --steps sets every run's length
        base = replace(base, single_tokens=0)
    model = base.model
    if args.d_model or args.layers:
        model = replace(model, d_model=args.d_model or model.d_model,
                        n_layers=args.layers or model.n_layers)
    settings = settings_for(args.chunk, getattr(args, "answer", "whole"))
    if args.only:
        known = {s.slug: s for s in settings}
        bad = [o for o in args.only if o not in known]
        if bad:
            raise ConvergentError(f"--only {bad[0]}: choose from {', '.join(known)}")
        settings = tuple(known[o] for o in args.only)
    seeds = tuple(range(args.seeds)) if args.seeds is not None else None
    order = getattr(args, "answer_order", None)
    reverse = None if order is None else order == "lsb"
    return with_changes(base, model=model, steps=args.steps, batch_size=args.batch_size,
                        lr=args.lr, checkpoints=args.checkpoints, seeds=seeds,
                        workers=args.workers, settings=settings,
                        train_pairs_single=args.train_pairs_single,
                        permutations=args.permutations, test_pairs=args.test_pairs,
                        reverse=reverse)


def run_reproduce_addition(args: argparse.Namespace) -> int:
    from convergent.io import write_json_atomic
    from convergent.report.addition import (
        paper_entries,
        plot_addition,
        plot_addition_dynamics,
    )
    from convergent.tasks.experiment import reproduce_addition

    config = repro_config(args)
    out: Path = args.out
    runs = len(config.settings) * len(config.seeds)
    print(f"addition: {runs} runs of {config.steps} steps (batch {config.batch_size}, "
          f"d_model {config.model.d_model}, {config.model.n_layers} layers) into {out}/runs, "
          f"{config.workers} at a time")
    result = reproduce_addition(out, config, progress=not args.no_progress)
    data = result.to_dict()
    write_json_atomic(out / "results.json", data)
    entries = [r.entry for r in result.runs]
    paper = {s["paper_setting"]: s for s in data["summary"].values() if s["paper_row"]}
    plot_addition(entries, paper_entries(
        {label: s["paper_kappa"] for label, s in paper.items()}, list(paper),
        {label: s["paper_note"].removeprefix("paper: ") for label, s in paper.items()
         if s["paper_note"]}),
                  [out / "addition.png", out / "addition.svg"])
    plot_addition_dynamics([r.to_dict() for r in result.runs],
                           [out / "dynamics.png", out / "dynamics.svg"])
    print_summary(data["summary"])
    print(f"wrote {out / 'results.json'}, {out / 'addition.png'}, {out / 'dynamics.png'}")
    return 0


def print_summary(summary: dict[str, dict[str, Any]]) -> None:
    shown = ("2", "4", "5", "10", "3", "7")
    width = max([24, *(len(label) for label in summary)])
    print(f"{'setting':<{width}} {'test EM':>8} " + " ".join(f"{'k' + t:>6}" for t in shown)
          + "   chance k2/k4/k5/k10 (shuffled)      paper (2/4/5/10)")
    for label, s in summary.items():
        kap = " ".join(f"{s['kappa'][t]['mean']:6.1f}" for t in shown)
        null = s.get("null_kappa")
        chance = "/".join(f"{null[t]['mean']:.0f}+-{null[t]['std']:.0f}" for t in
                          ("2", "4", "5", "10")) if null else "-"
        paper = "/".join(f"{s['paper_kappa'][t]:.0f}" for t in ("2", "4", "5", "10")) \
            if s["paper_kappa"] else (s["paper_note"] or "-").removeprefix("paper: ")
        print(f"{label:<{width}} {s['test_exact_match']['mean']:8.1f} {kap}   {chance:<35} {paper}")
