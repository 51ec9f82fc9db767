"""``convergent report DIR``: one self-contained HTML page of an experiment's results."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "report",
        help="write a self-contained HTML report of an experiment folder",
        description="Reads the results of DIR (written by convergent run) and writes "
        "DIR/report.html: figures embedded, tables, configs, versions, timings.",
    )
    p.add_argument("folder", type=Path, metavar="DIR|SPEC", help="experiment folder or spec")
    p.add_argument("--out", type=Path, default=None, help="HTML file (default DIR/report.html)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from convergent.cli.results import experiment_folder
    from convergent.report.html import write_report

    path = write_report(experiment_folder(str(args.folder)), args.out)
    print(f"report: {path.resolve()}")
    return 0
