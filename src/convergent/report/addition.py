"""Figures of the addition experiment: the paper-style figure and the training dynamics."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from convergent.report.numbers import draw_kappa_table, draw_spectra
from convergent.report.style import pyplot, save_figure

HIGHLIGHT = (2, 5, 10)
COLOURS = {2: "tab:blue", 5: "tab:orange", 10: "tab:green"}


def paper_entries(paper: dict[str, dict[str, float]], labels: Sequence[str],
                  notes: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Pseudo entries holding only the paper's kappa values (blank where not reported);
    ``notes`` (label -> text) is written across a row the paper reports only in words."""
    notes = notes or {}
    return [{"name": f"paper: {label}", "note": notes.get(label),
             "periods": {str(t): {"kappa": k} for t, k in paper.get(label, {}).items()}}
            for label in labels]


def plot_addition(entries: Sequence[dict[str, Any]], paper: Sequence[dict[str, Any]],
                  paths: Sequence[str | Path]) -> list[Path]:
    """Spectrum rows and our kappa table (one row per run), and the paper's kappa beside."""
    plt = pyplot()
    moduli = sorted({int(t) for e in entries for t in e["periods"]})
    height = 1.6 + 0.42 * max(len(entries), len(paper))
    fig, (left, mid, right) = plt.subplots(
        1, 3, figsize=(15, height), gridspec_kw={"width_ratios": [2.0, 1.0, 1.0]},
        constrained_layout=True)
    mesh = draw_spectra(left, entries)
    fig.colorbar(mesh, ax=left, fraction=0.04, pad=0.01)
    draw_kappa_table(mid, entries, moduli)
    mid.set_title("probe kappa (%), ours")
    if paper:
        draw_kappa_table(right, paper, moduli)
        right.set_yticks(range(len(paper)))
        right.set_yticklabels([p["name"] for p in paper], fontsize=7)
        right.yaxis.tick_right()
        right.set_title("paper (blank: not reported)")
        for row, entry in enumerate(paper):
            if entry.get("note"):
                right.text((len(moduli) - 1) / 2, row, entry["note"], ha="center",
                           va="center", fontsize=8)
    else:
        right.axis("off")
    return save_figure(fig, paths)


def plot_addition_dynamics(runs: Sequence[dict[str, Any]], paths: Sequence[str | Path]
                           ) -> list[Path]:
    """One column per setting; rows: test/train exact match, Phi_T, kappa against tokens.

    ``runs``: dicts with ``setting``, ``seed`` and ``dynamics`` (points with ``tokens``,
    ``test``, ``train`` and ``periods``). Every seed is drawn; T = 2, 5, 10 are bold, the
    other moduli faint.
    """
    plt = pyplot()
    settings = list(dict.fromkeys(r["setting"] for r in runs))
    fig, axes = plt.subplots(3, len(settings), figsize=(3.6 * len(settings), 8.2),
                             squeeze=False, sharex="col", constrained_layout=True)
    for col, setting in enumerate(settings):
        top, middle, bottom = axes[:, col]
        for run in (r for r in runs if r["setting"] == setting):
            points = sorted(run["dynamics"], key=lambda p: p["tokens"])
            tokens = np.array([p["tokens"] for p in points], dtype=float)
            top.plot(tokens, [p["test"]["exact_match"] for p in points], "-o", ms=3,
                     color="black", label="test" if run["seed"] == runs[0]["seed"] else None)
            top.plot(tokens, [p["train"]["exact_match"] for p in points], "--", lw=1,
                     color="grey", label="train" if run["seed"] == runs[0]["seed"] else None)
            moduli = sorted(int(t) for t in points[0]["periods"])
            for t in moduli:
                strong = t in HIGHLIGHT
                style = {"lw": 1.8 if strong else 0.6, "alpha": 1.0 if strong else 0.3,
                         "color": COLOURS.get(t, "grey"),
                         "label": f"T={t}" if strong and run is runs[0] else None}
                middle.plot(tokens, [p["periods"][str(t)]["phi"] for p in points], **style)
                bottom.plot(tokens, [p["periods"][str(t)]["kappa"] for p in points], **style)
        top.set_title(setting)
        top.set_ylim(-3, 103)
        middle.set_yscale("log")
        bottom.axhline(0, color="black", lw=0.6)
        lowest = min((p["periods"][t]["kappa"] for r in runs if r["setting"] == setting
                      for p in r["dynamics"] for t in p["periods"]), default=0.0)
        bottom.set_ylim(min(-25.0, lowest - 5), 103)
        bottom.set_xlabel("training tokens")
        if col == 0:
            top.set_ylabel("exact match (%)")
            middle.set_ylabel("Phi_T")
            bottom.set_ylabel("probe kappa (%)")
            top.legend(fontsize=7)
            bottom.legend(fontsize=7, title="controls faint", title_fontsize=6)
    return save_figure(fig, paths)
