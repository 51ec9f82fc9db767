"""Fourier analysis of number embeddings along the number axis (Fu et al. 2026).

Convention: F_v = (1/sqrt(N)) sum_n e(n) exp(-2 pi i v n), one vector per frequency v; the
power at v is ||F_v||^2 summed over embedding dimensions, and Phi_T = sum_{l=1}^{T-1}
||F_{l/T}||^2. Phi_T is evaluated at the exact frequencies l/T (on the grid k/N when T
divides N) on the mean-centred embeddings: that equals the paper's definition whenever T
divides N and, when it does not, keeps the mean from leaking into off-grid frequencies.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from convergent.basis import PrincipalBasis


@dataclass(frozen=True, eq=False)
class Spectrum:
    """Power ||F_{k/N}||^2 for k = 0..N//2 and its normalized magnitude for plotting.

    ``magnitude`` = ||F_v|| / median_{k>=1} ||F_{k/N}||: 1 is a typical frequency, 4 a
    frequency with 16x the median power (the paper's colour scale runs from 1 to 4).
    """

    frequency: np.ndarray
    power: np.ndarray
    magnitude: np.ndarray

    def to_dict(self) -> dict[str, list[float]]:
        return {
            "frequency": self.frequency.tolist(),
            "power": self.power.tolist(),
            "magnitude": self.magnitude.tolist(),
        }


@dataclass(frozen=True)
class PeriodPower:
    """Phi_T, its ratio to the expectation over random orderings, and the permutation p."""

    period: int
    phi: float
    spike: float
    p_value: float


def spectrum(basis: PrincipalBasis) -> Spectrum:
    """The DFT power spectrum over k = 0..N//2 (k = 0 from the mean, the rest centred)."""
    n = basis.n
    centred_power = np.sum(np.abs(np.fft.rfft(basis.coords, axis=0, norm="ortho")) ** 2, axis=1)
    power = centred_power.copy()
    power[0] = n * float(basis.mean @ basis.mean)
    amplitude = np.sqrt(power)
    reference = np.median(amplitude[1:]) if amplitude.size > 1 else 1.0
    magnitude = amplitude / reference if reference > 0 else np.zeros_like(amplitude)
    frequency = np.arange(power.size) / n
    return Spectrum(frequency=frequency, power=power, magnitude=magnitude)


def _harmonics(periods: Sequence[int]) -> tuple[list[Fraction], dict[int, list[int]]]:
    """Distinct frequencies l/T (folded to v <= 1/2) and, per period, their indices."""
    unique: list[Fraction] = []
    index: dict[Fraction, int] = {}
    members: dict[int, list[int]] = {}
    for period in periods:
        members[period] = []
        for ell in range(1, period):
            v = Fraction(ell, period)
            v = min(v, 1 - v)  # ||F_{1-v}|| = ||F_v|| for real data
            if v not in index:
                index[v] = len(unique)
                unique.append(v)
            members[period].append(index[v])
    return unique, members


def _phase_matrix(frequencies: Sequence[Fraction], n: int) -> np.ndarray:
    """Rows cos(2 pi v t), sin(2 pi v t) / sqrt(n) for each frequency: [2F, n]."""
    v = np.array([float(f) for f in frequencies])[:, None]
    angle = 2 * np.pi * v * np.arange(n)[None, :]
    return np.concatenate([np.cos(angle), np.sin(angle)]) / np.sqrt(n)


def _powers(phase: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """||F_v||^2 for each frequency row pair of ``phase`` ([..., 2F, n] @ [n, r])."""
    projected = phase @ coords
    squared = np.sum(projected * projected, axis=-1)
    half = squared.shape[-1] // 2
    return squared[..., :half] + squared[..., half:]


def _null_mean(frequencies: Sequence[Fraction], n: int, total: float) -> np.ndarray:
    """E||F_v||^2 over random orderings of centred rows (exact): (t/N)(1 + (1-|S_v|^2)/(N-1)).

    ``total`` is sum_n ||y_n||^2 and S_v = sum_n exp(-2 pi i v n)/sqrt(N).
    """
    v = np.array([float(f) for f in frequencies])
    t = np.arange(n)
    s = np.exp(-2j * np.pi * v[:, None] * t[None, :]).sum(axis=1) / np.sqrt(n)
    return (total / n) * (1 + (1 - np.abs(s) ** 2) / (n - 1))


def period_powers(
    basis: PrincipalBasis,
    periods: Sequence[int],
    permutations: int = 200,
    seed: int = 0,
    batch: int = 25,
) -> dict[int, PeriodPower]:
    """Phi_T per period, spike = Phi_T / E_null[Phi_T], and a one-sided permutation p-value.

    The null shuffles the order of the numbers (rows); p = (1 + #{Phi_T^perm >= Phi_T}) /
    (1 + permutations). The null mean is exact, so the spike score has no Monte-Carlo noise.
    """
    n = basis.n
    frequencies, members = _harmonics(periods)
    phase = _phase_matrix(frequencies, n)
    observed = _powers(phase, basis.coords)
    total = float(np.sum(basis.coords**2))
    null_mean = _null_mean(frequencies, n, total)
    exceed = {p: 0 for p in periods}
    observed_phi = {p: float(observed[members[p]].sum()) for p in periods}
    if permutations > 0:
        rng = np.random.default_rng(seed)
        coords32 = basis.coords.astype(np.float32)
        phase32 = phase.astype(np.float32)
        done = 0
        while done < permutations:
            size = min(batch, permutations - done)
            orders = np.stack([rng.permutation(n) for _ in range(size)])
            shuffled = phase32[:, orders].transpose(1, 0, 2)  # [size, 2F, n]
            null = _powers(shuffled, coords32)  # [size, F]
            for p in periods:
                phi = null[:, members[p]].sum(axis=1)
                exceed[p] += int(np.sum(phi >= observed_phi[p] * (1 - 1e-6)))
            done += size
    results = {}
    for p in periods:
        expected = float(null_mean[members[p]].sum())
        p_value = (1 + exceed[p]) / (1 + permutations) if permutations > 0 else float("nan")
        results[p] = PeriodPower(
            period=p,
            phi=observed_phi[p],
            spike=observed_phi[p] / expected if expected > 0 else float("nan"),
            p_value=p_value,
        )
    return results


def dft_power_at(values: np.ndarray, frequency: float) -> float:
    """||F_v||^2 of the raw rows by the paper's formula, for tests and single checks."""
    x = np.asarray(values, dtype=np.float64)
    phase = np.exp(-2j * np.pi * frequency * np.arange(x.shape[0])) / np.sqrt(x.shape[0])
    f = phase @ x
    return float(np.real(np.vdot(f, f)))
