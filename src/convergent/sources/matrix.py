"""Plain matrices (``.npy``, ``.safetensors``, ``.csv``) with a label per row."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from convergent.errors import ConvergentError
from convergent.representation import Representation
from convergent.sources.base import reject_options, require_embed_site
from convergent.sources.selection import parse_range


def load_matrix(path: str) -> np.ndarray:
    """Load a 2-D float matrix; ``file.safetensors#name`` picks one tensor of several."""
    file_part, _, key = path.partition("#")
    file = Path(file_part)
    if not file.is_file():
        raise ConvergentError(f"{file}: no such matrix file")
    suffix = file.suffix.lower()
    if file.stat().st_size == 0:
        raise ConvergentError(f"{file}: the file is empty")
    try:
        if suffix == ".npy":
            matrix = _load_npy(file)
        elif suffix == ".safetensors":
            matrix = _load_safetensors(file, key)
        elif suffix == ".csv":
            matrix = _load_csv(file)
        else:
            raise ConvergentError(f"{file}: matrices must be .npy, .safetensors or .csv")
    except ConvergentError:
        raise
    except Exception as err:
        raise ConvergentError(f"{file}: cannot read the matrix ({err})") from None
    if matrix.ndim != 2:
        raise ConvergentError(
            f"{file}: expected a 2-D matrix [rows, dim], got shape {matrix.shape}"
        )
    if not np.issubdtype(matrix.dtype, np.number):
        raise ConvergentError(f"{file}: the matrix is not numeric (dtype {matrix.dtype})")
    if matrix.shape[0] == 0 or matrix.shape[1] == 0:
        raise ConvergentError(f"{file}: the matrix is empty (shape {matrix.shape})")
    return np.asarray(matrix, dtype=np.float64)


def _load_npy(file: Path) -> np.ndarray:
    """A numeric ``.npy`` array; a file that is not one gets a message saying so."""
    with open(file, "rb") as handle:
        if handle.read(6) != b"\x93NUMPY":
            raise ConvergentError(f"{file}: cannot read the matrix: not a .npy file "
                                  "(no NumPy header)")
    try:
        return np.load(file, allow_pickle=False)
    except ValueError as err:
        if "pickle" in str(err) or "Object arrays" in str(err):
            raise ConvergentError(f"{file}: holds Python objects, not a numeric array") from None
        raise ConvergentError(f"{file}: a damaged .npy file ({err})") from None


def _load_csv(file: Path) -> np.ndarray:
    """Comma-separated numbers, the same count on every non-empty line (named if not)."""
    with open(file, encoding="utf-8", errors="replace") as handle:
        check_row_widths(file, handle, lambda line: line.count(",") + 1)
    return np.loadtxt(file, delimiter=",", ndmin=2)


def check_row_widths(file: Path, lines: Iterable[str], width: Callable[[str], int],
                     skip: int = 0) -> None:
    """Refuse rows (non-empty lines after the first ``skip``) of different ``width``s,
    naming the first line that differs, and a file without rows."""
    expected, first = None, 0
    for number, line in enumerate(lines, start=1):
        if number <= skip or not line.strip():
            continue
        count = width(line)
        if expected is None:
            expected, first = count, number
        elif count != expected:
            raise ConvergentError(f"{file}: line {number} holds {count} values, line "
                                  f"{first} holds {expected} (ragged rows)")
    if expected is None:
        raise ConvergentError(f"{file}: the file holds no rows")


def _load_safetensors(file: Path, key: str) -> np.ndarray:
    from safetensors import safe_open

    with safe_open(str(file), framework="numpy") as handle:
        keys = list(handle.keys())
        if not key:
            if len(keys) != 1:
                raise ConvergentError(
                    f"{file}: holds {len(keys)} tensors ({', '.join(keys[:8])}); "
                    f"pick one with {file}#NAME"
                )
            key = keys[0]
        if key not in keys:
            raise ConvergentError(f"{file}: no tensor named {key!r} (has {', '.join(keys[:8])})")
        return handle.get_tensor(key)


def parse_labels(spec: str | None, rows: int) -> list[int]:
    """Row labels: ``None`` means 0..rows-1; ``A:B`` a range; else a file of integers."""
    if spec is None:
        return list(range(rows))
    if ":" in spec and not Path(spec).exists():
        labels = list(parse_range(spec, what="--labels"))
    else:
        file = Path(spec)
        if not file.is_file():
            raise ConvergentError(f"--labels {spec}: no such file and not a range A:B")
        if file.stat().st_size == 0:
            raise ConvergentError(f"--labels {spec}: the file is empty")
        try:
            raw = _load_npy(file) if file.suffix == ".npy" else np.loadtxt(file, ndmin=1)
        except ConvergentError as err:
            raise ConvergentError(f"--labels {err}") from None
        except Exception as err:
            raise ConvergentError(f"--labels {spec}: cannot read integers ({err})") from None
        raw = np.asarray(raw).ravel()
        if raw.size and not np.all(np.equal(np.mod(raw, 1), 0)):
            raise ConvergentError(f"--labels {spec}: labels must be integers")
        labels = [int(v) for v in raw]
    if len(labels) != rows:
        raise ConvergentError(f"--labels {spec}: {len(labels)} labels for a matrix of {rows} rows")
    return labels


@dataclass
class MatrixSource:
    """A matrix whose row i stands for the number ``labels[i]``."""

    name: str
    values: np.ndarray
    labels: list[int]

    def number_representations(
        self, numbers: Sequence[int], sites: Sequence[str] = ("embed",)
    ) -> list[Representation]:
        require_embed_site(self.name, sites)
        return [
            Representation(
                self.values, tuple(self.labels), self.name, "embed", meta={"kind": "matrix"}
            )
        ]


def open_matrix(path: str, labels: str | None = None, **options: Any) -> MatrixSource:
    """``matrix:PATH`` with ``labels`` (a range ``A:B`` or a file of integers)."""
    reject_options(f"matrix:{path}", options)
    values = load_matrix(path)
    name = Path(path.partition("#")[0]).stem
    return MatrixSource(name, values, parse_labels(labels, len(values)))
