"""Extraction caches: written by ``convergent extract``, resumed after a kill, read back."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from hf_fixtures import make_model, quiet_and_isolated  # noqa: E402

from convergent.cli import main  # noqa: E402
from convergent.errors import ConvergentError  # noqa: E402
from convergent.extract import engine as engine_module  # noqa: E402
from convergent.sources import open_source  # noqa: E402
from convergent.sources.cache import open_cache  # noqa: E402
from convergent.sources.hf import open_hf  # noqa: E402

SITES = ["embed", "layer:all", "final_norm", "unembed"]


@pytest.fixture(scope="module", autouse=True)
def isolated(tmp_path_factory):
    yield from quiet_and_isolated(tmp_path_factory)


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    return make_model("llama", tmp_path_factory.mktemp("m") / "llama")


def _arrays(folder):
    source = open_cache(str(folder))
    return {r.site: r for r in source.number_representations(range(0, 40), SITES)}


def test_extract_then_read_back(llama, tmp_path):
    out = tmp_path / "cache"
    source = open_hf(str(llama), cache_dir=str(tmp_path / "auto"))
    folder, manifest = source.extract(list(range(40)), "numbers", SITES, out=out, shard_size=16)
    assert folder == out and manifest["complete"]
    assert (out / "cache.json").is_file() and len(manifest["shards"]) == 3
    assert manifest["plan"]["sites"] == ["embed", "layer.0", "layer.1", "layer.2",
                                         "final_norm", "unembed"]
    assert manifest["plan"]["weights_sha256"] and manifest["meta"]["n_layers"] == 3
    direct = {r.site: r for r in source.number_representations(range(40), SITES)}
    for spec in (str(out), f"cache:{out}"):
        cached = {r.site: r for r in open_source(spec).number_representations(range(40),
                                                                              ["layer:all"])}
        assert list(cached) == ["layer.0", "layer.1", "layer.2"]
        for site, rep in cached.items():
            np.testing.assert_array_equal(rep.values, direct[site].values)
            assert rep.labels == tuple(range(40))
            assert rep.token_ids == direct[site].token_ids
    rep = _arrays(out)["layer.1"]
    assert rep.token_ids[42 - 30] == tuple(
        source.load_model()[1]("12", add_special_tokens=False)["input_ids"])
    assert rep.meta["templates"] and rep.meta["pooling"] == "last"


def test_resume_after_a_kill_gives_the_same_cache(llama, tmp_path, monkeypatch):
    source = open_hf(str(llama))
    whole = tmp_path / "whole"
    source.extract(list(range(40)), "numbers", SITES, out=whole, shard_size=8)

    calls = {"n": 0}
    real_run = engine_module.Engine.run

    def dying_run(self, items, token_ids):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real_run(self, items, token_ids)

    killed = tmp_path / "killed"
    monkeypatch.setattr(engine_module.Engine, "run", dying_run)
    with pytest.raises(KeyboardInterrupt):
        source.extract(list(range(40)), "numbers", SITES, out=killed, shard_size=8)
    manifest = json.loads((killed / "manifest.json").read_text())
    assert not manifest["complete"] and len(manifest["shards"]) == 2
    with pytest.raises(ConvergentError, match="incomplete"):
        open_cache(str(killed)).number_representations(range(40), ["embed"])
    monkeypatch.setattr(engine_module.Engine, "run", real_run)
    calls["n"] = 0
    source.extract(list(range(40)), "numbers", SITES, out=killed, shard_size=8)
    a, b = _arrays(whole), _arrays(killed)
    for site in a:
        np.testing.assert_array_equal(a[site].values, b[site].values)


def test_a_folder_with_another_extraction_is_refused(llama, tmp_path):
    source = open_hf(str(llama))
    out = tmp_path / "c"
    source.extract(list(range(10)), "numbers", ["embed"], out=out)
    with pytest.raises(ConvergentError, match="different extraction"):
        source.extract(list(range(12)), "numbers", ["embed"], out=out)
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(ConvergentError, match="not an extraction cache"):
        source.extract(list(range(10)), "numbers", ["embed"], out=other)


def test_cache_errors(llama, tmp_path):
    source = open_hf(str(llama))
    out = tmp_path / "c"
    source.extract(list(range(10)), "numbers", ["layer:1"], out=out)
    cache = open_cache(str(out))
    with pytest.raises(ConvergentError, match="was not extracted"):
        cache.number_representations(range(10), ["layer:0"])
    with pytest.raises(ConvergentError, match="do not apply"):
        open_cache(str(out), pooling="mean")
    with pytest.raises(ConvergentError, match="holds numbers"):
        cache.word_representations(["cat"], ["layer:1"])
    with pytest.raises(ConvergentError, match="no such extraction cache"):
        open_cache(str(tmp_path / "missing"))
    rep = cache.number_representations([3, 4, 99], ["layer.1"])[0]
    assert rep.labels == (3, 4)  # missing numbers are left out for require_numbers


def test_words_share_the_code_path(llama, tmp_path):
    source = open_hf(str(llama), templates=["The word {w}"])
    reps = source.word_representations(["cat", "dog", "Paris"], ["embed", "layer:2"])
    assert [r.site for r in reps] == ["embed", "layer.2"]
    assert reps[1].labels == ("cat", "dog", "Paris") and reps[1].values.shape == (3, 16)
    words = tmp_path / "words.txt"
    words.write_text("cat\ndog\n\nred\n")
    out = tmp_path / "wc"
    assert main(["extract", str(llama), "--site", "layer:1", "--words", str(words),
                 "--out", str(out)]) == 0
    cached = open_source(f"cache:{out}").word_representations(None, ["layer:1"])[0]
    assert cached.labels == ("cat", "dog", "red")
    with pytest.raises(ConvergentError, match="holds words"):
        open_cache(str(out)).number_representations([1], ["layer:1"])


def test_cli_extract_numbers(llama, tmp_path, capsys):
    out = tmp_path / "cli"
    code = main(["extract", str(llama), "--site", "embed", "--site", "layer:all",
                 "--numbers", "0:25", "--out", str(out), "--template", "x = {n}",
                 "--pooling", "mean", "--dtype", "float16"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "single-token numbers: 10 of 25" in printed and "cache:" in printed
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["plan"]["dtype"] == "float16"
    assert manifest["plan"]["templates"] == ["x = {n}"]
    reps = open_source(str(out)).number_representations(range(25), ["layer:all"])
    assert len(reps) == 3 and reps[0].values.dtype == np.float32
    assert main(["extract", str(llama), "--site", "layer:9", "--numbers", "0:5",
                 "--out", str(tmp_path / "bad")]) == 2
    assert "has 3 layers" in capsys.readouterr().err


def test_repeated_analysis_reads_the_automatic_cache(llama, tmp_path, monkeypatch):
    source = open_hf(str(llama), cache_dir=str(tmp_path))
    first = source.number_representations(range(12), ["layer:0"])[0]
    assert len(list(tmp_path.iterdir())) == 1

    def no_model(self, items, token_ids):
        raise AssertionError("the cache should have been read")

    monkeypatch.setattr(engine_module.Engine, "run", no_model)
    again = source.number_representations(range(12), ["layer:0"])[0]
    np.testing.assert_array_equal(first.values, again.values)
    with pytest.raises(AssertionError):
        source.number_representations(range(12), ["layer:1"])  # another plan: extracts


def test_numbers_cli_reads_a_cache_per_layer(llama, tmp_path):
    cache = tmp_path / "cache"
    assert main(["extract", str(llama), "--site", "layer:all", "--numbers", "0:60",
                 "--out", str(cache), "--template", "x = {n}"]) == 0
    out = tmp_path / "out"
    assert main(["numbers", str(cache), "--numbers", "0:60", "--site", "layer:all",
                 "--permutations", "0", "--folds", "3", "--moduli", "9:11", "--out", str(out)]) == 0
    entries = json.loads((out / "results.json").read_text())["sources"]
    assert [e["site"] for e in entries] == ["layer.0", "layer.1", "layer.2"]
    assert all("baseline_kappa" in e["periods"]["10"] for e in entries)
    # the last token is the last digit: mod 10 is explained by token identity
    assert entries[0]["periods"]["10"]["baseline_kappa"] > 90
    assert (out / "layers.png").is_file()
