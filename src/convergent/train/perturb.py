"""Data perturbations from the paper, each removing one signal about numbers.

Applied to the token stream (``swap``, ``unigram``) or to how it is cut into training
sequences (``isolate-K``, ``context-L``). "Number tokens" are the tokens that are digit
strings; a *number run* is a maximal stretch of consecutive number tokens (one multi-token
number such as "123","45", or a single-token number).

- ``swap`` (Swap Numbers): the number runs are permuted among the run positions. Keeps
  every number's internal n-gram and the marginal of number tokens; breaks the link
  between a number and the text around it.
- ``unigram`` (Unigram Replace): every number token is replaced by an independent draw
  from the empirical marginal of number tokens. Keeps only the unigram frequencies.
- ``isolate-K``: training sequences are cut so that none holds more than K number
  tokens (a sequence ends before its (K+1)-th number; the rest is padding, not trained
  on). Removes cross-number interaction within a context.
- ``context-L``: training sequences of L tokens (the batch grows so that the tokens per
  step stay equal). Removes long-range co-occurrence.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from convergent.errors import ConvergentError


@dataclass(frozen=True)
class Perturbation:
    kind: str  # "none", "swap", "unigram", "isolate", "context"
    k: int = 0


def parse_perturbation(spec: str | None, arch: str = "transformer") -> Perturbation:
    """Parse ``None``/``swap``/``unigram``/``isolate-K``/``context-L``."""
    if spec in (None, "", "none"):
        return Perturbation("none")
    if spec in ("swap", "unigram"):
        return Perturbation(spec)
    kind, _, number = spec.partition("-")
    if kind in ("isolate", "context") and number.isdigit() and int(number) >= 1:
        if arch in ("word2vec", "ppmi"):
            raise ConvergentError(
                f"perturbation {spec!r} changes training sequences and does not apply to {arch}"
                " (use swap or unigram)"
            )
        return Perturbation(kind, int(number))
    raise ConvergentError(
        f"perturbation {spec!r}: choose swap, unigram, isolate-K or context-L (K, L >= 1)"
    )


def number_runs(is_number: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(starts, ends) of maximal runs of True in ``is_number`` (ends exclusive)."""
    padded = np.concatenate([[False], is_number.astype(bool), [False]])
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    return edges[0::2], edges[1::2]


def swap_numbers(stream: np.ndarray, is_number: np.ndarray, seed: int) -> np.ndarray:
    """Permute the number runs among their positions (see module docstring)."""
    starts, ends = number_runs(is_number)
    if len(starts) < 2:
        return stream.copy()
    order = np.random.default_rng(seed).permutation(len(starts))
    pieces: list[np.ndarray] = []
    previous = 0
    for slot, source in enumerate(order):
        pieces.append(stream[previous:starts[slot]])
        pieces.append(stream[starts[source]:ends[source]])
        previous = ends[slot]
    pieces.append(stream[previous:])
    return np.concatenate(pieces).astype(stream.dtype)


def unigram_replace(stream: np.ndarray, is_number: np.ndarray, seed: int) -> np.ndarray:
    """Replace each number token by an i.i.d. draw from the number-token marginal."""
    out = stream.copy()
    where = np.flatnonzero(is_number)
    if where.size:
        out[where] = np.random.default_rng(seed).choice(stream[where], size=where.size)
    return out


def isolate_windows(is_number: np.ndarray, length: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(starts, lengths) of sequences of at most ``length`` tokens holding <= ``k`` numbers.

    Sequences tile the stream (each starts at the previous one's last token, so every token
    is a target once, except the second of two adjacent number tokens when ``k`` is 1 for
    lack of room); ``lengths`` count tokens including the final target.
    A plain loop over windows with a binary search for numbers: O(#windows log #numbers).
    """
    n = len(is_number)
    positions = np.flatnonzero(is_number)
    starts, lengths = [], []
    start, pointer = 0, 0
    while start < n - 1:
        pointer = int(np.searchsorted(positions, start, side="left"))
        stop = min(start + length, n)  # exclusive end of the tokens in this sequence
        if pointer + k < len(positions) and positions[pointer + k] < stop:
            stop = int(positions[pointer + k])  # the (k+1)-th number starts the next one
        if stop - start < 2:  # two adjacent numbers: the second is never a target here
            start += 1
            continue
        starts.append(start)
        lengths.append(stop - start)
        start = stop - 1
    return np.asarray(starts, dtype=np.int64), np.asarray(lengths, dtype=np.int64)
