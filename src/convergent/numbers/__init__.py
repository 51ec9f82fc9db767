"""Number representations: Fourier spectrum, mod-T probes, Fisher diagnostics, Theorem 1."""

from convergent.numbers.analysis import (
    NumberAnalysis,
    PeriodResult,
    analyze_numbers,
    analyze_representation,
)
from convergent.numbers.fisher import FisherResult, scatter_matrices
from convergent.numbers.fourier import Peak, Spectrum
from convergent.numbers.probe import ProbeResult, probe_moduli

__all__ = [
    "FisherResult",
    "NumberAnalysis",
    "Peak",
    "PeriodResult",
    "ProbeResult",
    "Spectrum",
    "analyze_numbers",
    "analyze_representation",
    "probe_moduli",
    "scatter_matrices",
]
