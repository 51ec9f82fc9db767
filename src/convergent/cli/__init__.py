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

from convergent.errors import ConvergentError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
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
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except ConvergentError as err:
        print(f"convergent: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("convergent: interrupted; finished work is kept and resumes", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
