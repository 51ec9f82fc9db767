"""Fourier analysis of number embeddings along the number axis (Fu et al. 2026).

Convention: F_v = (1/sqrt(N)) sum_n e(n) exp(-2 pi i v n), one vector per frequency v; the
power at v is ||F_v||^2 summed over embedding dimensions, and Phi_T = sum_{l=1}^{T-1}
||F_{l/T}||^2. Phi_T is evaluated at the exact frequencies l/T (on the grid k/N when T
divides N) on the mean-centred embeddings: that equals the paper's definition whenever T
divides N and, when it does not, keeps the mean from leaking into off-grid frequencies.

The spike test separates a period from the smooth (ordinal, magnitude-like) trend that real
number embeddings carry. The smooth part of e(n) is its projection on the orthonormal
DCT-II basis functions of frequency below ``cutoff`` = min(0.05, 1/(2 T_max)) cycles per
number (K = ceil(2 N cutoff) functions, the mean included) plus Legendre polynomials of
degree 1..3 (they remove a ramp's end slopes exactly): a ramp, quadratic or log-shaped
trend, far below the lowest harmonic 1/T_max probed. The test statistic is
Phi_T of the residual (``phi_detrended``); its null shuffles the residual rows, rescaled by
sqrt(N / (N - K - 3)) so that a white residual keeps its per-frequency power; ``spike`` is the
statistic over the exact null mean and ``p_value`` the permutation p. Why: shuffling the
raw rows (the previous null, kept as ``spike_raw``) spreads a trend's power over every
frequency, so a strong ramp hid clean periodic components (spike 0.5, p 0.7); keeping the
trend in the statistic and the null (the DFT of a ramp leaks into every l/T) loses power
as the trend grows; a cubic detrend leaves most of a log-shaped trend, whose shuffled power
again swamps the null. Measured comparison: README "What each number means".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from fractions import Fraction
from functools import lru_cache

import numpy as np

from convergent.basis import PrincipalBasis

TREND_CUTOFF = 0.05  # cycles per number: slower components count as the smooth trend
PEAKS = 5  # strongest spectral peaks listed per spectrum
HARMONIC_PERIODS = range(2, 11)  # peaks are matched to the harmonics l/T of these periods


@dataclass(frozen=True)
class Peak:
    """A local maximum of the detrended spectrum; ``harmonic_of`` the smallest T in 2..10
    with a harmonic l/T within half a frequency bin (None: not a decimal-family harmonic)."""

    frequency: float
    magnitude: float
    period: float
    harmonic_of: int | None

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True, eq=False)
class Spectrum:
    """Power ||F_{k/N}||^2 for k = 0..N//2 and its normalized magnitude for plotting.

    ``magnitude`` = ||F_v|| / median_{k>=1} ||F_{k/N}||: 1 is a typical frequency, 4 a
    frequency with 16x the median power (the paper's colour scale runs from 1 to 4).
    ``detrended_magnitude`` is the same on the residual after the smooth trend (0 below the
    cutoff); ``peaks`` its strongest local maxima above the cutoff, strongest first.
    """

    frequency: np.ndarray
    power: np.ndarray
    magnitude: np.ndarray
    detrended_magnitude: np.ndarray | None = None
    peaks: tuple[Peak, ...] = ()
    trend_cutoff: float = TREND_CUTOFF

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "frequency": self.frequency.tolist(),
            "power": self.power.tolist(),
            "magnitude": self.magnitude.tolist(),
            "peaks": [p.to_dict() for p in self.peaks],
            "trend_cutoff": self.trend_cutoff,
        }
        if self.detrended_magnitude is not None:
            out["detrended_magnitude"] = self.detrended_magnitude.tolist()
        return out


@dataclass(frozen=True)
class PeriodPower:
    """Phi_T (raw, centred), Phi_T of the detrended rows, spike = detrended Phi_T over its
    null mean, the permutation p, and ``spike_raw`` = Phi_T over a plain shuffle's mean."""

    period: int
    phi: float
    spike: float
    p_value: float
    phi_detrended: float = float("nan")
    spike_raw: float = float("nan")


def trend_cutoff(periods: Sequence[int]) -> float:
    """The trend's frequency cutoff: min(0.05, half the lowest harmonic 1/T_max)."""
    return min(TREND_CUTOFF, 0.5 / max(periods)) if len(periods) else TREND_CUTOFF


def trend_size(n: int, cutoff: float) -> int:
    """K: the DCT-II functions k/(2N) < cutoff (k = 0, the mean, included)."""
    return max(1, min(n - 1, int(np.ceil(2 * n * cutoff - 1e-9))))


@lru_cache(maxsize=8)
def trend_basis(n: int, cutoff: float) -> np.ndarray:
    """Orthonormal [n, K + 3]: the K lowest DCT-II functions and Legendre polynomials 1..3.

    The polynomials remove a ramp's end slopes, which the even DCT extension leaves as a
    slowly decaying tail above the cutoff."""
    from scipy.fft import idct

    k = trend_size(n, cutoff)
    cosines = idct(np.eye(n, k), type=2, axis=0, norm="ortho")
    x = np.linspace(-1.0, 1.0, n)
    polynomials = np.polynomial.legendre.legvander(x, min(3, n - k - 1))[:, 1:]
    q, _ = np.linalg.qr(np.hstack([cosines, polynomials]))
    q.setflags(write=False)  # cached: shared by every caller
    return q


def detrend(coords: np.ndarray, cutoff: float) -> tuple[np.ndarray, int]:
    """Rows minus their projection on :func:`trend_basis`, and the basis size."""
    q = trend_basis(coords.shape[0], cutoff)
    return coords - q @ (q.T @ coords), q.shape[1]


def _normalized(power: np.ndarray) -> np.ndarray:
    amplitude = np.sqrt(power)
    reference = np.median(amplitude[1:]) if amplitude.size > 1 else 1.0
    return amplitude / reference if reference > 0 else np.zeros_like(amplitude)


def _harmonic_of(frequency: float, half_bin: float) -> int | None:
    for period in HARMONIC_PERIODS:
        for ell in range(1, period // 2 + 1):
            if abs(frequency - ell / period) <= half_bin + 1e-12:
                return period
    return None


def spectral_peaks(
    frequency: np.ndarray, magnitude: np.ndarray, cutoff: float, count: int = PEAKS
) -> tuple[Peak, ...]:
    """The ``count`` largest local maxima of ``magnitude`` at frequencies >= ``cutoff``."""
    n_bins = magnitude.size
    half_bin = (frequency[1] - frequency[0]) / 2 if n_bins > 1 else 0.25
    found = []
    for k in range(1, n_bins):
        if frequency[k] < cutoff:
            continue
        left = magnitude[k - 1] if frequency[k - 1] >= cutoff else -np.inf
        right = magnitude[k + 1] if k + 1 < n_bins else -np.inf
        if magnitude[k] > left and magnitude[k] >= right:
            found.append(k)
    found.sort(key=lambda k: -magnitude[k])
    return tuple(
        Peak(
            frequency=float(frequency[k]),
            magnitude=float(magnitude[k]),
            period=float(1 / frequency[k]),
            harmonic_of=_harmonic_of(float(frequency[k]), half_bin),
        )
        for k in found[:count]
    )


def spectrum(basis: PrincipalBasis, cutoff: float = TREND_CUTOFF) -> Spectrum:
    """The DFT power spectrum over k = 0..N//2 (k = 0 from the mean, the rest centred),
    its detrended magnitude and strongest peaks (trend below ``cutoff`` removed)."""
    n = basis.n
    centred_power = np.sum(np.abs(np.fft.rfft(basis.coords, axis=0, norm="ortho")) ** 2, axis=1)
    power = centred_power.copy()
    power[0] = n * float(basis.mean @ basis.mean)
    frequency = np.arange(power.size) / n
    residual, _ = detrend(basis.coords, cutoff)
    residual_power = np.sum(np.abs(np.fft.rfft(residual, axis=0, norm="ortho")) ** 2, axis=1)
    above = frequency >= cutoff
    detrended = np.zeros_like(residual_power)
    if above.any():
        reference = np.median(np.sqrt(residual_power[above]))
        if reference > 0:
            detrended[above] = np.sqrt(residual_power[above]) / reference
    return Spectrum(
        frequency=frequency,
        power=power,
        magnitude=_normalized(power),
        detrended_magnitude=detrended,
        peaks=spectral_peaks(frequency, detrended, cutoff),
        trend_cutoff=cutoff,
    )


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
    cutoff: float | None = None,
) -> dict[int, PeriodPower]:
    """Phi_T per period and the trend-robust spike test (module docstring).

    The null shuffles the order of the detrended rows; p = (1 + #{Phi_T^perm >= Phi_T}) /
    (1 + permutations), on the detrended Phi_T. The null mean is exact, so the spike score
    has no Monte-Carlo noise. ``cutoff`` defaults to :func:`trend_cutoff` of ``periods``.
    """
    n = basis.n
    frequencies, members = _harmonics(periods)
    phase = _phase_matrix(frequencies, n)
    raw = _powers(phase, basis.coords)
    residual, k = detrend(basis.coords, trend_cutoff(periods) if cutoff is None else cutoff)
    scale2 = n / (n - k)  # a white residual keeps its per-frequency power under shuffling
    observed = _powers(phase, residual)
    raw_mean = _null_mean(frequencies, n, float(np.sum(basis.coords**2)))
    null_mean = _null_mean(frequencies, n, scale2 * float(np.sum(residual**2)))
    exceed = {p: 0 for p in periods}
    observed_phi = {p: float(observed[members[p]].sum()) for p in periods}
    if permutations > 0:
        rng = np.random.default_rng(seed)
        coords32 = (np.sqrt(scale2) * residual).astype(np.float32)
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
        expected_raw = float(raw_mean[members[p]].sum())
        phi_raw = float(raw[members[p]].sum())
        p_value = (1 + exceed[p]) / (1 + permutations) if permutations > 0 else float("nan")
        results[p] = PeriodPower(
            period=p,
            phi=phi_raw,
            spike=observed_phi[p] / expected if expected > 0 else float("nan"),
            p_value=p_value,
            phi_detrended=observed_phi[p],
            spike_raw=phi_raw / expected_raw if expected_raw > 0 else float("nan"),
        )
    return results


def dft_power_at(values: np.ndarray, frequency: float) -> float:
    """||F_v||^2 of the raw rows by the paper's formula, for tests and single checks."""
    x = np.asarray(values, dtype=np.float64)
    phase = np.exp(-2j * np.pi * frequency * np.arange(x.shape[0])) / np.sqrt(x.shape[0])
    f = phase @ x
    return float(np.real(np.vdot(f, f)))
