"""Choosing numbers: parse ``A:B`` ranges and demand (or repair) an evenly spaced set."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from convergent.errors import ConvergentError
from convergent.representation import Representation


def parse_range(text: str, what: str = "--numbers") -> range:
    """``"A:B"`` is the half-open integer range A..B-1 (Python's convention): 0:1000 = 0..999."""
    parts = text.split(":")
    try:
        if len(parts) != 2:
            raise ValueError
        start, stop = int(parts[0]), int(parts[1])
    except ValueError:
        raise ConvergentError(f"{what} {text!r}: expected A:B with integers, e.g. 0:1000") from None
    if stop <= start:
        raise ConvergentError(f"{what} {text!r}: the range is empty (B must exceed A)")
    return range(start, stop)


def longest_contiguous_run(numbers: Sequence[int]) -> tuple[int, int]:
    """(first, last) of the longest run of consecutive integers among ``numbers``."""
    values = np.unique(np.asarray(numbers, dtype=np.int64))
    if values.size == 0:
        raise ConvergentError("no numbers to choose from")
    breaks = np.flatnonzero(np.diff(values) != 1)
    starts = np.concatenate([[0], breaks + 1])
    ends = np.concatenate([breaks, [values.size - 1]])
    best = int(np.argmax(ends - starts))
    return int(values[starts[best]]), int(values[ends[best]])


def _describe(missing: Sequence[int], limit: int = 12) -> str:
    shown = ", ".join(str(m) for m in missing[:limit])
    return shown + (f", ... ({len(missing)} in all)" if len(missing) > limit else "")


def require_numbers(
    rep: Representation, requested: Sequence[int], contiguous: bool = False
) -> Representation:
    """Rows of ``rep`` for ``requested`` numbers, in order; the set must be evenly spaced.

    A requested number that ``rep`` lacks is an error naming the missing ones, unless
    ``contiguous`` is set: then the longest run of consecutive requested numbers present
    is used instead.
    """
    row_of = {}
    for i, label in enumerate(rep.labels):
        if label in row_of:
            raise ConvergentError(f"{rep.name}: the number {label} labels more than one row")
        row_of[label] = i
    wanted = list(requested)
    missing = [n for n in wanted if n not in row_of]
    if missing and not contiguous:
        raise ConvergentError(
            f"{rep.name}: {len(missing)} requested number(s) missing from its vocabulary: "
            f"{_describe(missing)} (use --contiguous to take the longest contiguous range)"
        )
    if missing:
        present = [n for n in wanted if n in row_of]
        if not present:
            raise ConvergentError(f"{rep.name}: none of the requested numbers are present")
        first, last = longest_contiguous_run(present)
        wanted = list(range(first, last + 1))
    return rep.select([row_of[n] for n in wanted])
