"""Theorem 1's two-panel figure: the same spectrum, opposite separability."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from convergent.report.style import pyplot, save_figure


def plot_theory(
    demo: dict[str, Any], spectra: Sequence[dict[str, Any]], paths: Sequence[str | Path]
) -> list[Path]:
    """``demo`` is TheoremDemo.to_dict(); ``spectra`` the two analyses' spectrum dicts."""
    plt = pyplot()
    period = demo["period"]
    cases = [demo["separable"], demo["inseparable"]]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8), constrained_layout=True)
    styles = [("tab:green", "-", 2.5), ("tab:red", "--", 1.2)]
    for case, spec, (color, ls, lw) in zip(cases, spectra, styles, strict=True):
        freq = np.asarray(spec["frequency"])[1:]
        power = np.asarray(spec["power"])[1:]
        left.semilogy(
            freq,
            np.maximum(power, 1e-12),
            color=color,
            ls=ls,
            lw=lw,
            label=f"A={case['a']:g}, B={case['b']:g}: Phi_{period}={case['phi']:.6g}",
        )
    for ell in range(1, period // 2 + 1):
        left.axvline(ell / period, color="grey", lw=0.5, ls=":")
    left.set_xlabel("frequency")
    left.set_ylabel("power ||F_v||^2")
    left.set_title(f"same power at the harmonics of T={period}")
    left.legend(fontsize=8, loc="lower left")
    labels = [f"A={c['a']:g}\nB={c['b']:g}" for c in cases]
    x = np.arange(2)
    right.bar(
        x - 0.18,
        [c["best_linear_accuracy"] for c in cases],
        0.36,
        label="best linear classifier (exact, 1-D)",
        color="tab:blue",
    )
    right.bar(
        x + 0.18,
        [c["probe_accuracy"] for c in cases],
        0.36,
        label="cross-validated probe",
        color="tab:orange",
    )
    right.axhline(100 / period, color="black", ls="--", lw=1, label=f"chance 1/{period}")
    for xi, case in zip(x, cases, strict=True):
        right.text(
            xi - 0.18,
            case["best_linear_accuracy"] + 1,
            f"{case['best_linear_accuracy']:.1f}",
            ha="center",
            fontsize=8,
        )
        right.text(
            xi + 0.18,
            case["probe_accuracy"] + 1,
            f"{case['probe_accuracy']:.1f}",
            ha="center",
            fontsize=8,
        )
    right.set_xticks(x)
    right.set_xticklabels(labels)
    right.set_ylim(0, 110)
    right.set_ylabel(f"accuracy of n mod {period} (%)")
    right.set_title("opposite separability")
    right.legend(fontsize=8, loc="upper right")
    return save_figure(fig, paths)
