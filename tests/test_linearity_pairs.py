"""Concept-pair datasets: the Google analogy set, user files, the filter report."""

from __future__ import annotations

import json

import pytest
from linearity_fixtures import pairs_tsv

from convergent.errors import ConvergentError
from convergent.linearity.pairs import (
    MIN_PAIRS,
    PairSet,
    check_min_pairs,
    filter_pairs,
    load_pairs,
    read_pairs_file,
)


def test_google_analogy_has_its_14_sections_as_relations():
    pairs = load_pairs("google-analogy")
    assert len(pairs.relations) == 14
    assert ("Athens", "Greece") in pairs.relations["capital-common-countries"]
    assert ("boy", "girl") in pairs.relations["family"]
    assert len(pairs.relations["family"]) == 23  # unique pairs, not analogy lines
    assert all(len(set(ps)) == len(ps) for ps in pairs.relations.values())


def test_tsv_with_header_and_jsonl_give_the_same_pairs(tmp_path):
    tsv = read_pairs_file(pairs_tsv(tmp_path / "p.tsv"))
    rows = [{"subject": s, "object": o, "relation": r}
            for r, ps in tsv.relations.items() for s, o in ps]
    (tmp_path / "p.jsonl").write_text("\n".join(json.dumps(x) for x in rows))
    jsonl = read_pairs_file(tmp_path / "p.jsonl")
    assert dict(jsonl.relations) == dict(tsv.relations)
    assert list(tsv.relations) == ["rel0", "rel1", "rel2"] and len(tsv.relations["rel0"]) == 6


@pytest.mark.parametrize("content, match", [
    ("a\tb\n", "expected 3 tab-separated fields"),
    ("a\t\tr\n", "empty subject"),
    ("", "no pairs"),
])
def test_bad_tsv_files_name_the_line(tmp_path, content, match):
    path = tmp_path / "bad.tsv"
    path.write_text(content)
    with pytest.raises(ConvergentError, match=match):
        read_pairs_file(path, "tsv")


def test_bad_jsonl_and_missing_file(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"subject": "a", "object": "b"}\n')
    with pytest.raises(ConvergentError, match=r"bad.jsonl:1: expected a JSON object"):
        read_pairs_file(path)
    with pytest.raises(ConvergentError, match="neither a built-in pair set"):
        load_pairs(str(tmp_path / "missing.tsv"))


def test_relation_with_one_pair_is_refused(tmp_path):
    pairs = read_pairs_file(pairs_tsv(tmp_path / "p.tsv", extra="x\ty\tlonely\n"))
    with pytest.raises(ConvergentError, match="relation 'lonely' has 1 pair"):
        pairs.require(3)


def test_filter_reports_kept_dropped_and_dropped_relations():
    pairs = PairSet("t", {"r1": (("a", "b"), ("c", "d"), ("e", "zz")),
                          "r2": (("zz", "a"), ("b", "c"))})
    known = {"a", "b", "c", "d", "e"}
    kept, report = filter_pairs(pairs, lambda w: None if w in known else "unknown", "known", 2)
    assert dict(kept.relations) == {"r1": (("a", "b"), ("c", "d"))}
    assert report.kept == {"r1": 2, "r2": 1}
    assert report.dropped["r1"] == (("e", "zz", "zz: unknown"),)
    assert report.dropped_relations == ("r2",)
    assert report.reasons == {"unknown": 2}
    assert "kept 3 pairs, dropped 2" in report.summary()
    with pytest.raises(ConvergentError, match="no relation keeps"):
        filter_pairs(pairs, lambda w: "unknown", "none", 2)


def test_degenerate_pairs_are_dropped_and_counted_per_reason():
    rel = (("apple", "Apple"), ("boy", "girl"), ("boy", "girl"), ("x", "x"), ("man", "woman"),
           ("king", "queen"))
    pairs = PairSet("t", {"r": rel, "one object": (("a", "o"), ("b", "o"), ("c", "o")),
                          "one subject": (("s", "p"), ("s", "q"), ("s", "r"))},
                    templates={"r": ("{} is",)})
    kept, report = filter_pairs(pairs, lambda w: None, "all", 3, key=str.lower,
                                same_key="identical vectors after lower-casing")
    assert kept.relations == {"r": (("boy", "girl"), ("man", "woman"), ("king", "queen"))}
    assert kept.templates == {"r": ("{} is",)}
    assert report.reasons == {"identical vectors after lower-casing": 1, "duplicate pair": 1,
                              "subject equals object": 1}
    assert report.relation_reasons == {"one object": "one distinct object",
                                       "one subject": "one distinct subject"}
    data = report.to_dict()
    assert data["dropped_by_reason"]["duplicate pair"] == 1
    assert "one object (one distinct object)" in report.summary()


def test_min_pairs_below_the_folds_needed_is_refused():
    assert check_min_pairs(MIN_PAIRS) == MIN_PAIRS
    with pytest.raises(ConvergentError, match="--min-pairs 2: at least 3"):
        check_min_pairs(2)


def test_answers_list_every_object_of_a_subject():
    pairs = PairSet("t", {"r": (("a", "x"), ("a", "y"), ("b", "x"))})
    assert pairs.answers("r") == {"a": {"x", "y"}, "b": {"x"}}
