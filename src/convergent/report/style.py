"""Shared matplotlib set-up: headless backend and atomic saving in several formats."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from convergent.io import atomic_path


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, paths: Sequence[str | Path], dpi: int = 150) -> list[Path]:
    """Save ``fig`` to every path (format from the suffix), each atomically, then close it."""
    plt = pyplot()
    written = []
    for path in paths:
        target = Path(path)
        with atomic_path(target) as tmp:
            fig.savefig(tmp, format=target.suffix.lstrip("."), dpi=dpi, bbox_inches="tight")
        written.append(target)
    plt.close(fig)
    return written
