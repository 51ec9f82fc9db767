"""Checks every verb makes before any model loads or compute starts.

Argument types for counts (``--folds 0`` and ``--permutations=-5`` are refused by the
parser), a one-line argparse error, range values that begin with a minus sign, and site
names checked by their spelling before a model is opened.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

# options whose value is a range A:B or a number list, so "-5:20" is a value, not a flag
VALUE_OPTIONS = ("--numbers", "--labels", "--moduli", "--reveal", "--dims")
_NEGATIVE_VALUE = re.compile(r"^-\d[\d.,:-]*$")


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr (exit 2), not usage + error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def join_negative_values(argv: Sequence[str]) -> list[str]:
    """``--numbers -5:20`` -> ``--numbers=-5:20`` (argparse takes ``-5:20`` for a flag)."""
    out: list[str] = []
    items = list(argv)
    i = 0
    while i < len(items):
        item = items[i]
        if item in VALUE_OPTIONS and i + 1 < len(items) and _NEGATIVE_VALUE.match(items[i + 1]):
            out.append(f"{item}={items[i + 1]}")
            i += 2
            continue
        out.append(item)
        i += 1
    return out


def at_least(low: int) -> Callable[[str], int]:
    """An argparse ``type`` for integers >= ``low``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{value} is below the least allowed, {low}")
        return value

    parse.__name__ = f"integer >= {low}"
    return parse


def non_negative_float(text: str) -> float:
    """An argparse ``type`` for finite floats >= 0."""
    import math

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text} must be a finite number >= 0")
    return value


positive = at_least(1)
non_negative = at_least(0)


def check_site_names(raw: Sequence[str] | None) -> None:
    """Refuse misspelt sites (``bogus``, ``layer:-1``) before any model is opened.

    Whether the model has the site (enough layers, an unembedding) is checked when it loads.
    """
    from convergent.extract.sites import parse_sites

    for text in raw or ():
        for item in (p.strip() for p in str(text).split(",")):
            if item and item not in ("layer:all", "layer.all"):
                parse_sites([item], n_layers=sys.maxsize)


def check_out(out: str | os.PathLike[str], flag: str = "--out") -> None:
    """Refuse an output that is a file, or a folder (or its nearest existing parent) that
    this user cannot write, before any work starts."""
    from pathlib import Path

    from convergent.errors import ConvergentError

    path = Path(out)
    if path.exists() and not path.is_dir():
        raise ConvergentError(f"{flag} {path}: not a folder")
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ConvergentError(f"{flag} {path}: {existing} is not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConvergentError(f"{flag} {path}: {existing} is not writable")
    import tempfile

    try:  # os.access says yes to root even on a read-only file system: try it
        os.rmdir(tempfile.mkdtemp(prefix=".convergent-probe-", dir=existing))
    except OSError as err:
        raise ConvergentError(f"{flag} {path}: cannot write in {existing} "
                              f"({err.strerror or err})") from None
