"""Evidence for the spike test's null: three ways of testing period T against a trend.

Compares, on planted matrices (noise sd 1, a trend of a given shape and strength along one
direction, optional periodic components), the spike ratio and permutation p-value of

- ``raw``: Phi_T against shuffles of the centred rows (the toolkit's test before
  analysis_version 2),
- ``poly3``: against shuffles of the rows minus a cubic trend,
- ``dct``: the toolkit's test (rows minus their low-frequency cosine components and a cubic).

Usage: ``python benchmarks/spike_null.py N DIM AMPLITUDE`` (e.g. ``1000 50 0.3``). The
README's section on the spike test quotes its output. Not a speed benchmark.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

import numpy as np

from convergent.basis import principal_basis
from convergent.numbers import fourier

SHAPES = ("linear", "quadratic", "log", "sqrt")


def _cubic_residual(coords: np.ndarray, cutoff: float) -> tuple[np.ndarray, int]:
    del cutoff
    x = np.linspace(-1, 1, coords.shape[0])
    q, _ = np.linalg.qr(np.polynomial.legendre.legvander(x, 3))
    return coords - q @ (q.T @ coords), 4


def _centred(coords: np.ndarray, cutoff: float) -> tuple[np.ndarray, int]:
    del cutoff
    return coords, 1  # the principal coordinates are centred: only the mean is removed


@contextlib.contextmanager
def _detrending(method: str) -> Iterator[None]:
    """The library's detrending, or one of the alternatives, for the duration."""
    original = fourier.detrend
    if method != "dct":
        fourier.detrend = _centred if method == "raw" else _cubic_residual
    try:
        yield
    finally:
        fourier.detrend = original


def spike_test(values: np.ndarray, periods: list[int], method: str, permutations: int = 100,
               seed: int = 0) -> dict[int, tuple[float, float]]:
    """(spike, p) per period under ``method``."""
    basis = principal_basis(values)
    with _detrending(method):
        result = fourier.period_powers(basis, periods, permutations=permutations, seed=seed)
    return {t: (result[t].spike, result[t].p_value) for t in periods}


def trend(n: int, shape: str) -> np.ndarray:
    x = np.arange(n) / n
    return {"linear": x, "quadratic": x**2, "log": np.log1p(np.arange(n)) / np.log(n),
            "sqrt": np.sqrt(x)}[shape]


def planted(n: int, dim: int, shape: str, strength: float, periods: tuple[int, ...],
            amplitude: float, seed: int) -> np.ndarray:
    """Noise + ``strength`` x a trend along one direction + every harmonic of ``periods``."""
    rng = np.random.default_rng(seed)
    values = rng.standard_normal((n, dim))
    direction = rng.standard_normal(dim)
    direction /= np.linalg.norm(direction)
    ramp = trend(n, shape)
    values += strength * np.outer(ramp - ramp.mean(), direction) * np.sqrt(n)
    numbers = np.arange(n)
    for period in periods:
        for h in range(1, period // 2 + 1):
            for wave in (np.cos(2 * np.pi * h * numbers / period),
                         np.sin(2 * np.pi * h * numbers / period)):
                if np.allclose(wave, 0):
                    continue
                u = rng.standard_normal(dim)
                values += amplitude * np.outer(wave, u / np.linalg.norm(u))
    return values


def main() -> None:
    n, dim, amplitude = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    methods = ("raw", "poly3", "dct")
    print(f"N={n} d={dim} periodic amplitude {amplitude} (noise sd 1)")
    print("detection, periods 5 and 7 planted: spike / p at T=5, T=7")
    for shape in ("linear", "log"):
        for strength in (0, 1, 10, 100):
            values = planted(n, dim, shape, strength, (5, 7), amplitude, 1)
            cells = []
            for method in methods:
                r = spike_test(values, [5, 7], method)
                cells.append(f"{method}: {r[5][0]:.2f}/{r[5][1]:.3f} {r[7][0]:.2f}/{r[7][1]:.3f}")
            print(f"  {shape:9s} x{strength:<4d}", " | ".join(cells))
    print("calibration, no periodic part, 40 seeds: fraction p<0.05 at T=5 and T=10; "
          "mean spike T=10")
    for shape in SHAPES:
        for strength in (0, 10, 100):
            cells = []
            for method in methods:
                p5, p10, spikes = [], [], []
                for seed in range(40):
                    values = planted(n, dim, shape, strength, (), 0.0, 100 + seed)
                    r = spike_test(values, [5, 10], method, seed=seed)
                    p5.append(r[5][1])
                    p10.append(r[10][1])
                    spikes.append(r[10][0])
                cells.append(f"{method}: {np.mean(np.array(p5) < 0.05):.2f} "
                             f"{np.mean(np.array(p10) < 0.05):.2f} {np.mean(spikes):.2f}")
            print(f"  {shape:9s} x{strength:<4d}", " | ".join(cells))


if __name__ == "__main__":
    main()
