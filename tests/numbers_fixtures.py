"""Planted-feature matrices shared by the number-analysis tests."""

from __future__ import annotations

import numpy as np


def planted(
    n: int = 600,
    dim: int = 24,
    periods: tuple[int, ...] = (2, 5),
    amplitude: float = 3.0,
    noise: float = 1.0,
    seed: int = 0,
) -> np.ndarray:
    """e(n) = sum_T amplitude * (cos, sin)(2 pi n / T) on random directions + Gaussian noise.

    For T = 2 the sine vanishes, so a one-hot-like direction (-1)^n carries the feature.
    """
    rng = np.random.default_rng(seed)
    numbers = np.arange(n)
    values = noise * rng.standard_normal((n, dim))
    for period in periods:
        for harmonic in range(1, period // 2 + 1):
            angle = 2 * np.pi * harmonic * numbers / period
            for wave in (np.cos(angle), np.sin(angle)):
                if np.allclose(wave, 0):
                    continue
                direction = rng.standard_normal(dim)
                values += amplitude * np.outer(wave, direction / np.linalg.norm(direction))
    return values
