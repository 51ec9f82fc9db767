"""The Hugging Face source: loading, options and the clear errors a new user meets."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from hf_fixtures import make_model, quiet_and_isolated  # noqa: E402

from convergent.errors import ConvergentError  # noqa: E402
from convergent.extract.templates import check_templates, single_token_report  # noqa: E402
from convergent.sources import open_source  # noqa: E402
from convergent.sources.hf import open_hf  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def isolated(tmp_path_factory):
    yield from quiet_and_isolated(tmp_path_factory)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("hf")


@pytest.fixture(scope="module")
def gpt2(root):
    return make_model("gpt2", root / "gpt2")


def test_open_through_resolve(gpt2, tmp_path):
    source = open_source(str(gpt2), cache_dir=str(tmp_path))
    assert type(source).__name__ == "HFSource" and source.name == "gpt2"
    source = open_source(f"hf:{gpt2}", cache_dir=str(tmp_path))
    reps = source.number_representations(range(0, 20), ["embed", "layer.1"])
    assert [r.site for r in reps] == ["embed", "layer.1"]
    assert reps[0].token_ids[15] == (reps[0].token_ids[1][0], reps[0].token_ids[5][0])
    assert reps[1].meta["tied_embeddings"] is True
    assert reps[1].meta["single_token"]["bare_ranges"] == "0..9"


def test_unembedding_and_load_model(gpt2):
    source = open_hf(str(gpt2))
    model, _ = source.load_model()
    assert not model.training and source.load_model()[0] is model
    weight, tokens = source.unembedding()
    assert weight.shape == (64, 16) and len(tokens) == 64 and tokens[4] == "The"
    np.testing.assert_allclose(weight, model.lm_head.weight.detach().numpy())


def test_single_token_report_whole_numbers(root):
    source = open_hf(str(make_model("bert", root / "bert", style="whole")))
    report = source.single_token_numbers(range(0, 150))
    assert report["single_token_bare"] == 100 and report["bare_ranges"] == "0..99"
    rep = source.number_representations(range(0, 5), ["layer:0"])[0]
    assert rep.token_ids == tuple((source.load_model()[1].convert_tokens_to_ids(str(n)),)
                                  for n in range(5))


def test_missing_folder_and_not_a_model(tmp_path):
    with pytest.raises(ConvergentError, match="no such model folder"):
        open_hf(str(tmp_path / "nope" / "x"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConvergentError, match=r"no config\.json"):
        open_hf(str(tmp_path / "empty"))
    (tmp_path / "f.bin").write_bytes(b"x")
    with pytest.raises(ConvergentError, match=r"\.gguf"):
        open_hf(str(tmp_path / "f.bin"))


def test_corrupt_weights(gpt2, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(gpt2, broken)
    (broken / "model.safetensors").write_bytes(b"\x00" * 100)
    with pytest.raises(ConvergentError, match="cannot load the model"):
        open_hf(str(broken)).load_model()
    (broken / "model.safetensors").unlink()
    (broken / "pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(ConvergentError, match="safetensors"):
        open_hf(str(broken)).load_model()


def test_vocabulary_without_numbers(root):
    source = open_hf(str(make_model("llama", root / "nodigits", style="nodigits")))
    with pytest.raises(ConvergentError, match="vocabulary has none of the 10 requested"):
        source.number_representations(range(10), ["embed"])


def test_template_errors(gpt2):
    with pytest.raises(ConvergentError, match=r"has no \{n\} placeholder"):
        open_hf(str(gpt2), templates=["no number here"]).number_representations(
            range(3), ["layer:0"])
    with pytest.raises(ConvergentError, match=r"2 \{n\}"):
        check_templates(["{n} and {n}"], "numbers")
    with pytest.raises(ConvergentError, match=r"\{w\}"):
        check_templates(["The number {n}"], "words")
    assert check_templates(None, "numbers")[0] == "{n}"


def test_option_errors(gpt2):
    with pytest.raises(ConvergentError, match="pooling"):
        open_hf(str(gpt2), pooling="max")
    with pytest.raises(ConvergentError, match="dtype"):
        open_hf(str(gpt2), dtype="int8")
    with pytest.raises(ConvergentError, match="labels"):
        open_hf(str(gpt2), labels="0:10")
    with pytest.raises(ConvergentError, match="unembed"):
        open_hf(str(gpt2)).number_representations(range(3), ["unembedding"])
    with pytest.raises(ConvergentError, match="revision applies only to hub ids"):
        open_hf(str(gpt2), revision="main")


def test_hub_id_offline(monkeypatch):
    import socket

    def no_dns(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    source = open_source("someone/some-model-that-is-not-cached")
    with pytest.raises(ConvergentError, match=r"could not be downloaded \(offline\?\)"):
        source.load_model()


def test_single_token_report_counts_spaced_forms():
    from hf_fixtures import make_tokenizer

    tokenizer, _ = make_tokenizer("whole")
    report = single_token_report(tokenizer, [5, 50, 500])
    assert report["single_token_bare"] == 2 and report["single_token_space"] == 2
