"""The principal basis of centred data: exact inner products in min(n, d) dimensions.

Every analysis here is invariant to rotations of the embedding space (Fourier power, Fisher
eigenvalues, an L2-regularized probe on globally scaled features), so it can work on
``coords = Xc V`` (d <= n) or ``U sqrt(eig(Xc Xc^T))`` (d > n) instead of the raw [n, d]
matrix. For a 1000 x 4096 matrix that is the difference between 4096 and 999 columns.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class PrincipalBasis:
    """``coords`` [n, r]: the centred rows in principal axes; ``variances`` [r] descending."""

    coords: np.ndarray
    variances: np.ndarray
    mean: np.ndarray
    ambient_dim: int

    @property
    def n(self) -> int:
        return int(self.coords.shape[0])

    @property
    def total_variance(self) -> float:
        return float(self.variances.sum())


def principal_basis(values: np.ndarray) -> PrincipalBasis:
    """Centre ``values`` [n, d] (float64) and rotate it to its principal axes."""
    x = np.asarray(values, dtype=np.float64)
    n, d = x.shape
    mean = x.mean(axis=0)
    centred = x - mean
    if d <= n:
        cov = centred.T @ centred / n
        eig, vec = np.linalg.eigh(cov)
        order = np.argsort(eig)[::-1]
        eig = np.clip(eig[order], 0.0, None)
        coords = centred @ vec[:, order]
    else:
        gram = centred @ centred.T
        eig, vec = np.linalg.eigh(gram)
        order = np.argsort(eig)[::-1]
        eig, vec = eig[order], vec[:, order]
        keep = eig > max(eig[0], 0.0) * 1e-12
        eig, vec = eig[keep], vec[:, keep]
        coords = vec * np.sqrt(eig)
        eig = eig / n
    return PrincipalBasis(coords=coords, variances=eig, mean=mean, ambient_dim=d)
