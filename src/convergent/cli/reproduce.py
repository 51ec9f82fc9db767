"""``convergent reproduce WHAT``: rerun one of the papers' experiments end to end.

``convergent reproduce --preset quick|paper [--out DIR] [--backend local|ray] [--address A]
[--dry-run [--gpus N]]`` (no WHAT) runs the whole suite, the paper's architecture,
data-perturbation and addition figures, as one experiment spec
(:mod:`convergent.experiments.reproduce`) and writes one HTML report; ``--dry-run`` prints
the plan (devices, tokens, memory, GPU-hours) instead.

Each WHAT is a sub-command registered from ``EXPERIMENTS`` (name -> module, adder, runner):
the module's adder adds the experiment's own options, the runner does the work. Every WHAT
gets ``--out``, ``--preset quick|paper``, ``--seeds``, ``--workers`` and ``--no-progress``.
To add an experiment (e.g. ``architectures``, ``perturbations``), add one entry.
"""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path
from typing import Any

EXPERIMENTS: dict[str, tuple[str, str, str, str]] = {
    "addition": (
        "convergent.tasks.cli_support", "add_reproduce_arguments", "run_reproduce_addition",
        "9-digit multi-token vs 3-digit single-token addition, Muon and AdamW (Fu et al. "
        "2026): trains the four settings, writes addition.png, dynamics.png, results.json",
    ),
}


def register(subparsers: Any) -> None:
    from convergent.cli.run import add_scheduling_arguments

    p = subparsers.add_parser(
        "reproduce", help="rerun a paper experiment end to end (train, analyse, figures)",
        description="Rerun one of the papers' experiments; re-running the same command "
        "resumes (finished runs and evaluations are reused).")
    p.add_argument("--preset", dest="suite", choices=["quick", "paper"], default=None,
                   help="without WHAT: run every figure of the preset as one experiment "
                   "(quick: ~15 min on 2 idle cores) and write one HTML report")
    p.add_argument("--out", dest="suite_out", type=Path, default=None,
                   help="without WHAT: output folder (default out/PRESET)")
    p.add_argument("--backend", choices=["local", "serial", "ray"], default="local",
                   help="without WHAT: where jobs run (default: a local process pool)")
    p.add_argument("--address", default=None, help="without WHAT: an existing Ray cluster")
    p.add_argument("--workers", dest="suite_workers", type=int, default=None,
                   help="without WHAT: jobs at once (default one per core)")
    add_scheduling_arguments(p)
    whats = p.add_subparsers(dest="what", metavar="WHAT", required=False)
    for name, (module, adder, _, text) in EXPERIMENTS.items():
        sub = whats.add_parser(name, help=text, description=text)
        sub.add_argument("--out", type=Path, required=True, help="output folder")
        sub.add_argument("--preset", choices=["quick", "paper"], default="quick",
                         help="quick: minutes on a CPU (default); paper: larger, GPU scale")
        sub.add_argument("--seeds", type=int, default=None,
                         help="number of seeds per setting (seeds 0..N-1)")
        sub.add_argument("--workers", type=int, default=None,
                         help="runs trained at the same time, one torch thread each "
                         "(default 2)")
        sub.add_argument("--no-progress", action="store_true")
        getattr(importlib.import_module(module), adder)(sub)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.what is None:
        return _run_suite(args)
    module, _, runner, _ = EXPERIMENTS[args.what]
    return int(getattr(importlib.import_module(module), runner)(args))


def _run_suite(args: argparse.Namespace) -> int:
    from convergent.cli.run import print_dry_run, print_summary
    from convergent.errors import ConvergentError
    from convergent.experiments.reproduce import preset_spec, run_preset

    if args.suite is None:
        raise ConvergentError("reproduce: give --preset quick|paper, or a WHAT "
                              f"({', '.join(EXPERIMENTS)})")
    if args.dry_run:
        return print_dry_run(preset_spec(args.suite), args.gpus)
    summary, report = run_preset(args.suite, args.suite_out, backend=args.backend,
                                 workers=args.suite_workers, address=args.address,
                                 gpus=args.gpus)
    print_summary(summary)
    print(f"report: {report.resolve()}")
    return 0 if summary.success else 1
