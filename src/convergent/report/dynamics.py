"""Phi_T, the spike ratio, probe accuracy and kappa against training tokens, one line per
period.

The spike panel (Phi_T over its trend-preserving shuffled null: 1 is no spike) and the
accuracy panel (the paper's dynamics plot) appear when the points carry ``spike`` and
``accuracy``. Phi_T alone grows for every T as the embedding norms grow; the spike ratio
shows which periods stand out over training.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from convergent.report.style import pyplot, save_figure

HIGHLIGHT = (2, 5, 10)


@dataclass(frozen=True)
class Panel:
    """One panel: the per-period value it plots and how."""

    key: str
    ylabel: str
    title: str
    log: bool = False
    reference: float | None = None  # a horizontal line (no spike, no separability)


PANELS = (
    Panel("phi", "Phi_T", "Fourier power at period T", log=True),
    Panel("spike", "Phi_T / null", "spike (1 = none; trend-preserving null)", reference=1.0),
    Panel("accuracy", "probe accuracy (%)", "mod-T probe accuracy (dotted: chance 100/T)"),
    Panel("kappa", "probe kappa (%)", "mod-T separability", reference=0.0),
)
ALWAYS = ("phi", "kappa")


def dynamics_panels(points: Sequence[dict[str, Any]]) -> list[Panel]:
    """The panels ``points`` can fill: Phi_T and kappa always, spike and accuracy when every
    point carries them."""
    return [panel for panel in PANELS if panel.key in ALWAYS or all(
        panel.key in v for p in points for v in p["periods"].values())]


def plot_dynamics(points: Sequence[dict[str, Any]], paths: Sequence[str | Path],
                  title: str | None = None) -> list[Path]:
    """``points``: dicts with ``tokens`` and ``periods`` {T: {phi, kappa[, spike, accuracy]}};
    ``title`` names the run above the panels (one row of up to three, else two rows)."""
    plt = pyplot()
    ordered = sorted(points, key=lambda p: p["tokens"])
    tokens = np.array([p["tokens"] for p in ordered], dtype=float)
    moduli = sorted({int(t) for p in ordered for t in p["periods"]})
    panels = dynamics_panels(ordered)
    rows = 1 if len(panels) <= 3 else 2
    cols = -(-len(panels) // rows)
    fig, grid = plt.subplots(rows, cols, figsize=(5.4 * cols, 3.8 * rows),
                             constrained_layout=True, squeeze=False)
    axes = list(grid.flat)[: len(panels)]
    if title:
        fig.suptitle(title)
    for t in moduli:
        strong = t in HIGHLIGHT
        style = {"lw": 2 if strong else 0.8, "alpha": 1 if strong else 0.35, "marker": "o",
                 "ms": 3, "label": f"T={t}"}
        for ax, panel in zip(axes, panels, strict=True):
            line = ax.plot(tokens, [p["periods"][str(t)][panel.key] for p in ordered],
                           **style)[0]
            if panel.key == "accuracy":
                ax.axhline(100 / t, color=line.get_color(), lw=0.5, ls=":",
                           alpha=style["alpha"])
    for ax, panel in zip(axes, panels, strict=True):
        if panel.log:
            ax.set_yscale("log")
        if panel.reference is not None:
            ax.axhline(panel.reference, color="black", lw=0.6)
        ax.set_xlabel("training tokens")
        ax.set_ylabel(panel.ylabel)
        ax.set_title(panel.title)
    axes[len(panels) - 1].legend(fontsize=7, ncol=3)
    return save_figure(fig, paths)
