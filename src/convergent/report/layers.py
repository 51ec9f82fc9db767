"""The per-layer figure: a layer x modulus kappa heatmap beside the per-layer spectra.

One row of two panels per source that has ``layer.i`` entries in ``results.json`` (its
``embed``, ``final_norm`` and ``unembed`` entries join as the first and last rows).
Separable cells (kappa >= 10) whose kappa the token-identity baseline explains
(``explained_by_tokens``) get a dot after the number, so a trivially separable layer is
not read as a learned feature.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from convergent.report.numbers import MAGNITUDE_RANGE, magnitude_colorbar, magnitude_norm
from convergent.report.style import pyplot, save_figure


def _depth(site: str) -> float:
    """Order of sites through the model: embed, layer.0, layer.1, ..., final_norm, unembed."""
    if site.startswith("layer."):
        return float(site.split(".", 1)[1])
    return {"embed": -1.0, "final_norm": 1e6, "unembed": 1e6 + 1}.get(site, 1e6 + 2)


def layer_entries(entries: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Per source that has ``layer.i`` entries: all its entries, ordered through the model
    (embed, layer.0, ..., final_norm, unembed)."""
    layered = {e["name"] for e in entries if str(e.get("site", "")).startswith("layer.")}
    groups: dict[str, list[dict[str, Any]]] = {}
    for entry in entries:
        if entry["name"] in layered:
            groups.setdefault(entry["name"], []).append(entry)
    for rows in groups.values():
        rows.sort(key=lambda e: _depth(str(e.get("site", "embed"))))
    return groups


def _row_name(site: str) -> str:
    return site.split(".", 1)[1] if site.startswith("layer.") else site


def _kappa_panel(ax: Any, rows: Sequence[dict[str, Any]], moduli: Sequence[int]) -> Any:
    from matplotlib.colors import TwoSlopeNorm

    cells = [[e["periods"].get(str(t), {}) for t in moduli] for e in rows]
    table = np.array([[c.get("kappa", np.nan) for c in row] for row in cells], dtype=float)
    image = ax.imshow(table, cmap="RdYlGn", aspect="auto",
                      norm=TwoSlopeNorm(vmin=-25, vcenter=0, vmax=100))
    small = len(rows) <= 40
    for (i, j), value in np.ndenumerate(table):
        if np.isfinite(value) and small:
            # mark separable cells (kappa >= 10) that token identity alone explains
            explained = cells[i][j].get("explained_by_tokens") and value >= 10
            mark = "\u00b7" if explained else ""
            ax.text(j, i, f"{value:.0f}{mark}", ha="center", va="center", fontsize=6.5)
    ax.set_xticks(range(len(moduli)))
    ax.set_xticklabels([str(t) for t in moduli])
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([_row_name(str(e["site"])) for e in rows], fontsize=7)
    ax.set_xlabel("modulus T")
    ax.set_ylabel("layer")
    return image


def _spectra_panel(ax: Any, rows: Sequence[dict[str, Any]]) -> Any:
    freq = np.asarray(rows[0]["spectrum"]["frequency"], dtype=float)
    mags = np.array([np.asarray(e["spectrum"]["magnitude"], dtype=float) for e in rows])
    step = freq[1] - freq[0] if freq.size > 1 else 0.5
    image = ax.imshow(np.clip(mags, *MAGNITUDE_RANGE), cmap="magma", aspect="auto",
                      norm=magnitude_norm(), interpolation="nearest",
                      extent=(freq[0] - step / 2, freq[-1] + step / 2, len(rows) - 0.5, -0.5))
    for v in (0.1, 0.2, 0.3, 0.4, 0.5):
        ax.axvline(v, color="white", lw=0.5, ls=":", alpha=0.6)
    ax.set_xlim(0, 0.5)
    ax.set_yticks([])
    ax.set_xlabel("frequency (cycles per number)")
    return image


def plot_layers(entries: Sequence[dict[str, Any]], paths: Sequence[str | Path] | str | Path,
                path_svg: str | Path | None = None) -> list[Path]:
    """Write the per-layer figure for the layered entries of ``entries`` to ``paths``
    (a list of files, or a PNG path and an SVG path); nothing is written without layers."""
    if isinstance(paths, str | Path):
        paths = [paths] + ([path_svg] if path_svg is not None else [])
    groups = layer_entries(entries)
    if not groups:
        return []
    plt = pyplot()
    moduli = sorted({int(t) for rows in groups.values() for e in rows for t in e["periods"]})
    heights = [max(2.5, 0.18 * len(rows) + 1.2) for rows in groups.values()]
    fig, axes = plt.subplots(len(groups), 2, figsize=(12, sum(heights)), squeeze=False,
                             gridspec_kw={"width_ratios": [1, 1.6], "height_ratios": heights},
                             constrained_layout=True)
    for (name, rows), (left, right) in zip(groups.items(), axes, strict=True):
        image = _kappa_panel(left, rows, moduli)
        left.set_title(f"{name}: probe kappa (%) per layer  (\u00b7 = explained by tokens)",
                       fontsize=9)
        fig.colorbar(image, ax=left, fraction=0.05, pad=0.01)
        mesh = _spectra_panel(right, rows)
        right.set_title(f"{name}: Fourier magnitude / median per layer", fontsize=9)
        magnitude_colorbar(fig, mesh, right, fraction=0.04, pad=0.01)
    return save_figure(fig, paths)
