"""Inner products on representation space: Euclidean, causal (whitening) and a random control.

Each is a matrix W with <u, v> = (W u) . (W v); analyses map vectors through ``apply`` and
then use plain dot products and cosines.

- ``euclidean``: W = I. Depends on the parameterization (see ``identify``).
- ``causal`` (Park et al. 2024): W = Cov(g)^{-1/2}, the covariance of the unembedding rows
  over the vocabulary, so <u, v> = u^T Cov(g)^{-1} v. Under g -> M^{-T} g + c, W M^{-T} is
  W times an orthogonal matrix, so every cosine, distance and whitened ridge fit is unchanged.
  The same construction on another reference set (static word vectors, context states) is
  called ``whitened``.
- ``random``: W a fixed Gaussian matrix, the control that a "good" inner product must beat.
- ``park_random``: Park et al.'s own control, W with entries |N(0, 1)| (their script maps the
  concept directions by ``abs(randn(d, d))``); all-positive entries give every pair of mapped
  directions a large shared component, so its cosines sit far from 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from convergent.errors import ConvergentError


@dataclass(frozen=True, eq=False)
class InnerProduct:
    """<u, v> = (W u) . (W v); ``transform`` is W [d, d] (None = identity)."""

    name: str
    dim: int
    transform: np.ndarray | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)

    def apply(self, vectors: np.ndarray) -> np.ndarray:
        """Rows mapped to coordinates where this inner product is the dot product."""
        x = np.asarray(vectors, dtype=np.float64)
        if x.shape[-1] != self.dim:
            raise ConvergentError(
                f"inner product {self.name}: vectors have dimension {x.shape[-1]}, "
                f"expected {self.dim}"
            )
        return x if self.transform is None else x @ self.transform.T

    def cosine_matrix(self, vectors: np.ndarray) -> np.ndarray:
        """Pairwise cosines of the rows under this inner product."""
        return cosine_matrix(self.apply(vectors))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "dim": self.dim, **dict(self.meta)}


def unit_rows(x: np.ndarray, eps: float = 1e-300) -> np.ndarray:
    """Rows scaled to unit norm (zero rows stay zero)."""
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norms, eps)


def cosine_matrix(x: np.ndarray) -> np.ndarray:
    u = unit_rows(np.asarray(x, dtype=np.float64))
    return u @ u.T


def euclidean(dim: int) -> InnerProduct:
    return InnerProduct("euclidean", dim)


def whitening(
    reference: np.ndarray, name: str = "causal", rel_tol: float = 1e-10, chunk: int = 8192
) -> InnerProduct:
    """W = Cov(reference rows)^{-1/2} (pseudo-inverse on the numerically null directions).

    The covariance is accumulated in float64 over row chunks, so a 49k x 576 unembedding
    never needs a float64 copy.
    """
    ref = np.ascontiguousarray(reference)  # row chunks of a Fortran-order mmap are slow
    if ref.ndim != 2 or ref.shape[0] < 2:
        raise ConvergentError(
            f"inner product {name}: the reference must be a matrix with at least 2 rows, "
            f"got shape {ref.shape}"
        )
    n, d = ref.shape
    total = np.zeros(d)
    gram = np.zeros((d, d))
    for start in range(0, n, chunk):
        block = np.asarray(ref[start:start + chunk], dtype=np.float64)
        total += block.sum(axis=0)
        gram += block.T @ block
    mean = total / n
    cov = (gram - n * np.outer(mean, mean)) / (n - 1)
    if not np.all(np.isfinite(cov)):
        raise ConvergentError(f"inner product {name}: the reference holds non-finite values")
    evals, evecs = np.linalg.eigh((cov + cov.T) / 2)
    keep = evals > rel_tol * max(evals.max(), 0.0)
    if not keep.any():
        raise ConvergentError(f"inner product {name}: the reference rows have zero covariance")
    inv_sqrt = np.zeros_like(evals)
    inv_sqrt[keep] = evals[keep] ** -0.5
    w = (evecs * inv_sqrt) @ evecs.T
    meta = {"reference_rows": int(n), "rank": int(keep.sum()),
            "condition": float(evals[keep].max() / evals[keep].min())}
    return InnerProduct(name, d, w, meta)


def random_inner(dim: int, seed: int = 0) -> InnerProduct:
    """A fixed random metric W ~ N(0, 1/d): the control."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((dim, dim)) / np.sqrt(dim)
    return InnerProduct("random", dim, w, {"seed": seed})


def park_random_inner(dim: int, seed: int = 0) -> InnerProduct:
    """Park et al.'s random metric: W with i.i.d. entries |N(0, 1)| (x -> x A, A = |randn|)."""
    rng = np.random.default_rng(seed)
    w = np.abs(rng.standard_normal((dim, dim))).T
    return InnerProduct("park_random", dim, w, {"seed": seed, "entries": "|N(0,1)|"})
