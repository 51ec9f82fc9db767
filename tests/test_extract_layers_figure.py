"""The per-layer figure draws from results.json entries alone."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from convergent.report.layers import layer_entries, plot_layers


def _entry(name, site, kappa):
    freq = np.linspace(0, 0.5, 51)
    return {
        "name": name,
        "site": site,
        "spectrum": {"frequency": freq.tolist(), "magnitude": (1 + freq * 4).tolist()},
        "periods": {str(t): {"kappa": kappa + t, "baseline_kappa": 1.0,
                             "explained_by_tokens": t == 10} for t in range(2, 11)},
    }


def test_plot_layers_writes_png_and_svg(tmp_path):
    entries = [_entry("m", f"layer.{i}", 10.0 * i) for i in (2, 0, 1, 10)]
    entries += [_entry("m", "embed", 0.0), _entry("other", "layer.0", 5.0)]
    groups = layer_entries(entries)
    assert list(groups) == ["m", "other"]
    assert [e["site"] for e in groups["m"]] == ["embed", "layer.0", "layer.1", "layer.2",
                                                "layer.10"]
    written = plot_layers(entries, [tmp_path / "l.png", tmp_path / "l.svg"])
    assert [p.name for p in written] == ["l.png", "l.svg"]
    assert (tmp_path / "l.png").stat().st_size > 10_000
    assert plot_layers(entries[:2], tmp_path / "a.png")[0].is_file()
    assert plot_layers([_entry("m", "embed", 0.0)], [tmp_path / "none.png"]) == []
    assert not (tmp_path / "none.png").exists()
