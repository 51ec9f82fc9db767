"""The paper's numbers as data: every row loads, and our rows find their published values."""

from __future__ import annotations

import math

import pytest

from convergent.errors import ConvergentError
from convergent.experiments import make_plan
from convergent.experiments.reproduce import preset_spec
from convergent.reference import (
    addition_setting,
    compare,
    paper_rows,
    published,
    source_setting,
    train_setting,
)
from convergent.reference.paper import parse_rows


def train(arch, optimizer="adamw", perturb=None, layers=2):
    return train_setting({"arch": arch, "optimizer": optimizer, "perturb": perturb,
                          "model": {"n_layers": layers}})


def test_every_row_has_an_origin_and_finite_values():
    rows = paper_rows()
    assert len({r.key for r in rows}) == len(rows)
    for row in rows:
        assert row.origin and row.values
        for by_t in row.values.values():
            assert all(2 <= t <= 10 and math.isfinite(lo) and lo <= hi
                       for t, (lo, hi) in by_t.items())
    figures = {r.key.partition("/")[0] for r in rows}
    assert figures == {"arch", "data", "fisher", "perturb", "addition"}


@pytest.mark.parametrize("setting, measure, t, value", [
    (train("transformer", "muon"), "kappa", 10, 85.4),
    (train("transformer", "muon", "none"), "lambda_max", 10, 23.3),
    (train("transformer", "muon", "none"), "cond_sw", 10, 122),
    (train("transformer"), "kappa", 10, 72.1),
    (train("mamba2"), "kappa", 10, 80.1),  # AdamW Mamba-2 beats Muon's 76.7
    (train("mamba2", "muon"), "kappa", 10, 76.7),
    (train("lstm", layers=2), "phi", 10, 337),  # a scaled-down LSTM stands for the 12-layer
    (train("lstm", layers=12), "kappa", 2, 9.0),
    (train("word2vec"), "kappa", 5, 25.0),
    (train("transformer", "muon", "context-64"), "kappa", 2, 93.5),
    (train("transformer", "muon", "isolate-2"), "kappa", 10, 53.0),
    (train("transformer", "muon", "unigram"), "kappa", 2, -5.9),
    (source_setting("tokens:bundled"), "phi", 10, 94.0),
    (source_setting("tokens:hf:HuggingFaceFW/fineweb-edu:sample-10BT"), "kappa", 10, 3),
    (addition_setting({"digits": 9, "chunk": 3}, {"arch": "transformer", "optimizer": "adamw"}),
     "kappa", 3, -24.2),
])
def test_matching_rows_find_the_published_value(setting, measure, t, value):
    paper = published(setting)[(measure, t)]
    assert paper.exact and paper.low == pytest.approx(value)


@pytest.mark.parametrize("setting", [
    train("lstm", layers=4),  # the paper's shallow LSTM: reported, no numbers
    train("transformer", "muon", "swap-global"),  # our old global swap is not the paper's
    train("transformer", "adamw", "swap"),  # perturbations were run with Muon only
    train("gdn", "muon", "context-2"),
    source_setting("cooc:bundled"),
    source_setting("glove-6b-50d"),
    addition_setting({"digits": 6, "chunk": 3}, {"optimizer": "muon"}),
])
def test_rows_without_a_published_value(setting):
    assert published(setting) == {}


def test_three_digit_addition_matches_only_the_single_token_format():
    whole = addition_setting({"digits": 3, "chunk": 3, "answer": "whole"},
                             {"optimizer": "muon"})
    bound = published(whole)[("kappa", 10)]
    assert not bound.exact and (bound.low, bound.high) == (-15, 15)
    assert bound.text() == "|·| ≤ 15"
    carry = addition_setting({"digits": 3, "chunk": 3, "answer": "carry-mod"},
                             {"optimizer": "muon"})
    assert published(carry) == {}


def test_compare_puts_the_paper_beside_ours():
    entry = {"periods": {"2": {"kappa": 90.0, "phi": 1.0}, "5": {"kappa": -3.0},
                         "10": {"kappa": 80.0, "phi": 30.0}},
             "fisher": {"10": {"lambda_max": 20.0, "cond_sw": float("nan")}}}
    result = compare("muon/transformer", train("transformer", "muon"), entry)
    by = {(v["measure"], v["period"]): v for v in result.to_dict()["values"]}
    assert by[("kappa", 10)]["ours"] == 80.0 and by[("kappa", 10)]["value"] == 85.4
    assert by[("kappa", 3)]["ours"] is None  # not measured here
    assert by[("cond_sw", 10)]["ours"] is None and by[("cond_sw", 10)]["value"] == 122
    assert by[("phi", 10)]["origin"].startswith("Fisher table")
    bounded = compare("3-digit", addition_setting({"digits": 3, "chunk": 3, "answer": "whole"},
                                                  {"optimizer": "adamw"}), entry)
    assert {v["within"] for v in bounded.values if v["ours"] is not None} == {False, True}
    none = compare("glove", source_setting("glove-6b-50d"), entry)
    assert not none.published and none.to_dict()["values"] == []


def test_the_quick_preset_rows_that_have_published_values():
    plan = make_plan(preset_spec("quick"))
    found = {}
    for member in plan.analyses["architectures"][1]:
        source = plan.jobs[member.job].config["source"]
        setting = (train_setting(plan.jobs[source["run"]].config["train"]) if "run" in source
                   else source_setting(source["spec"]))
        found[member.label] = bool(published(setting))
    assert [k for k, v in found.items() if not v] == ["cooc", "glove", "smollm2"]


def test_a_bad_row_is_refused():
    with pytest.raises(ConvergentError, match="match needs kind"):
        parse_rows({"rows": [{"key": "x", "label": "x", "origin": "y",
                              "match": {"kind": "train", "layers": 4}, "kappa": {"2": 1}}]})
    with pytest.raises(ConvergentError, match="neither a number"):
        parse_rows({"rows": [{"key": "x", "label": "x", "origin": "y",
                              "match": {"kind": "train"}, "kappa": {"2": "high"}}]})
