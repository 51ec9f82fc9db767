"""The paper's number figure: Fourier magnitude heatmap, kappa table, Fisher eigenvalues.

The magnitude uses the paper's logarithmic colour scale over 1..4 (ticks 1, 1.5, 2, 3, 4);
the eigenvalue panel shows, per row, all T-1 eigenvalues of S_W^-1 S_B for each period T
(one block of cells per T, largest first), on a logarithmic scale.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from convergent.report.style import pyplot, save_figure

MAGNITUDE_RANGE = (1.0, 4.0)  # the paper's colour scale for the normalized magnitude
MAGNITUDE_TICKS = (1.0, 1.5, 2.0, 3.0, 4.0)


def magnitude_norm() -> Any:
    """The paper's logarithmic colour scale for the normalized magnitude, 1..4."""
    from matplotlib.colors import LogNorm

    return LogNorm(vmin=MAGNITUDE_RANGE[0], vmax=MAGNITUDE_RANGE[1], clip=True)


def magnitude_colorbar(fig: Any, mesh: Any, ax: Any, **options: Any) -> Any:
    """A colour bar with the paper's ticks 1, 1.5, 2, 3, 4."""
    bar = fig.colorbar(mesh, ax=ax, **options)
    bar.set_ticks(list(MAGNITUDE_TICKS))
    bar.set_ticklabels([f"{t:g}" for t in MAGNITUDE_TICKS])
    bar.minorticks_off()
    return bar


def row_label(entry: dict[str, Any]) -> str:
    site = entry.get("site", "embed")
    return entry["name"] if site == "embed" else f"{entry['name']} [{site}]"


def draw_spectra(ax: Any, entries: Sequence[dict[str, Any]]) -> Any:
    """One row per entry: normalized magnitude over frequency 0..0.5, log scale 1..4."""
    mesh = None
    for row, entry in enumerate(entries):
        freq = np.asarray(entry["spectrum"]["frequency"])
        mag = np.asarray(entry["spectrum"]["magnitude"])
        step = freq[1] - freq[0] if freq.size > 1 else 0.5
        edges = np.concatenate([freq - step / 2, [freq[-1] + step / 2]]).clip(0, 0.5)
        mesh = ax.pcolormesh(
            edges,
            [row, row + 1],
            np.clip(mag, *MAGNITUDE_RANGE)[None, :],
            cmap="magma",
            norm=magnitude_norm(),
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


def eigenvalue_table(
    entries: Sequence[dict[str, Any]], moduli: Sequence[int]
) -> tuple[np.ndarray, list[int]]:
    """[entries, sum_T (T-1)]: each period's eigenvalues (largest first); NaN when absent.

    Also returns where each period's block starts (for the x ticks)."""
    starts, width = [], 0
    for t in moduli:
        starts.append(width)
        width += t - 1
    table = np.full((len(entries), width), np.nan)
    for i, entry in enumerate(entries):
        for t, start in zip(moduli, starts, strict=True):
            values = entry.get("fisher", {}).get(str(t), {}).get("eigenvalues") or []
            values = np.asarray(values[: t - 1], dtype=float)
            table[i, start : start + values.size] = values
    return table, starts


def draw_eigenvalues(ax: Any, entries: Sequence[dict[str, Any]], moduli: Sequence[int]) -> Any:
    """All T-1 eigenvalues of S_W^-1 S_B per period, one block per T, log colour scale."""
    from matplotlib.colors import LogNorm

    table, starts = eigenvalue_table(entries, moduli)
    finite = table[np.isfinite(table) & (table > 0)]
    high = float(finite.max()) if finite.size else 1.0
    low = max(float(finite.min()) if finite.size else 1e-3, high * 1e-4)
    image = ax.imshow(np.clip(table, low, high), cmap="viridis", aspect="auto",
                      norm=LogNorm(vmin=low, vmax=high), interpolation="nearest")
    for start in starts[1:]:
        ax.axvline(start - 0.5, color="white", lw=1.2)
    ax.set_xticks([s + (t - 2) / 2 for s, t in zip(starts, moduli, strict=True)])
    ax.set_xticklabels([str(t) for t in moduli])
    ax.set_yticks([])
    ax.set_xlabel("period T (its T-1 eigenvalues, largest first)")
    ax.set_title("eigenvalues of S_W^-1 S_B")
    return image


def peak_lines(entries: Sequence[dict[str, Any]]) -> list[str]:
    """One line per entry: its strongest spectral peaks (frequency, magnitude, harmonic of T)."""
    lines = []
    for entry in entries:
        peaks = entry.get("spectrum", {}).get("peaks") or []
        cells = [
            f"{p['frequency']:.3f} ({p['magnitude']:.1f}x"
            + (f", T={p['harmonic_of']})" if p.get("harmonic_of") else ", off-harmonic)")
            for p in peaks
        ]
        lines.append(f"{row_label(entry)[:40]:<40} " + ("  ".join(cells) or "no peaks"))
    return lines


def plot_numbers(entries: Sequence[dict[str, Any]], paths: Sequence[str | Path]) -> list[Path]:
    """The three-panel figure for ``results.json`` source entries; readable for 1 to 12+ rows."""
    plt = pyplot()
    moduli = sorted({int(t) for e in entries for t in e["periods"]})
    height = 1.4 + 0.42 * len(entries)
    fig, (left, middle, right) = plt.subplots(
        1, 3, figsize=(17, height), gridspec_kw={"width_ratios": [2.2, 1, 1.4]},
        constrained_layout=True,
    )
    mesh = draw_spectra(left, entries)
    magnitude_colorbar(fig, mesh, left, fraction=0.04, pad=0.01)
    image = draw_kappa_table(middle, entries, moduli)
    fig.colorbar(image, ax=middle, fraction=0.06, pad=0.02)
    eigen = draw_eigenvalues(right, entries, moduli)
    fig.colorbar(eigen, ax=right, fraction=0.05, pad=0.02)
    return save_figure(fig, paths)
