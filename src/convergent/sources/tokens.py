"""The data's own signal as sources: ``tokens:X`` (number-token counts) and ``cooc:X``.

``X`` is a run folder, a prepared-data folder or a corpus spec
(:mod:`convergent.sources.token_stream`). A number n is a *number token* when its canonical
decimal string is one token of the stream's tokenizer
(:func:`convergent.train.tokenize.number_token_ids`); numbers that are not are left out, so
``require_numbers`` names them.

- ``tokens:X`` is the paper's "Token Dist." row: a one-dimensional e(n) from the number of
  times n's token occurs in the stream (end-of-text tokens excluded), counted chunk by chunk
  over the memmap. ``transform``: ``log`` (default, log(1 + count)), ``count`` or
  ``frequency`` (count / tokens in the stream). Log counts are the default because they fit
  the paper's reported S_B: at T = 10 its Token Dist. row has Phi_10 = 94 and
  lambda_max = 0.046, i.e. Tr(S_B) = 0.094 and S_W ~ 2.0, a variance log counts have and
  raw counts or frequencies (variances of order 10^6 or 10^-8) do not.
- ``cooc:X`` is the number-by-context co-occurrence: the rows of the number tokens in the
  PPMI matrix of the stream (symmetric ``window`` counts within documents, counted by
  :func:`convergent.train.ppmi.cooccurrence_stream`; PPMI with context smoothing ``alpha``
  by :func:`convergent.train.ppmi.ppmi_matrix`, as the PPMI baseline does before its SVD).
  Contexts are every token occurring at least ``min_count`` times. By default the exact
  rows are kept, restricted to the contexts that co-occur with a requested number (the rest
  are zero columns, which change no analysis); ``dim`` > 0 keeps the rows' best rank-``dim``
  approximation instead (truncated SVD of the number rows, in its coordinates X V).

Options can also be written into the spec, for the command line:
``tokens:bundled,transform=count`` or ``cooc:bundled,window=2,dim=100``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from convergent.errors import ConvergentError
from convergent.provenance import array_hash
from convergent.representation import Representation
from convergent.sources.token_stream import CORPUS_OPTIONS, TokenStream, open_token_stream

TRANSFORMS = ("log", "count", "frequency")
TOKENS_OPTIONS = {"transform": str}
COOC_OPTIONS = {"window": int, "alpha": float, "min_count": int, "dim": int}
STREAM_OPTIONS = {name: str if name == "tokenizer" else int for name in CORPUS_OPTIONS}
COOC_DEFAULTS = {"window": 5, "alpha": 0.75, "min_count": 1, "dim": 0}


def split_options(prefix: str, spec: str, allowed: dict[str, type],
                  options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(X, options) from ``X,key=value,...``; keyword ``options`` join the inline ones."""
    inline: dict[str, Any] = {}
    head = spec
    while "," in head:
        rest, _, last = head.rpartition(",")
        key, eq, value = last.partition("=")
        if not eq or key not in allowed:
            break
        try:
            inline[key] = allowed[key](value)
        except ValueError:
            raise ConvergentError(
                f"{prefix}:{spec}: option {key} must be {allowed[key].__name__}, got {value!r}"
            ) from None
        head = rest
    given = {k: v for k, v in options.items() if v is not None}
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        raise ConvergentError(
            f"{prefix}:{spec}: option(s) {', '.join(unknown)} do not apply to this source "
            f"(options: {', '.join(allowed)})")
    both = sorted(set(given) & set(inline))
    if both:
        raise ConvergentError(f"{prefix}:{spec}: option(s) {', '.join(both)} given twice")
    if not head:
        raise ConvergentError(f"{prefix}:{spec}: name a run, a prepared-data folder or a corpus")
    return head, {**inline, **given}


def _only_embed(name: str, sites: Sequence[str]) -> None:
    bad = [s for s in sites if s != "embed"]
    if bad:
        raise ConvergentError(
            f"{name}: a token stream has one representation, site 'embed', not {', '.join(bad)}")


def number_counts(data: TokenStream, numbers: Sequence[int]) -> tuple[list[int], np.ndarray,
                                                                        np.ndarray, int]:
    """(the requested numbers that are single tokens, their token ids, counts per token id,
    tokens in the stream), counted chunk by chunk (end-of-text excluded)."""
    from convergent.train.token_chunks import scan
    from convergent.train.tokenize import number_token_ids

    ids = number_token_ids(data.tokenizer, numbers)
    kept = [n for n in numbers if n in ids]
    stats = scan(data.stream, data.eos)
    counts = np.zeros(max(len(stats.counts), data.tokenizer.get_vocab_size()), dtype=np.int64)
    counts[:len(stats.counts)] = stats.counts
    return kept, np.asarray([ids[n] for n in kept], dtype=np.int64), counts, stats.tokens


def check_transform(name: str, transform: str) -> str:
    if transform not in TRANSFORMS:
        raise ConvergentError(
            f"{name}: transform {transform!r}: choose one of {', '.join(TRANSFORMS)}")
    return transform


def transform_counts(counts: np.ndarray, total: int, transform: str) -> np.ndarray:
    """``log`` = log(1 + count), ``count`` as is, ``frequency`` = count / total (float64)."""
    counts = np.asarray(counts, dtype=np.float64)
    if transform == "log":
        return np.log1p(counts)
    if transform == "count":
        return counts
    if transform == "frequency":
        return counts / max(total, 1)
    raise ConvergentError(f"transform {transform!r}: choose one of {', '.join(TRANSFORMS)}")


