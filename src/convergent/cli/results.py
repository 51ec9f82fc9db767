"""``convergent results SPEC|DIR``: print (and filter, export) an experiment's results table."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

METRICS = ("kappa_2", "kappa_5", "kappa_10", "phi_10", "test_exact_match", "final_loss")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "results",
        help="print and filter the results table of an experiment",
        description="Print OUT/results.parquet of an experiment folder (or of a spec's "
        "default folder). Columns that differ between rows are shown by default.",
    )
    p.add_argument("target", metavar="SPEC|DIR", help="a spec (.toml) or an experiment folder")
    p.add_argument("--filter", action="append", default=[], metavar="COL=VALUE",
                   help="keep rows where COL = VALUE (also != > < >= <= and ~ for contains); "
                   "COL may be a dotted suffix (arch for train.arch); repeatable")
    p.add_argument("--kind", choices=["numbers", "train", "addition"], default=None)
    p.add_argument("--columns", default=None,
                   help="comma-separated columns to show (suffixes allowed); 'all' for every")
    p.add_argument("--list-columns", action="store_true", help="print the column names")
    p.add_argument("--csv", type=Path, default=None, help="also write the rows to this CSV")
    p.set_defaults(func=run)


def experiment_folder(target: str) -> Path:
    from convergent.experiments import load_spec

    path = Path(target)
    if path.suffix == ".toml" and path.is_file():
        return load_spec(path).default_out()
    return path


def run(args: argparse.Namespace) -> int:
    from convergent.experiments.store import filter_table, load_table, resolve_column

    folder = experiment_folder(args.target)
    table = load_table(folder)
    if args.list_columns:
        print("\n".join(table.columns))
        return 0
    filters = list(args.filter) + ([f"kind={args.kind}"] if args.kind else [])
    rows = filter_table(table, filters)
    if args.columns == "all":
        columns = list(rows.columns)
    elif args.columns:
        columns = [resolve_column(rows, c.strip()) for c in args.columns.split(",")]
    else:
        columns = default_columns(rows)
    if args.csv:
        from convergent.io import atomic_path

        with atomic_path(args.csv) as tmp:
            rows[columns].to_csv(tmp, index=False)
    import pandas as pd

    with pd.option_context("display.max_rows", 500, "display.max_columns", 50,
                           "display.width", 200, "display.float_format", "{:.4g}".format):
        print(rows[columns].to_string(index=False) if len(rows) else "(no rows)")
    print(f"{len(rows)} of {len(table)} rows from {folder / 'results.parquet'}")
    return 0


def default_columns(rows: Any) -> list[str]:
    """Identity, the config columns that vary between rows, headline metrics, status."""
    shown = [c for c in ("kind", "analysis", "label", "site", "step") if c in rows.columns
             and rows[c].notna().any()]
    prefixes = ("train.", "task.", "split.", "numbers.", "source.spec")
    varying = [c for c in rows.columns if c.startswith(prefixes) and c != "source.run"
               and rows[c].astype(str).nunique() > 1]
    metrics = [c for c in METRICS if c in rows.columns and rows[c].notna().any()]
    return shown + varying[:8] + metrics + ["status", "seconds"]
