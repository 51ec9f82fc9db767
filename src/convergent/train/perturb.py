"""Data perturbations from the paper, each removing one signal about numbers.

Applied per document at preparation time to the token stream (``swap``, ``unigram``) or
to how it is cut into training sequences (``isolate-K``, ``context-L``). "Number tokens"
are the tokens that are digit strings; a *number run* is a maximal stretch of consecutive
number tokens (one multi-token number such as "123","45", or a single-token number).

- ``swap`` (Swap Numbers): the number runs of each document are permuted among that
  document's run positions. Keeps every number's internal n-gram, each document's multiset
  of numbers and the marginal of number tokens; breaks the link between a number and the
  text around it. ``swap-global`` permutes runs across the whole stream (per shard).
- ``unigram`` (Unigram Replace): every number token is replaced by an independent draw
  from the corpus's empirical marginal of number tokens. Keeps only the unigram frequencies.
- ``isolate-K``: the stream is cut into segments that hold at most K number tokens and
  never cross a document end; segments are packed into rows, and attention/recurrence and
  the loss never cross a segment boundary. Removes cross-number interaction in a context.
- ``context-L``: segments are documents and rows hold L+1 tokens (the batch grows so that
  the tokens per step stay equal). Removes co-occurrence beyond L tokens.

Everything here is vectorised numpy (no Python loop per token, window or run).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from convergent.errors import ConvergentError


@dataclass(frozen=True)
class Perturbation:
    kind: str  # "none", "swap", "swap-global", "unigram", "isolate", "context"
    k: int = 0


def parse_perturbation(spec: str | None, arch: str = "transformer") -> Perturbation:
    """Parse ``None``/``swap``/``swap-global``/``unigram``/``isolate-K``/``context-L``."""
    if spec in (None, "", "none"):
        return Perturbation("none")
    if spec in ("swap", "swap-global", "unigram"):
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
        f"perturbation {spec!r}: choose swap, swap-global, unigram, isolate-K or context-L "
        "(K, L >= 1)"
    )


def number_runs(is_number: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(starts, ends) of maximal runs of True in ``is_number`` (ends exclusive)."""
    padded = np.concatenate([[False], is_number.astype(bool), [False]])
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    return edges[0::2], edges[1::2]


def ragged_arange(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """``concatenate([arange(s, s + n) for s, n in zip(starts, lengths)])``, vectorised."""
    lengths = np.asarray(lengths, dtype=np.int64)
    total = int(lengths.sum())
    first = np.cumsum(lengths) - lengths
    return np.repeat(np.asarray(starts, dtype=np.int64) - first, lengths) + np.arange(total)


def swap_numbers(stream: np.ndarray, is_number: np.ndarray, seed: int | list[int],
                 doc_starts: np.ndarray | None = None) -> np.ndarray:
    """Permute the number runs within each document (``doc_starts``; None: one document).

    Document lengths do not change, so document offsets stay valid.
    """
    starts, ends = number_runs(is_number)
    if len(starts) < 2:
        return np.array(stream, copy=True)
    group = (np.zeros(len(starts), dtype=np.int64) if doc_starts is None
             else np.searchsorted(doc_starts, starts, side="right"))
    keys = np.random.default_rng(seed).random(len(starts))
    order = np.lexsort((keys, group))  # a random permutation inside every document
    source = np.empty(2 * len(starts) + 1, dtype=np.int64)
    length = np.empty_like(source)
    source[0::2] = np.concatenate([[0], ends])  # text between runs stays in place
    length[0::2] = np.concatenate([starts, [len(stream)]]) - source[0::2]
    source[1::2], length[1::2] = starts[order], (ends - starts)[order]
    return np.asarray(stream)[ragged_arange(source, length)]


def unigram_replace(stream: np.ndarray, is_number: np.ndarray, seed: int | list[int],
                    counts: np.ndarray | None = None) -> np.ndarray:
    """Replace each number token by an i.i.d. draw from the number-token marginal
    (``counts`` per token id, e.g. of the whole corpus; None: of this stream)."""
    out = np.array(stream, copy=True)
    where = np.flatnonzero(is_number)
    if not where.size:
        return out
    rng = np.random.default_rng(seed)
    if counts is None:
        out[where] = rng.choice(out[where], size=where.size)
    else:
        ids = np.flatnonzero(counts)
        out[where] = rng.choice(ids, size=where.size, p=counts[ids] / counts[ids].sum())
    return out


def isolate_segments(is_number: np.ndarray, k: int,
                     doc_ends: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(starts, lengths) of segments holding <= ``k`` number tokens, any length.

    Segments tile the stream: each starts at the previous one's last token (so every token
    is a target once), except that a segment whose first input would be a number starts
    one later (the second of two adjacent numbers is then not a target when ``k`` is 1).
    Segments also end at every ``doc_ends`` position (the end-of-text token), and the
    number count restarts in each document.
    """
    n = len(is_number)
    positions = np.flatnonzero(is_number)
    ends_at = np.zeros(0, np.int64) if doc_ends is None else np.asarray(doc_ends, np.int64)
    doc = np.searchsorted(ends_at, positions, side="left")
    rank = np.arange(len(positions)) - np.searchsorted(doc, doc, side="left")
    cut = positions[(rank > 0) & (rank % k == 0)]  # first number of each later group
    after = np.where(is_number[cut - 1], cut, cut - 1)
    ends = np.concatenate([cut - 1, ends_at[ends_at < n - 1]])
    nexts = np.concatenate([after, ends_at[ends_at < n - 1]])
    order = np.argsort(ends, kind="stable")
    starts = np.concatenate([[0], nexts[order]])
    lengths = np.concatenate([ends[order], [n - 1]]) - starts + 1
    keep = lengths >= 2
    return starts[keep].astype(np.int64), lengths[keep].astype(np.int64)


def document_segments(n: int, doc_ends: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """(starts, lengths) of the stream cut at every end-of-text position (shared token)."""
    ends_at = np.zeros(0, np.int64) if doc_ends is None else np.asarray(doc_ends, np.int64)
    ends_at = ends_at[ends_at < n - 1]
    starts = np.concatenate([[0], ends_at])
    lengths = np.concatenate([ends_at, [n - 1]]) - starts + 1
    keep = lengths >= 2
    return starts[keep].astype(np.int64), lengths[keep].astype(np.int64)


def split_segments(starts: np.ndarray, lengths: np.ndarray,
                   length: int) -> tuple[np.ndarray, np.ndarray]:
    """Cut segments longer than ``length`` tokens into pieces sharing their edge token."""
    step = length - 1
    pieces = np.maximum(1, -(-(lengths - 1) // step))
    first = np.repeat(np.cumsum(pieces) - pieces, pieces)
    within = (np.arange(int(pieces.sum())) - first) * step
    new_starts = np.repeat(starts, pieces) + within
    new_lengths = np.minimum(length, np.repeat(lengths, pieces) - within)
    return new_starts, new_lengths


def isolate_windows(is_number: np.ndarray, length: int, k: int,
                    doc_ends: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(starts, lengths) of sequences of at most ``length`` tokens holding <= ``k`` numbers
    (:func:`isolate_segments` cut to ``length``); ``lengths`` include the final target."""
    return split_segments(*isolate_segments(is_number, k, doc_ends), length)
