"""Figures of the linearity and identify results (read results only; matplotlib lazily)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from convergent.linearity.results import IdentifyResult, LinearityResult, offdiag_abs_mean


def _short(name: str) -> str:
    return name.replace("gram", "").replace("capital-", "cap-")[:22]


def plot_directions(result: LinearityResult, paths: Sequence[str | Path]) -> list[Path]:
    """Concept-direction cosine matrix, one panel per inner product."""
    from convergent.report.style import pyplot, save_figure

    plt = pyplot()
    keys = list(result.directions)
    names = [_short(n) for n in result.relation_names]
    size = max(3.5, 0.32 * len(names) + 1.5)
    fig, axes = plt.subplots(1, len(keys), figsize=(size * len(keys), size), squeeze=False)
    for j, (ax, key) in enumerate(zip(axes[0], keys, strict=True)):
        mat = np.asarray(result.directions[key])
        im = ax.imshow(mat, vmin=-1, vmax=1, cmap="RdBu_r")
        ax.set_title(f"{key}: mean |cos| off-diag {offdiag_abs_mean(mat):.3f}", fontsize=9)
        ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
        ax.set_yticks(range(len(names)), names if j == 0 else [], fontsize=7)
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.7, label="cosine of concept directions")
    fig.suptitle(f"{result.source} ({result.space.get('output')}): relation directions",
                 fontsize=10)
    return save_figure(fig, paths)


def plot_relations(result: LinearityResult, paths: Sequence[str | Path]) -> list[Path]:
    """Per relation: parallelism (with baselines), retrieval (with chance), probe accuracy."""
    from convergent.report.style import pyplot, save_figure

    plt = pyplot()
    rels = result.relations
    names = [_short(r.relation) for r in rels]
    keys = [ip["key"] for ip in result.inner_products]
    y = np.arange(len(rels))
    h = 0.8 / len(keys)
    fig, axes = plt.subplots(1, 3, figsize=(14, 0.32 * len(rels) + 2), sharey=True)
    for j, key in enumerate(keys):
        off = (j - (len(keys) - 1) / 2) * h
        axes[0].barh(y + off, [r.parallelism[key].loo for r in rels], h, label=key)
        axes[0].scatter([r.parallelism[key].shuffled for r in rels], y + off, marker="|",
                        color="k", s=30)
        axes[1].barh(y + off, [r.linearity[key].top1 for r in rels], h, label=key)
        axes[2].barh(y + off, [r.probe[key].accuracy for r in rels], h, label=key)
    axes[1].scatter([r.linearity[keys[0]].chance for r in rels], y, marker="|", color="k",
                    s=60, label="chance")
    offsets = [r.linearity[keys[0]].offset for r in rels]
    if all(o is not None for o in offsets):
        axes[1].scatter(offsets, y, marker="x", color="gray", s=20, label="offset o=s+mean")
    axes[0].set_title("parallelism: leave-one-out cos (| = shuffled)", fontsize=9)
    axes[1].set_title("relational linearity: held-out top-1", fontsize=9)
    axes[2].set_title("probe: object vs subject accuracy", fontsize=9)
    axes[2].axvline(0.5, color="k", lw=0.5)
    axes[0].set_yticks(y, names, fontsize=7)
    for ax in axes:
        ax.set_xlim(min(0, ax.get_xlim()[0]), 1.02)
    axes[1].legend(fontsize=7, loc="lower right")
    fig.suptitle(f"{result.source} on {result.pairs}", fontsize=10)
    return save_figure(fig, paths)


def plot_identify(result: IdentifyResult, paths: Sequence[str | Path]) -> list[Path]:
    """Max |change| of each statistic across equivalent models (log scale), by verdict."""
    from convergent.report.style import pyplot, save_figure

    plt = pyplot()
    rows = result.table
    fig, ax = plt.subplots(figsize=(8, 0.3 * len(rows) + 1.5))
    vals = [max(r.max_abs_change, 1e-17) for r in rows]
    colors = ["tab:green" if r.invariant else "tab:red" for r in rows]
    ax.barh(range(len(rows)), vals, color=colors)
    ax.set_xscale("log")
    ax.axvline(result.settings["tol"], color="k", ls="--", lw=0.8, label="tolerance")
    ax.set_yticks(range(len(rows)), [r.statistic for r in rows], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("max |change| over equivalent models (green: invariant)")
    c = result.complexity
    ax.set_title(f"{result.source}: rank g {c.rank_unembedding}/{c.dim}, rank f "
                 f"{c.rank_contexts}/{c.dim}, max KL {max(result.max_kl):.1e}", fontsize=9)
    ax.legend(fontsize=7)
    return save_figure(fig, paths)
