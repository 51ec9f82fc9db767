"""Figures of the origins experiments (matplotlib's object API with the Agg canvas, no pyplot).

- :func:`evolution_figure`: loss above the entropy floor, within-concept cosine, between-
  concept |cosine| (Euclidean and causal), alignment and probe accuracy over training.
- :func:`cosine_figure`: the final between-concept cosine matrices and within-concept
  cosines, with a real LM's beside the simulation's when given.
- :func:`sweep_figure`: final metrics against dimension, one line per optimizer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from convergent.io import write_bytes_atomic

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from convergent.origins.metrics import ConceptGeometry
    from convergent.origins.real_lm import LMConceptResult
    from convergent.origins.training import OriginsRun

_DPI = 120


def save_figure(figure: Figure, path: str | Path) -> Path:
    """Write ``figure`` as PNG atomically."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    return write_bytes_atomic(path, lambda h: figure.savefig(h, format="png", dpi=_DPI))


def evolution_figure(run: OriginsRun) -> Figure:
    from matplotlib.figure import Figure

    steps = np.array([c.step for c in run.history], dtype=float)
    x = np.maximum(steps, 0.5)  # step 0 drawn at 0.5 on the log axis
    geos = [c.geometry for c in run.history]
    fig = Figure(figsize=(11, 7.5), layout="constrained")
    axes = fig.subplots(2, 2)
    ax = axes[0, 0]
    ax.plot(x, [max(c.excess_loss, 1e-8) for c in run.history], color="k")
    ax.set_yscale("log")
    ax.set_title("cross-entropy above the data's entropy floor")
    ax = axes[0, 1]
    within = np.stack([g.within for g in geos])
    for i, name in enumerate(geos[0].names):
        ax.plot(x, within[:, i], lw=0.8, alpha=0.6, label=name)
    ax.plot(x, np.nanmean(within, axis=1), color="k", lw=2, label="mean")
    ax.set_ylim(-0.1, 1.05)
    ax.set_title("within-concept cosine of g(y1) - g(y0)  (1 = parallel)")
    ax.legend(fontsize=7, ncol=2)
    ax = axes[1, 0]
    summaries = [g.summary() for g in geos]
    ax.plot(x, [s["between_euclid_mean_abs"] for s in summaries], label="Euclidean")
    ax.plot(x, [s["between_causal_mean_abs"] for s in summaries], label="causal")
    ax.set_ylim(0, 1.05)
    ax.set_title("between-concept mean |cosine|  (0 = orthogonal)")
    ax.legend()
    ax = axes[1, 1]
    ax.plot(x, [s["alignment_euclid_mean"] for s in summaries], label="alignment f/g, Euclidean")
    ax.plot(x, [s["alignment_causal_mean"] for s in summaries], label="alignment f/g, causal")
    ax.plot(x, [s["probe_mean"] for s in summaries], label="probe accuracy from f(x)")
    ax.set_ylim(0, 1.05)
    ax.set_title("context side")
    ax.legend(fontsize=8)
    for ax in axes.flat:
        ax.set_xscale("log")
        ax.set_xlabel("step (step 0 at 0.5)")
        ax.grid(alpha=0.3)
    cfg = run.config
    fig.suptitle(
        f"{run.simulator.structure.kind} concepts m={run.simulator.m}, d={cfg.dim}, "
        f"{cfg.model}, {cfg.optimizer} lr={cfg.lr:g}, noise={run.simulator.noise:g}"
    )
    return fig


def cosine_figure(run: OriginsRun, lm: LMConceptResult | None = None) -> Figure:
    from matplotlib.figure import Figure

    rows: list[tuple[str, ConceptGeometry, np.ndarray | None]] = [
        (f"simulation (d={run.config.dim}, {run.config.optimizer})", run.final, None)
    ]
    if lm is not None:
        rows.append((lm.source, lm.geometry, lm.within_shuffled))
    fig = Figure(figsize=(14, 4.6 * len(rows)), layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(rows), 3))
    for r, (title, geo, shuffled) in enumerate(rows):
        for c, (label, matrix) in enumerate(
            (("Euclidean", geo.between_euclid), ("causal", geo.between_causal))
        ):
            ax = axes[r, c]
            image = ax.imshow(matrix, vmin=-1, vmax=1, cmap="RdBu_r")
            ticks = np.arange(len(geo.names))
            ax.set_xticks(ticks, [_short(n) for n in geo.names], rotation=90, fontsize=7)
            ax.set_yticks(ticks, [_short(n) for n in geo.names], fontsize=7)
            off = _offdiag_abs(matrix)
            ax.set_title(f"{title}\n{label} cosines, mean |off-diag| {off:.3f}", fontsize=9)
            fig.colorbar(image, ax=ax, shrink=0.8)
        ax = axes[r, 2]
        pos = np.arange(len(geo.names))
        ax.barh(pos, geo.within, color="tab:blue", label="concept pairs")
        if shuffled is not None:
            ax.barh(pos, shuffled, color="tab:gray", alpha=0.6, height=0.4, label="shuffled")
        ax.set_yticks(pos, [_short(n) for n in geo.names], fontsize=7)
        ax.set_xlim(min(-0.1, float(np.nanmin(geo.within))), 1.0)
        ax.set_title("within-concept cosine", fontsize=9)
        ax.legend(fontsize=7)
    return fig


def sweep_figure(records: Sequence[Mapping[str, Any]], lm: LMConceptResult | None = None) -> Figure:
    """``records``: dicts with optimizer, dim and the final summary keys of a run; ``lm``
    adds the real LM's values as dashed horizontal lines."""
    from matplotlib.figure import Figure

    panels = (
        ("within_mean", "within-concept cosine (1 = parallel)"),
        ("between_euclid_mean_abs", "between-concept |cos|, Euclidean"),
        ("between_causal_mean_abs", "between-concept |cos|, causal"),
        ("excess_loss", "final loss above entropy floor"),
    )
    fig = Figure(figsize=(13, 3.6), layout="constrained")
    axes = fig.subplots(1, len(panels))
    optimizers = sorted({r["optimizer"] for r in records}, key=_optimizer_order)
    for ax, (key, title) in zip(axes, panels, strict=True):
        for opt in optimizers:
            mine = sorted((r for r in records if r["optimizer"] == opt), key=lambda r: r["dim"])
            ax.plot([r["dim"] for r in mine], [r[key] for r in mine], marker="o", label=opt)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("dimension d")
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
        if key == "excess_loss":
            ax.set_yscale("log")
        elif lm is not None:
            ax.axhline(lm.to_dict()["summary"][key], color="k", ls="--", lw=1, label=lm.source)
    if records:
        m = records[0].get("concepts")
        if m:
            for ax in axes:
                ax.axvline(m, color="gray", ls=":", lw=1)
    axes[0].legend(fontsize=8)
    return fig


def _optimizer_order(name: str) -> int:
    order = ("gd", "sgd", "adam", "muon")
    return order.index(name) if name in order else len(order)


def _offdiag_abs(matrix: np.ndarray) -> float:
    from convergent.origins.metrics import mean_abs_offdiagonal

    return mean_abs_offdiagonal(matrix)


def _short(name: str, width: int = 18) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"
