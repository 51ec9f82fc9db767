"""``convergent run SPEC``: run an experiment spec (skips finished jobs, resumes killed ones)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from convergent.cli._checks import at_least


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "run",
        help="run a TOML experiment spec (training grids and analyses) locally or on Ray",
        description="Run every job of SPEC that is not finished yet; finished jobs are "
        "recognised by the content hash of their config, so re-running resumes. Writes "
        "OUT/results.parquet (see convergent results) and job folders under OUT/jobs. "
        "One runner per folder; Ctrl-C or SIGTERM stops the workers within seconds and keeps "
        "every finished job, and the workers die with the runner even on SIGKILL.",
    )
    p.add_argument("spec", type=Path, metavar="SPEC", help="experiment spec (.toml)")
    p.add_argument("--out", type=Path, default=None, help="output folder (default out/NAME)")
    p.add_argument("--backend", choices=["local", "serial", "ray"], default="local",
                   help="local: a process pool sized to the cores (default); serial: this "
                   "process; ray: a Ray cluster")
    p.add_argument("--workers", type=at_least(1), default=None,
                   help="CPU jobs at once (local: default one per core; GPU jobs are bounded by "
                   "the GPUs)")
    p.add_argument("--address", default=None,
                   help="ray: address of an existing cluster (default: start a local one)")
    add_scheduling_arguments(p)
    p.add_argument("--report", action="store_true", help="write OUT/report.html at the end")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def add_scheduling_arguments(p: argparse.ArgumentParser) -> None:
    """``--gpus`` and ``--dry-run`` (shared with ``convergent reproduce``)."""
    p.add_argument("--gpus", type=at_least(0), default=None,
                   help="GPUs to hand out (local backend, or a local Ray cluster; default: "
                   "the visible ones, CUDA_VISIBLE_DEVICES or all)")
    p.add_argument("--dry-run", action="store_true",
                   help="print each job with its devices, token budget, parameters and "
                   "memory per device, and the GPU-hours; run and write nothing")


def print_dry_run(spec: Any, gpus: int | None) -> int:
    """Print the plan of ``spec`` placed for ``gpus``; refuse (exit 2) what cannot fit."""
    from convergent.experiments.dryrun import dry_run, format_estimate
    from convergent.experiments.runner import check_resources

    the_plan, estimate = dry_run(spec, gpus)
    print(format_estimate(estimate))
    check_resources(the_plan, estimate.visible_gpus, "this machine")
    return 0


def run(args: argparse.Namespace) -> int:
    from convergent.experiments import load_spec, run_experiment

    spec = load_spec(args.spec)
    if args.dry_run:
        return print_dry_run(spec, args.gpus)
    summary = run_experiment(spec, args.out, backend=args.backend, workers=args.workers,
                             address=args.address, progress=not args.no_progress,
                             gpus=args.gpus)
    print_summary(summary)
    if args.report:
        from convergent.report.html import write_report

        print(f"report: {write_report(summary.out)}")
    return 0 if summary.success else 1


def print_summary(summary: Any) -> None:
    ran = summary.ok + len(summary.failed)
    print(f"{summary.total} jobs: {summary.skipped} already done, {ran} ran "
          f"({summary.ok} ok, {len(summary.failed)} failed), {len(summary.blocked)} blocked; "
          f"{summary.seconds:.1f} s on {summary.backend}")
    for record in summary.failed:
        print(f"  failed  {record['label']}: {record.get('error')}")
    for label in summary.blocked:
        print(f"  blocked {label} (needs a failed job)")
    print(f"results: {summary.table}  (convergent results {summary.out})")
