"""The ``convergent`` command. Each verb lives in its own module of this package.

A verb module defines ``register(subparsers)``, which adds its parser and sets
``func=run`` with ``run(args) -> int``. Modules are discovered, so adding a verb is adding a
file. Verbs stay thin: parse, call the library, write.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

from convergent.cli._checks import OneLineParser, join_negative_values
from convergent.errors import ConvergentError


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="convergent",
        description="Do different language models learn the same representations, and why?",
    )
    parser.add_argument("--version", action="version", version=f"convergent {_version()}")
    subparsers = parser.add_subparsers(dest="verb", metavar="VERB")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(subparsers)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("convergent")
    except PackageNotFoundError:  # a source tree that is not installed
        return "unknown"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(join_negative_values(sys.argv[1:] if argv is None else argv))
    except SystemExit as stop:  # --help, --version, or a one-line usage error (exit 2)
        return stop.code if isinstance(stop.code, int) else 2
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except ConvergentError as err:
        print(f"convergent: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a file as --out, a read-only folder, a full disk: one line
        print(f"convergent: error: {describe_os_error(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("convergent: interrupted; finished work is kept and resumes", file=sys.stderr)
        return 130


def describe_os_error(err: OSError) -> str:
    """One line naming the path and the system's reason (no traceback)."""
    reason = err.strerror or str(err) or type(err).__name__
    paths = [str(p) for p in (err.filename, err.filename2) if p is not None]
    return f"{' -> '.join(paths)}: {reason}" if paths else reason


if __name__ == "__main__":
    sys.exit(main())
