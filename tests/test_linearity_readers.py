"""Pair readers on small fixtures written in exactly the peers' published formats."""

from __future__ import annotations

import json

import pytest

from convergent.errors import ConvergentError
from convergent.linearity.pairs import load_pairs
from convergent.linearity.readers import detect_format, read_pairs


def park_folder(root):
    """Park et al.'s ``word_pairs/[A - B].txt``: two tab-separated words, no header."""
    root.mkdir()
    (root / "[male - female].txt").write_text("actor\tactress\nboy\tgirl\nking\tqueen\n")
    (root / "[lower - upper].txt").write_text("always\tAlways\napple\tApple\n")
    (root / "[verb - V + ment].txt").write_text("advertise\tadvertisement/advertizement\n"
                                               "agree\tagreement\n")
    return root


def lre_relation(path, name="country capital city", samples=None, templates=None):
    """Hernandez et al.'s ``data/<kind>/<relation>.json``, indented by 4 as published."""
    data = {
        "name": name,
        "prompt_templates": templates or ["The capital city of {} is", "The capital of {} is"],
        "prompt_templates_zs": ["The capital of {} is the city of"],
        "properties": {"relation_type": "factual", "domain_name": "country",
                       "range_name": "city", "symmetric": False},
        "samples": samples if samples is not None else [
            {"subject": "United States", "object": "Washington D.C."},
            {"subject": "Canada", "object": "Ottawa"},
            {"subject": "France", "object": "Paris"}],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=4))
    return path


def test_park_folder_takes_the_relation_from_the_file_name(tmp_path):
    pairs = load_pairs(str(park_folder(tmp_path / "word_pairs")))
    assert pairs.format == "park"
    assert list(pairs.relations) == ["[lower - upper]", "[male - female]", "[verb - V + ment]"]
    assert pairs.relations["[male - female]"] == (("actor", "actress"), ("boy", "girl"),
                                                  ("king", "queen"))
    # "a/b" lists several objects of one subject
    assert pairs.answers("[verb - V + ment]")["advertise"] == {"advertisement",
                                                               "advertizement"}
    one = read_pairs(tmp_path / "word_pairs" / "[male - female].txt")
    assert one.format == "park" and list(one.relations) == ["[male - female]"]


def test_bats_folder_reads_category_subfolders(tmp_path):
    root = tmp_path / "BATS_3.0"
    (root / "1_Inflectional_morphology").mkdir(parents=True)
    (root / "3_Encyclopedic_semantics").mkdir()
    (root / "1_Inflectional_morphology" / "I01 [noun - plural_reg].txt").write_text(
        "album\talbums\napplication\tapplications\n")
    (root / "3_Encyclopedic_semantics" / "E01 [country - capital].txt").write_text(
        "australia\tcanberra\nfrance\tparis\nswitzerland\tbern/berne\n")
    pairs = read_pairs(root)
    assert pairs.format == "bats" and detect_format(root) == "bats"
    assert list(pairs.relations) == ["I01 [noun - plural_reg]", "E01 [country - capital]"]
    assert ("switzerland", "berne") in pairs.relations["E01 [country - capital]"]


def test_lre_folder_keeps_templates_and_several_objects(tmp_path):
    data = tmp_path / "data"
    lre_relation(data / "factual" / "country_capital_city.json")
    lre_relation(data / "linguistic" / "adj_antonym.json", name="adjective antonym",
                 templates=["The opposite of {} is"],
                 samples=[{"subject": "big", "object": "small"},
                          {"subject": "big", "object": "little"},
                          {"subject": "hot", "object": "cold"}])
    pairs = read_pairs(data)
    assert pairs.format == "lre"
    assert pairs.templates["country capital city"] == ("The capital city of {} is",
                                                       "The capital of {} is")
    assert pairs.templates["adjective antonym"] == ("The opposite of {} is",)
    assert pairs.answers("adjective antonym")["big"] == {"small", "little"}
    assert pairs.relations["country capital city"][0] == ("United States", "Washington D.C.")
    single = read_pairs(data / "factual" / "country_capital_city.json")
    assert list(single.relations) == ["country capital city"] and single.format == "lre"


def test_park_paired_contexts_jsonl(tmp_path):
    rows = [{"lang0": "fr", "lang1": "de", "word0": "déjà", "word1": "bereits",
             "contexts0": ["La pizza est déjà"], "contexts1": ["Die Pizza ist bereits",
                                                                 "Er war bereits"]},
            {"lang0": "fr", "lang1": "de", "word0": "roi", "word1": "König",
             "contexts0": ["Le roi"], "contexts1": ["Der König"]}]
    path = tmp_path / "fr-de.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))  # ASCII-escaped, as Park's
    pairs = read_pairs(path)
    assert pairs.format == "contexts" and list(pairs.relations) == ["fr-de"]
    assert pairs.relations["fr-de"] == (("déjà", "bereits"), ("roi", "König"))
    assert pairs.contexts["fr-de"][("déjà", "bereits")] == (
        ("La pizza est déjà",), ("Die Pizza ist bereits", "Er war bereits"))
    assert read_pairs(tmp_path).relations == pairs.relations  # a folder of them


def test_named_format_overrides_detection(tmp_path):
    path = tmp_path / "p.txt"
    path.write_text("a\tb\tc\n")
    assert read_pairs(path).format == "tsv"
    with pytest.raises(ConvergentError, match=r"p.txt:1: expected 2 tab-separated"):
        read_pairs(path, "park")
    with pytest.raises(ConvergentError, match="--pairs-format xml: expected one of"):
        read_pairs(path, "xml")


@pytest.mark.parametrize("name, content, match", [
    ("odd.txt", "\n# note\none two three four\n", r"odd.txt:3: not a pairs file of a known"),
    ("odd.json", '[1, 2]\n', r"odd.json:1: not a pairs file of a known format"),
])
def test_unknown_format_names_file_and_line(tmp_path, name, content, match):
    (tmp_path / name).write_text(content)
    with pytest.raises(ConvergentError, match=match):
        read_pairs(tmp_path / name)


def test_lre_relation_without_samples_names_file_and_line(tmp_path):
    path = lre_relation(tmp_path / "r.json", samples=[])
    with pytest.raises(ConvergentError, match=r"r.json:16: a JSON relation without samples"):
        read_pairs(path)
    path.write_text('{"name": "x", "prompt_templates": ["{} is"]}')
    with pytest.raises(ConvergentError, match=r"r.json:1: a JSON relation without samples"):
        read_pairs(path)


def test_template_without_subject_slot_names_file_and_line(tmp_path):
    path = lre_relation(tmp_path / "r.json", templates=["The capital city of {} is",
                                                         "The capital is"])
    with pytest.raises(ConvergentError,
                       match=r"r.json:5: template 'The capital is' has no subject slot"):
        read_pairs(path)


def test_bad_rows_name_the_line(tmp_path):
    (tmp_path / "c.jsonl").write_text('{"word0": "a", "word1": "b", "contexts0": []}\n')
    with pytest.raises(ConvergentError, match=r"c.jsonl:1: expected a JSON object with keys"):
        read_pairs(tmp_path / "c.jsonl")
    lre_relation(tmp_path / "s.json", samples=[{"subject": "a", "object": "b"},
                                                {"subject": "c"}])
    with pytest.raises(ConvergentError, match=r"s.json:\d+: sample 1 needs a subject"):
        read_pairs(tmp_path / "s.json")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConvergentError, match="no pairs files"):
        read_pairs(empty)
