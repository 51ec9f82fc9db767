"""Geometry of concept representations: parallelism, orthogonality, alignment, probes.

Pure numpy, no model. Vocabulary: a *pair* (base, target) of tokens differs in one concept;
its *difference* is g(target) - g(base). A concept's *direction* is the normalized mean of
its differences (Park et al. 2024). The *causal inner product* is <u, v>_C = u^T Cov(g)^+ v
with Cov over the unembedding rows (uniform over the vocabulary); we apply it by whitening,
g -> Cov^{-1/2} g (and f -> Cov^{1/2} f on the context side, so f^T g is unchanged on the
range of Cov). Directions with no component in that range are left out (NaN).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from convergent.errors import ConvergentError

_EPS = 1e-12


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length; zero rows become NaN."""
    x = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norms > _EPS, x / norms, np.nan)


def within_cosine(differences: np.ndarray) -> float:
    """Mean cosine over all pairs of distinct difference vectors [k, d] (1 = parallel).

    Computed as (|sum u|^2 - k) / (k (k - 1)) for unit rows u, O(k d) instead of O(k^2 d).
    """
    u = unit_rows(differences)
    u = u[~np.isnan(u).any(axis=1)]
    k = u.shape[0]
    if k < 2:
        return float("nan")
    total = u.sum(axis=0)
    return float((total @ total - k) / (k * (k - 1)))


def direction(differences: np.ndarray) -> np.ndarray:
    """Unit vector along the mean difference (NaN if the mean is zero)."""
    return unit_rows(np.asarray(differences, dtype=np.float64).mean(axis=0))


def cosine_matrix(directions: np.ndarray) -> np.ndarray:
    """[k, k] cosines between rows (NaN rows give NaN entries)."""
    u = unit_rows(directions)
    return u @ u.T


def mean_abs_offdiagonal(matrix: np.ndarray) -> float:
    """Mean |entry| off the diagonal, ignoring NaN (0 = all orthogonal)."""
    k = matrix.shape[0]
    if k < 2:
        return float("nan")
    values = np.abs(matrix[~np.eye(k, dtype=bool)])
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else float("nan")


@dataclass(frozen=True, eq=False)
class Whitening:
    """Cov(g)^{∓1/2} on its range: ``unembed(v)`` whitens unembedding-side vectors,
    ``embed(v)`` maps context-side vectors so that embed(f) . unembed(g) = f . P g with P the
    projection onto the range of Cov. ``rank`` = number of eigenvalues kept."""

    basis: np.ndarray
    eigenvalues: np.ndarray

    @property
    def rank(self) -> int:
        return int(self.eigenvalues.shape[0])

    def unembed(self, vectors: np.ndarray) -> np.ndarray:
        return (np.asarray(vectors, dtype=np.float64) @ self.basis) / np.sqrt(self.eigenvalues)

    def embed(self, vectors: np.ndarray) -> np.ndarray:
        return (np.asarray(vectors, dtype=np.float64) @ self.basis) * np.sqrt(self.eigenvalues)


def causal_whitening(unembedding: np.ndarray, rtol: float = 1e-8) -> Whitening:
    """Whitening by the covariance of the unembedding rows (eigenvalues below rtol·max dropped)."""
    g = np.asarray(unembedding, dtype=np.float64)
    if g.ndim != 2 or g.shape[0] < 2:
        raise ConvergentError(f"unembedding: expected a matrix [V >= 2, d], got {g.shape}")
    cov = np.cov(g, rowvar=False, bias=True).reshape(g.shape[1], g.shape[1])
    values, vectors = np.linalg.eigh(cov)
    top = max(float(values.max()), 0.0)
    keep = values > rtol * top if top > 0 else np.zeros_like(values, dtype=bool)
    return Whitening(basis=vectors[:, keep], eigenvalues=values[keep])


