"""The currency of the toolkit: a labelled matrix of vectors from one site of one source."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from convergent.errors import ConvergentError


@dataclass(frozen=True, eq=False)
class Representation:
    """Rows of ``values`` [n, d] stand for ``labels`` (an int for numbers, a word or pair).

    ``source`` names where the vectors came from, ``site`` where in the model (``embed``,
    ``unembed``, ``layer.7``, ``final_norm``). ``token_ids`` (optional, one tuple per row)
    are the tokens a model saw for each label; analyses use them for token-identity controls.
    ``meta`` holds provenance (revision, weight hash, templates, pooling, ...).
    """

    values: np.ndarray
    labels: tuple[Any, ...]
    source: str
    site: str = "embed"
    token_ids: tuple[tuple[int, ...], ...] | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        values = np.asarray(self.values)
        if values.ndim != 2:
            raise ConvergentError(
                f"{self.source} ({self.site}): expected a 2-D matrix [n, d], "
                f"got shape {values.shape}"
            )
        if len(self.labels) != values.shape[0]:
            raise ConvergentError(
                f"{self.source} ({self.site}): {values.shape[0]} rows but {len(self.labels)} labels"
            )
        if self.token_ids is not None and len(self.token_ids) != values.shape[0]:
            raise ConvergentError(
                f"{self.source} ({self.site}): {values.shape[0]} rows but "
                f"{len(self.token_ids)} token-id entries"
            )
        object.__setattr__(self, "values", values)

    @property
    def n(self) -> int:
        return int(self.values.shape[0])

    @property
    def dim(self) -> int:
        return int(self.values.shape[1])

    @property
    def name(self) -> str:
        """``source`` alone for the input embedding, else ``source:site``."""
        return self.source if self.site == "embed" else f"{self.source}:{self.site}"

    def select(self, rows: Sequence[int] | np.ndarray) -> Representation:
        """The same representation restricted to ``rows`` (in that order)."""
        idx = np.asarray(rows, dtype=np.int64)
        return Representation(
            values=self.values[idx],
            labels=tuple(self.labels[i] for i in idx),
            source=self.source,
            site=self.site,
            token_ids=None if self.token_ids is None else tuple(self.token_ids[i] for i in idx),
            meta=dict(self.meta),
        )
