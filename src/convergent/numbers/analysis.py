"""One entry point: every number analysis of one matrix, as one frozen result."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from convergent.basis import principal_basis
from convergent.numbers.controls import explained_by_tokens, token_identity_features
from convergent.numbers.fisher import FisherResult, fisher
from convergent.numbers.fourier import Spectrum, period_powers, spectrum, trend_cutoff
from convergent.numbers.probe import ProbeSettings, run_probes
from convergent.numbers.validate import check_folds, check_numbers, check_values
from convergent.provenance import array_hash, versions

# 2: trend-robust spike test (detrended Phi_T and null), Fisher eigenvalues, spectral peaks
ANALYSIS_VERSION = 2


@dataclass(frozen=True)
class PeriodResult:
    """Fourier power and probe separability at one period T (kappa and accuracy in %)."""

    period: int
    phi: float
    spike: float
    p_value: float
    kappa: float
    kappa_ci: tuple[float, float]
    accuracy: float
    baseline_kappa: float | None = None
    explained_by_tokens: bool | None = None
    phi_detrended: float = float("nan")
    spike_raw: float = float("nan")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "phi": self.phi,
            "spike": self.spike,
            "p_value": self.p_value,
            "kappa": self.kappa,
            "kappa_ci": list(self.kappa_ci),
            "accuracy": self.accuracy,
            "phi_detrended": self.phi_detrended,
            "spike_raw": self.spike_raw,
        }
        if self.baseline_kappa is not None:
            out["baseline_kappa"] = self.baseline_kappa
            out["explained_by_tokens"] = self.explained_by_tokens
        return out


@dataclass(frozen=True, eq=False)
class NumberAnalysis:
    """Everything measured on one number-embedding matrix; ``to_dict`` is results.json's entry."""

    name: str
    site: str
    numbers: tuple[int, int]
    dim: int
    spectrum: Spectrum
    periods: dict[int, PeriodResult]
    fisher: dict[int, FisherResult]
    seed: int
    probe: ProbeSettings
    permutations: int
    input_hash: str
    warnings: tuple[str, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=versions)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "site": self.site,
            "analysis_version": ANALYSIS_VERSION,
            "numbers": list(self.numbers),
            "dim": self.dim,
            "spectrum": self.spectrum.to_dict(),
            "periods": {str(t): p.to_dict() for t, p in self.periods.items()},
            "fisher": {str(t): f.to_dict() for t, f in self.fisher.items()},
            "seed": self.seed,
            "probe": self.probe.to_dict(),
            "permutations": self.permutations,
            "input_hash": self.input_hash,
            "warnings": list(self.warnings),
            "meta": self.meta,
            "versions": self.versions,
        }


def analyze_numbers(
    values: np.ndarray,
    numbers: Sequence[int],
    moduli: Sequence[int] = range(2, 11),
    folds: int = 5,
    seed: int = 0,
    *,
    token_ids: Sequence[Sequence[int]] | None = None,
    permutations: int = 200,
    name: str = "array",
    site: str = "embed",
    meta: dict[str, Any] | None = None,
) -> NumberAnalysis:
    """Spectrum, Phi_T with spike test, mod-T probes and Fisher diagnostics of e(n).

    ``values`` [N, d] holds e(n) for the consecutive integers ``numbers``. ``token_ids``
    (one tuple per row) adds the token-identity control (``baseline_kappa``).
    """
    matrix, notes = check_values(values, name)
    nums = check_numbers(numbers, matrix.shape[0], name)
    moduli = sorted(set(int(t) for t in moduli))
    check_folds(nums, moduli, folds, name)
    for note in notes:
        warnings.warn(note, stacklevel=2)
    basis = principal_basis(matrix)
    powers = period_powers(basis, moduli, permutations=permutations, seed=seed)
    settings = ProbeSettings(folds=folds, seed=seed)
    probes = run_probes(basis, nums, moduli, settings)
    baseline = None
    if token_ids is not None:
        control = principal_basis(token_identity_features(token_ids))
        baseline = run_probes(control, nums, moduli, settings)
    periods = {}
    for t in moduli:
        base_kappa = None if baseline is None else baseline[t].kappa
        periods[t] = PeriodResult(
            period=t,
            phi=powers[t].phi,
            spike=powers[t].spike,
            p_value=powers[t].p_value,
            kappa=probes[t].kappa,
            kappa_ci=probes[t].kappa_ci,
            accuracy=probes[t].accuracy,
            baseline_kappa=base_kappa,
            explained_by_tokens=None
            if base_kappa is None
            else explained_by_tokens(probes[t].kappa, base_kappa),
            phi_detrended=powers[t].phi_detrended,
            spike_raw=powers[t].spike_raw,
        )
    return NumberAnalysis(
        name=name,
        site=site,
        numbers=(int(nums[0]), int(nums[-1])),
        dim=int(matrix.shape[1]),
        spectrum=spectrum(basis, trend_cutoff(moduli)),
        periods=periods,
        fisher={t: fisher(basis, nums, t, powers[t].phi) for t in moduli},
        seed=seed,
        probe=settings,
        permutations=permutations,
        input_hash=array_hash(matrix),
        warnings=tuple(notes),
        meta=dict(meta or {}),
    )


def analyze_representation(rep: Any, **options: Any) -> NumberAnalysis:
    """:func:`analyze_numbers` on a :class:`~convergent.representation.Representation`."""
    meta = {k: v for k, v in dict(rep.meta).items() if isinstance(v, str | int | float | bool)}
    return analyze_numbers(
        rep.values,
        list(rep.labels),
        token_ids=rep.token_ids,
        name=rep.source,
        site=rep.site,
        meta=meta,
        **options,
    )
