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


@pytest.mark.parametrize("extra, match", [
    ("x\tunknownword\trel0\n", None),
    ("x\ty\tlonely\n", "relation 'lonely' has 1 pair"),
])
def test_linearity_bad_pairs(tmp_path, capsys, extra, match):
    vec = glove_file(tmp_path / "vecs.txt")
    pairs = pairs_tsv(tmp_path / "pairs.tsv", extra=extra)
    code = main(["linearity", f"vectors:{vec}", "--pairs", str(pairs), "--out",
                 str(tmp_path / "o"), "--folds", "3"])
    if match is None:  # unknown words are dropped and reported, not fatal
        assert code == 0
        data = json.loads((tmp_path / "o" / "linearity.json").read_text())
        assert data["filter"]["dropped_count"]["rel0"] == 1
        assert "x: not in the vocabulary" in data["filter"]["dropped_examples"]["rel0"][0][2]
    else:
        assert code == 2
        assert match in capsys.readouterr().err


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
