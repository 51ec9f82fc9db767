"""Phi_T and kappa against training tokens, one line per period."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from convergent.report.style import pyplot, save_figure

HIGHLIGHT = (2, 5, 10)


def plot_dynamics(points: Sequence[dict[str, Any]], paths: Sequence[str | Path]) -> list[Path]:
    """``points``: dicts with ``tokens`` and ``periods`` {T: {phi, kappa}} (one site)."""
    plt = pyplot()
    ordered = sorted(points, key=lambda p: p["tokens"])
    tokens = np.array([p["tokens"] for p in ordered], dtype=float)
    moduli = sorted({int(t) for p in ordered for t in p["periods"]})
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8), constrained_layout=True)
    for t in moduli:
        phi = [p["periods"][str(t)]["phi"] for p in ordered]
        kappa = [p["periods"][str(t)]["kappa"] for p in ordered]
        strong = t in HIGHLIGHT
        style = {
            "lw": 2 if strong else 0.8,
            "alpha": 1 if strong else 0.35,
            "marker": "o",
            "ms": 3,
            "label": f"T={t}",
        }
        left.plot(tokens, phi, **style)
        right.plot(tokens, kappa, **style)
    left.set_yscale("log")
    left.set_xlabel("training tokens")
    left.set_ylabel("Phi_T")
    left.set_title("Fourier power at period T")
    right.axhline(0, color="black", lw=0.6)
    right.set_xlabel("training tokens")
    right.set_ylabel("probe kappa (%)")
    right.set_title("mod-T separability")
    right.legend(fontsize=7, ncol=3)
    return save_figure(fig, paths)
