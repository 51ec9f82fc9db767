"""The simulation's metrics on a real LM's unembedding, with concept word pairs.

A concept is a list of (base, target) word pairs (``"bad" -> "worse"`` for comparative).
Pairs are kept only if both words are single tokens: the token ``"Ġ" + word`` (the
byte-level BPE form of a word after a space, preferred) or the bare ``word``. The
unembedding rows of those tokens give the same within-concept cosine and Euclidean / causal
between-concept cosines as the simulation (Park et al. 2024); the alignment and probe metrics
need contexts and are not measured here. A shuffled-pairs baseline (targets permuted within
the concept) shows how much of the parallelism a shared target class alone explains.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from convergent.errors import ConvergentError
from convergent.origins.metrics import ConceptGeometry, concept_geometry, within_cosine

SPACE_MARKER = "Ġ"
MIN_PAIRS = 2  # a concept needs two pairs for a within-concept cosine

Pairs = Mapping[str, Sequence[tuple[str, str]]]


@dataclass(frozen=True, eq=False)
class LMConceptResult:
    """Concept geometry of one LM unembedding: kept / dropped pairs and the metrics."""

    source: str
    vocabulary_size: int
    dim: int
    kept: dict[str, int]
    dropped: dict[str, int]
    geometry: ConceptGeometry
    within_shuffled: np.ndarray
    seed: int
    meta: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        geo = self.geometry.to_dict()
        for key in ("alignment_euclid", "alignment_causal", "probe"):
            geo.pop(key)
        for key in ("alignment_euclid_mean", "alignment_causal_mean", "probe_mean"):
            geo["summary"].pop(key)
        geo["summary"]["within_shuffled_mean"] = float(np.nanmean(self.within_shuffled))
        return {
            "kind": "origins-lm",
            "source": self.source,
            "vocabulary_size": self.vocabulary_size,
            "dim": self.dim,
            "pairs_kept": self.kept,
            "pairs_dropped": self.dropped,
            "within_shuffled": self.within_shuffled.tolist(),
            "seed": self.seed,
            "meta": self.meta,
            **geo,
        }


def single_token_rows(token_strings: Sequence[str]) -> dict[str, int]:
    """word -> row for every single-token word (``Ġword`` preferred over ``word``)."""
    rows: dict[str, int] = {}
    for row, tok in enumerate(token_strings):
        if tok.startswith(SPACE_MARKER) and len(tok) > 1:
            rows[tok[1:]] = row
    for row, tok in enumerate(token_strings):
        rows.setdefault(tok, row)
    return rows


def concept_token_pairs(
    token_strings: Sequence[str], pairs: Pairs, source: str = "lm"
) -> tuple[list[str], list[tuple[np.ndarray, np.ndarray]], dict[str, int], dict[str, int]]:
    """(concepts, (base rows, target rows) per concept, kept, dropped) for single-token pairs.

    Concepts with fewer than ``MIN_PAIRS`` kept pairs are left out; fewer than two concepts
    left is an error.
    """
    rows = single_token_rows(token_strings)
    names, token_pairs, kept, dropped = [], [], {}, {}
    for concept, concept_pairs in pairs.items():
        found = {
            (rows[b], rows[t])
            for b, t in concept_pairs
            if b in rows and t in rows and rows[b] != rows[t]
        }
        unique = {(b, t) for b, t in concept_pairs}
        kept[concept], dropped[concept] = len(found), len(unique) - len(found)
        if len(found) >= MIN_PAIRS:
            ordered = sorted(found)
            names.append(concept)
            token_pairs.append(
                (np.array([b for b, _ in ordered]), np.array([t for _, t in ordered]))
            )
    if len(names) < 2:
        raise ConvergentError(
            f"{source}: fewer than two concepts have {MIN_PAIRS} single-token pairs "
            f"(kept per concept: {kept})"
        )
    return names, token_pairs, kept, dropped


def lm_concept_geometry(
    unembedding: np.ndarray,
    token_strings: Sequence[str],
    pairs: Pairs,
    *,
    source: str = "lm",
    seed: int = 0,
    meta: Mapping[str, Any] | None = None,
) -> LMConceptResult:
    """Measure concept pairs on an unembedding [V, d] whose rows are ``token_strings``."""
    g = np.asarray(unembedding)
    if g.ndim != 2 or g.shape[0] != len(token_strings):
        raise ConvergentError(
            f"{source}: unembedding of shape {g.shape} does not match "
            f"{len(token_strings)} token strings"
        )
    names, token_pairs, kept, dropped = concept_token_pairs(token_strings, pairs, source)
    geometry = concept_geometry(g, token_pairs, tuple(names), seed=seed)
    rng = np.random.default_rng(seed)
    shuffled = np.array(
        [within_cosine(g[rng.permutation(t)] - g[b]) for b, t in token_pairs], dtype=np.float64
    )
    return LMConceptResult(
        source=source,
        vocabulary_size=int(g.shape[0]),
        dim=int(g.shape[1]),
        kept=kept,
        dropped=dropped,
        geometry=geometry,
        within_shuffled=shuffled,
        seed=seed,
        meta=dict(meta or {}),
    )


def concept_pairs(spec: str = "google-analogy") -> dict[str, list[tuple[str, str]]]:
    """Concept -> (base, target) pairs: ``google-analogy`` (gensim's questions-words.txt) or a
    pairs file, through the shared loader :func:`convergent.linearity.pairs.load_pairs`."""
    from convergent.linearity.pairs import load_pairs

    return {name: list(pairs) for name, pairs in load_pairs(spec).relations.items()}


def open_unembedding(spec: str) -> tuple[np.ndarray, list[str], str]:
    """(unembedding [V, d], token strings, source name) of a source that has one."""
    from convergent.sources import open_source

    try:
        source = open_source(spec)
    except ConvergentError as err:
        raise ConvergentError(f"--compare-lm {spec}: {err}") from None
    if not hasattr(source, "unembedding"):
        raise ConvergentError(
            f"--compare-lm {spec}: this source has no output embedding (use a language "
            "model: hf:DIR, smollm2-135m)"
        )
    values, tokens = source.unembedding()
    return np.asarray(values), list(tokens), str(getattr(source, "name", spec))
