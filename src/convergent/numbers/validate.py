"""Input checks shared by the number analyses: clear errors, honest warnings."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from convergent.errors import ConvergentError


def check_numbers(numbers: Sequence[int], rows: int, name: str) -> np.ndarray:
    """Numbers must be consecutive integers, one per row (Fourier needs an even spacing)."""
    arr = np.asarray(numbers)
    if arr.ndim != 1 or arr.size != rows:
        raise ConvergentError(f"{name}: {arr.size} numbers for {rows} rows")
    if arr.size and not np.all(np.equal(np.mod(arr, 1), 0)):
        raise ConvergentError(f"{name}: numbers must be integers")
    arr = arr.astype(np.int64)
    if arr.size > 1 and not np.all(np.diff(arr) == 1):
        raise ConvergentError(
            f"{name}: numbers must be consecutive integers in increasing order "
            f"(got {arr[0]}..{arr[-1]} with gaps or repeats); Fourier analysis needs an evenly "
            "spaced range (use --contiguous for the longest contiguous range)"
        )
    return arr


def check_values(values: np.ndarray, name: str) -> tuple[np.ndarray, list[str]]:
    """Finite float64 matrix [n, d]; returns it with warnings about suspicious rows."""
    arr = np.asarray(values)
    if arr.ndim != 2:
        raise ConvergentError(
            f"{name}: expected a 2-D matrix [numbers, dim], got shape {arr.shape}"
        )
    if arr.shape[0] < 2 or arr.shape[1] < 1:
        raise ConvergentError(f"{name}: need at least 2 rows and 1 column, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number):
        raise ConvergentError(f"{name}: values are not numeric (dtype {arr.dtype})")
    arr = np.asarray(arr, dtype=np.float64)
    bad = ~np.isfinite(arr)
    if bad.any():
        rows = np.flatnonzero(bad.any(axis=1))
        raise ConvergentError(
            f"{name}: {bad.sum()} NaN or infinite value(s) in {rows.size} row(s), first at row "
            f"{rows[0]}"
        )
    warnings: list[str] = []
    spread = np.ptp(arr, axis=1)
    constant = np.flatnonzero(spread == 0)
    if constant.size and arr.shape[1] > 1:
        warnings.append(f"{name}: {constant.size} constant row(s) (e.g. row {constant[0]})")
    duplicates, example, distinct = _duplicate_rows(arr)
    if distinct == 1:
        raise ConvergentError(f"{name}: all rows are identical; nothing to analyse")
    if duplicates and arr.shape[1] > 1:  # one column (token counts): ties are expected
        warnings.append(
            f"{name}: {duplicates} duplicate row(s) "
            f"(e.g. row {example} repeats: a shared last token, or an out-of-vocabulary "
            "placeholder?)"
        )
    return arr, warnings


def _duplicate_rows(arr: np.ndarray) -> tuple[int, int, int]:
    """(rows equal to an earlier row, the first repeated row, distinct rows) by hashing each
    row's bytes: one pass, ~20x faster than ``np.unique(axis=0)`` on 1000 x 4096."""
    first_of: dict[bytes, int] = {}
    duplicates, example = 0, -1
    for i, row in enumerate(arr + 0.0):  # + 0.0 makes -0.0 equal to 0.0
        seen = first_of.setdefault(row.tobytes(), i)
        if seen != i:
            duplicates += 1
            example = seen if example < 0 else min(example, seen)
    return duplicates, example, len(first_of)


def check_folds(numbers: np.ndarray, moduli: Sequence[int], folds: int, name: str) -> None:
    """Every residue class of every modulus needs at least ``folds`` members."""
    if folds < 2:
        raise ConvergentError(f"{name}: folds must be at least 2, got {folds}")
    for modulus in moduli:
        if modulus < 2:
            raise ConvergentError(f"{name}: moduli must be at least 2, got {modulus}")
        smallest = np.bincount(np.mod(numbers, modulus), minlength=modulus).min()
        if smallest < folds:
            raise ConvergentError(
                f"{name}: too few rows for {folds}-fold probes at modulus {modulus} "
                f"(the smallest residue class has {smallest}; need {folds * modulus} numbers)"
            )