@dataclass(frozen=True, eq=False)
class ConceptGeometry:
    """Per-concept measurements of one set of representations (arrays indexed by concept).

    ``within``: mean pairwise cosine of a concept's differences; ``between_euclid`` /
    ``between_causal``: cosines of concept directions [m, m] under each inner product;
    ``alignment_*``: cosine of the context-side and unembedding-side directions (NaN if no
    context side); ``probe``: held-out linear-probe accuracy of the concept from f(x) (NaN if
    not measured); ``causal_rank``: rank of Cov(g) used by the causal inner product.
    """

    names: tuple[str, ...]
    within: np.ndarray
    between_euclid: np.ndarray
    between_causal: np.ndarray
    alignment_euclid: np.ndarray
    alignment_causal: np.ndarray
    probe: np.ndarray
    causal_rank: int

    def summary(self) -> dict[str, float]:
        """Scalar summaries: means over concepts (NaN-aware)."""
        return {
            "within_mean": _nanmean(self.within),
            "between_euclid_mean_abs": mean_abs_offdiagonal(self.between_euclid),
            "between_causal_mean_abs": mean_abs_offdiagonal(self.between_causal),
            "alignment_euclid_mean": _nanmean(self.alignment_euclid),
            "alignment_causal_mean": _nanmean(self.alignment_causal),
            "probe_mean": _nanmean(self.probe),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "concepts": list(self.names),
            "summary": self.summary(),
            "within": self.within.tolist(),
            "between_euclid": self.between_euclid.tolist(),
            "between_causal": self.between_causal.tolist(),
            "alignment_euclid": self.alignment_euclid.tolist(),
            "alignment_causal": self.alignment_causal.tolist(),
            "probe": self.probe.tolist(),
            "causal_rank": self.causal_rank,
        }


def _nanmean(values: np.ndarray) -> float:
    values = np.asarray(values, dtype=np.float64)
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else float("nan")


def concept_geometry(
    unembedding: np.ndarray,
    token_pairs: list[tuple[np.ndarray, np.ndarray]],
    names: tuple[str, ...],
    *,
    context_embedding: np.ndarray | None = None,
    context_pairs: list[tuple[np.ndarray, np.ndarray]] | None = None,
    probe_sets: list[tuple[np.ndarray, np.ndarray]] | None = None,
    probe_folds: int = 5,
    seed: int = 0,
) -> ConceptGeometry:
    """Measure every concept; pairs are (base rows, target rows) index arrays per concept.

    ``context_pairs`` index ``context_embedding`` rows differing only in the concept's
    revealed value (0 -> 1); ``probe_sets`` are (rows, binary labels) per concept.
    """
    g = np.asarray(unembedding, dtype=np.float64)
    m = len(token_pairs)
    whitening = causal_whitening(g)
    diffs = [g[t] - g[b] for b, t in token_pairs]
    within = np.array([within_cosine(d) for d in diffs])
    dirs = np.stack([direction(d) for d in diffs])
    dirs_causal = np.stack([direction(whitening.unembed(d)) for d in diffs])
    align_e = np.full(m, np.nan)
    align_c = np.full(m, np.nan)
    probe = np.full(m, np.nan)
    if context_embedding is not None and context_pairs is not None:
        f = np.asarray(context_embedding, dtype=np.float64)
        for i, (b, t) in enumerate(context_pairs):
            if len(b) == 0:
                continue
            fd = f[t] - f[b]
            align_e[i] = float(direction(fd) @ dirs[i])
            align_c[i] = float(direction(whitening.embed(fd)) @ dirs_causal[i])
    if context_embedding is not None and probe_sets is not None:
        f = np.asarray(context_embedding, dtype=np.float64)
        for i, (rows, labels) in enumerate(probe_sets):
            probe[i] = probe_accuracy(f[rows], labels, folds=probe_folds, seed=seed)
    return ConceptGeometry(
        names=tuple(names),
        within=within,
        between_euclid=cosine_matrix(dirs),
        between_causal=cosine_matrix(dirs_causal),
        alignment_euclid=align_e,
        alignment_causal=align_c,
        probe=probe,
        causal_rank=whitening.rank,
    )


def probe_accuracy(
    features: np.ndarray, labels: np.ndarray, folds: int = 5, seed: int = 0, ridge: float = 1e-4
) -> float:
    """Held-out accuracy of a logistic-regression probe for binary ``labels`` (k-fold, seeded).

    Features are standardized, then :func:`convergent.probing.held_out_predictions` fits
    L2 logistic regression with penalty ``ridge`` x (training rows) x |w|^2 / 2, i.e.
    nearly unregularized. NaN if a class has fewer than ``folds`` rows.
    """
    from convergent.probing import LogisticSettings, held_out_predictions

    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(labels).astype(bool)
    if min(int(y.sum()), int((~y).sum())) < folds:
        return float("nan")
    order = np.random.default_rng(seed).permutation(y.size)
    fold_of = np.empty(y.size, dtype=np.int64)
    fold_of[order] = np.arange(y.size) % folds
    x = (x - x.mean(0)) / (x.std(0) + _EPS)
    train_rows = y.size * (folds - 1) / folds
    settings = LogisticSettings(C=1.0 / (2 * ridge * train_rows), max_iter=100)
    predicted = held_out_predictions(x, y.astype(np.int64), fold_of, settings)
    return float(np.mean(predicted == y))
