"""Phi_T, probe accuracy and kappa against training tokens, one line per period.

The accuracy panel (the paper's dynamics plot) appears when the points carry ``accuracy``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from convergent.report.style import pyplot, save_figure

HIGHLIGHT = (2, 5, 10)


def plot_dynamics(points: Sequence[dict[str, Any]], paths: Sequence[str | Path],
                  title: str | None = None) -> list[Path]:
    """``points``: dicts with ``tokens`` and ``periods`` {T: {phi, kappa[, accuracy]}};
    ``title`` names the run above the panels."""
    plt = pyplot()
    ordered = sorted(points, key=lambda p: p["tokens"])
    tokens = np.array([p["tokens"] for p in ordered], dtype=float)
    moduli = sorted({int(t) for p in ordered for t in p["periods"]})
    with_accuracy = all("accuracy" in v for p in ordered for v in p["periods"].values())
    fig, axes = plt.subplots(1, 3 if with_accuracy else 2, figsize=(16 if with_accuracy else 11,
                             3.8), constrained_layout=True)
    if title:
        fig.suptitle(title)
    left, right = axes[0], axes[-1]
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
        if with_accuracy:
            accuracy = [p["periods"][str(t)]["accuracy"] for p in ordered]
            line = axes[1].plot(tokens, accuracy, **style)[0]
            axes[1].axhline(100 / t, color=line.get_color(), lw=0.5, ls=":", alpha=style["alpha"])
    left.set_yscale("log")
    left.set_xlabel("training tokens")
    left.set_ylabel("Phi_T")
    left.set_title("Fourier power at period T")
    if with_accuracy:
        axes[1].set_xlabel("training tokens")
        axes[1].set_ylabel("probe accuracy (%)")
        axes[1].set_title("mod-T probe accuracy (dotted: chance 100/T)")
    right.axhline(0, color="black", lw=0.6)
    right.set_xlabel("training tokens")
    right.set_ylabel("probe kappa (%)")
    right.set_title("mod-T separability")
    right.legend(fontsize=7, ncol=3)
    return save_figure(fig, paths)