def _label(prefix: str, data: TokenStream, extra: dict[str, Any]) -> str:
    shown = ",".join(f"{k}={v}" for k, v in sorted(extra.items()))
    return f"{prefix}:{data.label}" + (f",{shown}" if shown else "")


@dataclass
class TokenCountSource:
    """``tokens:X``: e(n) = transform(count of n's token in the stream), one column."""

    data: TokenStream
    transform: str = "log"
    name: str = field(init=False)

    def __post_init__(self) -> None:
        check_transform(f"tokens:{self.data.label}", self.transform)
        extra = {} if self.transform == "log" else {"transform": self.transform}
        self.name = _label("tokens", self.data, extra)

    def number_representations(
        self, numbers: Sequence[int], sites: Sequence[str] = ("embed",)
    ) -> list[Representation]:
        _only_embed(self.name, sites)
        kept, number_ids, counts, total = number_counts(self.data, numbers)
        raw = counts[number_ids]
        values = transform_counts(raw, total, self.transform)[:, None]
        meta = {**self.data.meta, "kind": "tokens", "transform": self.transform,
                "stream_tokens": total, "number_tokens": int(raw.sum()),
                "zero_counts": int(np.sum(raw == 0)), "counts_sha": array_hash(raw)}
        return [Representation(values, tuple(kept), self.name, "embed", meta=meta)]


@dataclass
class CoocSource:
    """``cooc:X``: the PPMI rows of the number tokens over the stream's contexts."""

    data: TokenStream
    window: int = 5
    alpha: float = 0.75
    min_count: int = 1
    dim: int = 0
    seed: int = 0
    name: str = field(init=False)

    def __post_init__(self) -> None:
        if self.window < 1 or self.min_count < 1 or self.dim < 0:
            raise ConvergentError(
                f"cooc:{self.data.label}: window and min_count must be >= 1 and dim >= 0")
        if not 0 < self.alpha <= 1:
            raise ConvergentError(f"cooc:{self.data.label}: alpha must be in (0, 1]")
        given = {"window": self.window, "alpha": self.alpha, "min_count": self.min_count,
                 "dim": self.dim}
        self.name = _label("cooc", self.data,
                           {k: v for k, v in given.items() if v != COOC_DEFAULTS[k]})

    def number_representations(
        self, numbers: Sequence[int], sites: Sequence[str] = ("embed",)
    ) -> list[Representation]:
        from convergent.train.ppmi import cooccurrence_stream, ppmi_matrix

        _only_embed(self.name, sites)
        kept, number_ids, counts, total = number_counts(self.data, numbers)
        contexts = np.flatnonzero(counts >= self.min_count)
        vocab = np.union1d(contexts, number_ids)
        if self.data.eos is not None:
            vocab = vocab[vocab != self.data.eos]
        if not kept:
            return [Representation(np.zeros((0, 1)), (), self.name, "embed")]
        if len(vocab) < 2:
            raise ConvergentError(f"{self.name}: the stream has fewer than 2 context tokens")
        ppmi = ppmi_matrix(cooccurrence_stream(self.data.stream, self.data.eos, vocab,
                                               self.window), self.alpha)
        rows = ppmi[np.searchsorted(vocab, number_ids)]
        used = np.unique(rows.indices)
        if not len(used):
            raise ConvergentError(f"{self.name}: no requested number co-occurs with anything")
        values = self._reduce(rows[:, used])
        meta = {**self.data.meta, "kind": "cooc", "window": self.window, "alpha": self.alpha,
                "min_count": self.min_count, "dim": self.dim, "contexts": len(vocab),
                "contexts_used": len(used), "stream_tokens": total,
                "rows_sha": array_hash(values)}
        return [Representation(values, tuple(kept), self.name, "embed", meta=meta)]

    def _reduce(self, rows: Any) -> np.ndarray:
        """The exact rows (dense), or with ``dim`` their truncated-SVD coordinates U S."""
        if not self.dim or self.dim >= min(rows.shape) - 1:
            return rows.toarray()
        from scipy.sparse.linalg import svds

        u, s, _ = svds(rows.astype(np.float64), k=self.dim, random_state=self.seed)
        order = np.argsort(-s)
        u, s = u[:, order], s[order]
        signs = np.sign(u[np.argmax(np.abs(u), axis=0), np.arange(u.shape[1])])
        return u * signs * s


def open_tokens(spec: str, **options: Any) -> TokenCountSource:
    """``tokens:X[,transform=log|count|frequency][,tokenizer=..,vocab_size=..]``."""
    head, opts = split_options("tokens", spec, {**TOKENS_OPTIONS, **STREAM_OPTIONS}, options)
    transform = check_transform(f"tokens:{spec}", opts.pop("transform", "log"))
    return TokenCountSource(open_token_stream(head, **opts), transform)


def open_cooc(spec: str, **options: Any) -> CoocSource:
    """``cooc:X[,window=5,alpha=0.75,min_count=1,dim=0][,tokenizer=..,vocab_size=..]``."""
    head, opts = split_options("cooc", spec, {**COOC_OPTIONS, **STREAM_OPTIONS}, options)
    settings = {k: opts.pop(k) for k in list(opts) if k in COOC_OPTIONS}
    return CoocSource(open_token_stream(head, **opts), **settings)
