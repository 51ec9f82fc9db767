"""The paper's number figure: Fourier magnitude heatmap (left) and kappa table (right)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from convergent.report.style import pyplot, save_figure

MAGNITUDE_RANGE = (1.0, 4.0)  # the paper's colour scale for the normalized magnitude


def row_label(entry: dict[str, Any]) -> str:
    site = entry.get("site", "embed")
    return entry["name"] if site == "embed" else f"{entry['name']} [{site}]"


def draw_spectra(ax: Any, entries: Sequence[dict[str, Any]]) -> Any:
    """One row per entry: normalized magnitude over frequency 0..0.5, clipped to 1..4."""
    mesh = None
    for row, entry in enumerate(entries):
        freq = np.asarray(entry["spectrum"]["frequency"])
        mag = np.asarray(entry["spectrum"]["magnitude"])
        step = freq[1] - freq[0] if freq.size > 1 else 0.5
        edges = np.concatenate([freq - step / 2, [freq[-1] + step / 2]]).clip(0, 0.5)
        mesh = ax.pcolormesh(
            edges,
            [row, row + 1],
            mag[None, :],
            cmap="magma",
            vmin=MAGNITUDE_RANGE[0],
            vmax=MAGNITUDE_RANGE[1],
            shading="flat",
        )
    for v in (0.1, 0.2, 0.3, 0.4, 0.5):
        ax.axvline(v, color="white", lw=0.5, ls=":", alpha=0.6)
    ax.set_xlim(0, 0.5)
    ax.set_ylim(len(entries), 0)
    ax.set_yticks(np.arange(len(entries)) + 0.5)
    ax.set_yticklabels([row_label(e) for e in entries])
    ax.set_xlabel("frequency (cycles per number)")
    ax.set_title("Fourier magnitude / median")
    return mesh


def draw_kappa_table(ax: Any, entries: Sequence[dict[str, Any]], moduli: Sequence[int]) -> Any:
    """Cohen's kappa (%) per entry and modulus, annotated, red-white-green scale."""
    from matplotlib.colors import TwoSlopeNorm

    table = np.array(
        [[e["periods"].get(str(t), {}).get("kappa", np.nan) for t in moduli] for e in entries]
    )
    image = ax.imshow(
        table, cmap="RdYlGn", norm=TwoSlopeNorm(vmin=-25, vcenter=0, vmax=100), aspect="auto"
    )
    for (i, j), value in np.ndenumerate(table):
        if np.isfinite(value):
            period = entries[i]["periods"].get(str(moduli[j]), {})
            mark = "*" if period.get("explained_by_tokens") else ""
            ax.text(j, i, f"{value:.0f}{mark}", ha="center", va="center", fontsize=8)
    ax.set_xticks(range(len(moduli)))
    ax.set_xticklabels([str(t) for t in moduli])
    ax.set_yticks([])
    ax.set_xlabel("modulus T")
    explained = any(p.get("explained_by_tokens") for e in entries for p in e["periods"].values())
    ax.set_title("probe kappa (%)" + ("  * = token identity explains it" if explained else ""))
    return image


def plot_numbers(entries: Sequence[dict[str, Any]], paths: Sequence[str | Path]) -> list[Path]:
    """The two-panel figure for ``results.json`` source entries; readable for 1 to 12+ rows."""
    plt = pyplot()
    moduli = sorted({int(t) for e in entries for t in e["periods"]})
    height = 1.4 + 0.42 * len(entries)
    fig, (left, right) = plt.subplots(
        1, 2, figsize=(12, height), gridspec_kw={"width_ratios": [2.2, 1]}, constrained_layout=True
    )
    mesh = draw_spectra(left, entries)
    fig.colorbar(mesh, ax=left, fraction=0.04, pad=0.01)
    image = draw_kappa_table(right, entries, moduli)
    fig.colorbar(image, ax=right, fraction=0.06, pad=0.02)
    return save_figure(fig, paths)
