"""``convergent linearity`` and ``convergent identify`` end to end on tiny inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
from linearity_fixtures import glove_file, pairs_tsv, tiny_lm

from convergent.cli import main


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CONVERGENT_CACHE", str(tmp_path / "cache"))


def test_linearity_on_word_vectors_writes_json_and_figures(tmp_path, capsys):
    vec = glove_file(tmp_path / "vecs.txt")
    pairs = pairs_tsv(tmp_path / "pairs.tsv")
    out = tmp_path / "out"
    assert main(["linearity", f"vectors:{vec}", "--pairs", str(pairs), "--out", str(out),
                 "--folds", "3"]) == 0
    data = json.loads((out / "linearity.json").read_text())
    assert [r["relation"] for r in data["relations"]] == ["rel0", "rel1", "rel2"]
    for rel in data["relations"]:
        assert rel["parallelism"]["euclidean"]["loo"] == pytest.approx(1.0, abs=1e-5)
        assert rel["linearity"]["whitened"]["offset"] == 1.0  # o = s + u_r exactly
    assert data["filter"]["kept"] == {"rel0": 6, "rel1": 6, "rel2": 6}
    assert any("do not apply" in s for s in data["identifiability"])
    for name in ("linearity_relations.png", "linearity_directions.svg"):
        assert (out / name).stat().st_size > 1000
    assert "kept 18 pairs" in capsys.readouterr().out


def test_identify_refuses_word_vectors(tmp_path, capsys):
    vec = glove_file(tmp_path / "vecs.txt")
    pairs = pairs_tsv(tmp_path / "pairs.tsv")
    code = main(["identify", f"vectors:{vec}", "--pairs", str(pairs), "--out",
                 str(tmp_path / "o")])
    assert code == 2
    err = capsys.readouterr().err
    assert "no unembedding or next-token distribution" in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("extra, dropped", [
    ("x\tunknownword\trel0\n", None),
    ("x\ty\tlonely\n", "lonely"),
])
def test_linearity_bad_pairs(tmp_path, capsys, extra, dropped):
    vec = glove_file(tmp_path / "vecs.txt")
    pairs = pairs_tsv(tmp_path / "pairs.tsv", extra=extra)
    code = main(["linearity", f"vectors:{vec}", "--pairs", str(pairs), "--out",
                 str(tmp_path / "o"), "--folds", "3"])
    assert code == 0  # unknown words and small relations are dropped and reported
    data = json.loads((tmp_path / "o" / "linearity.json").read_text())
    if dropped is None:
        assert data["filter"]["dropped_count"]["rel0"] == 1
        assert "x: not in the vocabulary" in data["filter"]["dropped_examples"]["rel0"][0][2]
        assert data["filter"]["dropped_by_reason"] == {"not in the vocabulary": 1}
    else:
        assert data["filter"]["dropped_relations"] == [dropped]
        assert "lonely (0 pair(s) < 3)" in capsys.readouterr().out


def test_park_folder_drops_case_folded_pairs_and_reports_them(tmp_path, capsys):
    vec = glove_file(tmp_path / "vecs.txt")
    folder = tmp_path / "word_pairs"
    folder.mkdir()
    for r in range(3):
        (folder / f"[s{r} - o{r}].txt").write_text(
            "".join(f"s{r}_{i}\to{r}_{i}\n" for i in range(6)))
    (folder / "[lower - upper].txt").write_text(
        "".join(f"s0_{i}\tS0_{i}\n" for i in range(6)) + "s1_0\ts1_1\n")
    out = tmp_path / "out"
    assert main(["linearity", f"vectors:{vec}", "--pairs", str(folder), "--out", str(out),
                 "--folds", "3"]) == 0
    data = json.loads((out / "linearity.json").read_text())
    assert data["pairs"] == "word_pairs (park)"
    assert [r["relation"] for r in data["relations"]] == ["[s0 - o0]", "[s1 - o1]",
                                                          "[s2 - o2]"]
    assert data["filter"]["dropped_by_reason"] == {"identical vectors after lower-casing": 6}
    assert data["filter"]["relations_dropped_because"] == {"[lower - upper]": "1 pair(s) < 3"}
    assert "identical vectors after lower-casing: 6" in capsys.readouterr().out


def test_lre_relations_count_any_listed_object(tmp_path):
    vec = glove_file(tmp_path / "vecs.txt")
    samples = [{"subject": f"s0_{i}", "object": f"o0_{i}"} for i in range(6)]
    samples += [{"subject": "s0_0", "object": "o1_0"}, {"subject": "s0_0", "object": "o1_1"}]
    rel = tmp_path / "data" / "factual" / "r.json"
    rel.parent.mkdir(parents=True)
    rel.write_text(json.dumps({"name": "rel zero", "prompt_templates": ["{} is"],
                               "samples": samples}, indent=4))
    single = {"name": "one object", "prompt_templates": ["{} of"],
              "samples": [{"subject": f"s1_{i}", "object": "o1_0"} for i in range(4)]}
    (tmp_path / "data" / "factual" / "one.json").write_text(json.dumps(single, indent=4))
    out = tmp_path / "out"
    assert main(["linearity", f"vectors:{vec}", "--pairs", str(tmp_path / "data"), "--out",
                 str(out), "--folds", "3"]) == 0
    data = json.loads((out / "linearity.json").read_text())
    assert data["filter"]["relations_dropped_because"] == {"one object": "one distinct object"}
    (row,) = data["relations"]
    lin = row["linearity"]["whitened"]
    assert lin["n_candidates"] == 8 and row["n_pairs"] == 8
    # s0_0 has 3 listed objects of 8, the other 5 subjects 1: each subject counts once
    assert lin["chance"] == pytest.approx((3 / 8 + 5 / 8) / 6)
    assert lin["offset"] == 1.0  # o = s + u exactly for the 5 others; s0_0 hits o0_0
    assert lin["chance_corrected"] == pytest.approx(
        (lin["top1"] - lin["chance"]) / (1 - lin["chance"]))
    assert data["settings"]["folds_grouped_by"] == "subject"


@pytest.mark.parametrize("args, match", [
    (["--min-pairs", "2"], "--min-pairs 2: at least 3 are needed"),
    (["--max-pairs", "2"], "--max-pairs 2: below --min-pairs 3"),
])
def test_min_pairs_refused_before_the_model_loads(tmp_path, capsys, args, match):
    pairs = pairs_tsv(tmp_path / "pairs.tsv")
    code = main(["linearity", "hf:no-such-org/no-such-model", "--pairs", str(pairs),
                 "--out", str(tmp_path / "o"), *args])
    assert code == 2
    err = capsys.readouterr().err
    assert match in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("name, content, match", [
    ("odd.txt", "one two three\n", "odd.txt:1: not a pairs file of a known format"),
    ("r.json", '{\n  "name": "r",\n  "prompt_templates": ["{} is"]\n}\n',
     "r.json:1: a JSON relation without samples"),
    ("t.json", '{\n  "name": "t",\n  "prompt_templates": [\n    "no slot"\n  ],\n'
     '  "samples": [{"subject": "a", "object": "b"}]\n}\n',
     "t.json:4: template 'no slot' has no subject slot"),
])
def test_bad_pairs_files_exit_2_naming_file_and_line(tmp_path, capsys, name, content, match):
    vec = glove_file(tmp_path / "vecs.txt")
    (tmp_path / name).write_text(content)
    code = main(["linearity", f"vectors:{vec}", "--pairs", str(tmp_path / name), "--out",
                 str(tmp_path / "o")])
    assert code == 2
    err = capsys.readouterr().err
    assert match in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists()


def test_identify_on_a_model_folder(tmp_path, capsys):
    model, tok = tiny_lm(seed=1)
    folder = tmp_path / "tiny"
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    pairs = pairs_tsv(tmp_path / "pairs.tsv")
    out = tmp_path / "out"
    assert main(["identify", str(folder), "--pairs", str(pairs), "--out", str(out),
                 "--samples", "1"]) == 0
    data = json.loads((out / "identify.json").read_text())
    assert max(data["max_kl"]) < 1e-10
    assert data["settings"]["max_abs_f_forward_vs_stored"] < 1e-9
    assert data["complexity"]["dim"] == 16
    rows = {r["statistic"]: r for r in data["table"]}
    assert rows["steering on f: change of log-odds"]["invariant"]
    assert (out / "identify.png").is_file()
    assert np.isfinite(rows["probe accuracy on f, whitened"]["value"])


def test_lre_relations_read_in_their_templates_at_a_layer(tmp_path, capsys):
    model, tok = tiny_lm(seed=2)
    folder = tmp_path / "tiny"
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    data = tmp_path / "data" / "linguistic"
    data.mkdir(parents=True)
    for r, template in enumerate(["the {} is", "a {} of the"]):
        (data / f"rel{r}.json").write_text(json.dumps({
            "name": f"rel{r}", "prompt_templates": [template],
            "samples": [{"subject": f"s{r}_{i}", "object": f"o{r}_{i}"} for i in range(6)],
        }, indent=4))
    out = tmp_path / "out"
    assert main(["linearity", str(folder), "--pairs", str(tmp_path / "data"), "--site",
                 "layer:1", "--prompt", "relation", "--out", str(out), "--folds", "3"]) == 0
    result = json.loads((out / "linearity.json").read_text())
    assert result["space"]["input"] == "layer.1:templates"
    assert result["space"]["templates"] == {"rel0": ["the {} is"], "rel1": ["a {} of the"]}
    assert [r["relation"] for r in result["relations"]] == ["rel0", "rel1"]
    # a folder without templates, or a template without a slot: refused before the model loads
    park = tmp_path / "word_pairs"
    park.mkdir()
    (park / "[s - o].txt").write_text("".join(f"s0_{i}\to0_{i}\n" for i in range(4)))
    capsys.readouterr()
    for extra, match in ((["--prompt", "relation"], "has no prompt templates"),
                         (["--template", "no slot"], "template 'no slot' has no")):
        code = main(["linearity", "hf:no-such-org/no-such-model", "--pairs", str(park),
                     "--site", "layer.1", "--out", str(tmp_path / "o2"), *extra])
        assert code == 2 and match in capsys.readouterr().err
    assert not (tmp_path / "o2").exists()
