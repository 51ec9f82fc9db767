"""Embedding rows read from the checkpoint without building the model: sharded
safetensors folders, hub ids (only config, tokenizer, index and one shard downloaded),
GGUF files; fastText ``.bin`` word vectors through gensim."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from hf_fixtures import make_model, make_tokenizer, quiet_and_isolated  # noqa: E402

from convergent.errors import ConvergentError  # noqa: E402
from convergent.sources import open_source  # noqa: E402
from convergent.sources.hf import open_hf  # noqa: E402
from convergent.sources.rows import EmbeddingRows, GGUFStore  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def isolated(tmp_path_factory):
    yield from quiet_and_isolated(tmp_path_factory)


@pytest.fixture(scope="module")
def sharded(tmp_path_factory):
    """An untied Llama in shards of at most 2 KB (embed and LM head in different shards)."""
    return make_model("llama", tmp_path_factory.mktemp("hf") / "llama", max_shard_size="2KB")


def _weight_map(folder: Path) -> dict[str, str]:
    return json.loads((folder / "model.safetensors.index.json").read_text())["weight_map"]


@pytest.mark.parametrize("pooling", ["last", "mean"])
def test_rows_equal_the_models_rows(sharded, tmp_path, pooling):
    assert len(set(_weight_map(sharded).values())) > 3
    rows = open_hf(str(sharded), cache_dir=str(tmp_path / "r"), pooling=pooling)
    got = rows.number_representations(range(0, 120, 7), ["embed", "unembed"])
    assert rows._loaded is None
    model = open_hf(str(sharded), cache_dir=str(tmp_path / "m"), pooling=pooling)
    want = model.number_representations(range(0, 120, 7), ["embed", "layer:0", "unembed"])
    assert model._loaded is not None
    for site, g, w in zip(("embed", "unembed"), got, (want[0], want[2]), strict=True):
        assert g.site == site and g.labels == w.labels and g.token_ids == w.token_ids
        np.testing.assert_array_equal(g.values, w.values)
    assert got[0].meta["read"].startswith("rows") and got[0].meta["tied_embeddings"] is False
    assert not np.allclose(got[0].values, got[1].values)


def test_only_the_tensors_shard_is_opened(sharded, tmp_path, monkeypatch):
    import safetensors

    opened: list[str] = []
    real = safetensors.safe_open

    def spy(path, *args, **kwargs):
        opened.append(str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(safetensors, "safe_open", spy)
    source = open_hf(str(sharded), cache_dir=str(tmp_path))
    source.number_representations(range(10), ["embed"])
    read = {Path(p).name for p in opened if Path(p).parent == sharded}
    assert read == {_weight_map(sharded)["model.embed_tokens.weight"]}


def test_tied_unembed_is_the_embedding_and_unembedding(tmp_path):
    folder = make_model("gpt2", tmp_path / "gpt2")
    source = open_hf(str(folder), cache_dir=str(tmp_path / "c"))
    embed, unembed = source.number_representations(range(10), ["embed", "unembed"])
    assert unembed.meta["tied_embeddings"] is True
    np.testing.assert_array_equal(embed.values, unembed.values)
    weight, tokens = source.unembedding()
    assert source._loaded is None and weight.shape == (64, 16) and tokens[4] == "The"
    model, _ = source.load_model()
    np.testing.assert_array_equal(weight, model.lm_head.weight.detach().numpy())


def _serve(folder: Path, asked: list[str]):
    """A stand-in for hf_hub_download that serves ``folder`` and records every request."""
    from huggingface_hub.errors import EntryNotFoundError

    def download(repo_id, filename, revision=None, **kwargs):
        asked.append(filename)
        if not (folder / filename).is_file():
            raise EntryNotFoundError(f"{filename} not in {repo_id}")
        return str(folder / filename)

    return download


def test_hub_id_downloads_only_tokenizer_index_and_one_shard(sharded, tmp_path, monkeypatch):
    import huggingface_hub

    asked: list[str] = []
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", _serve(sharded, asked))
    monkeypatch.setattr("convergent.sources.rows._check_online", lambda ref: None)
    source = open_source("hf:someone/sharded-llama", cache_dir=str(tmp_path))
    rep = source.number_representations(range(20), ["embed"])[0]
    shards = set(_weight_map(sharded).values())
    fetched = {a for a in asked if a in shards}
    assert fetched == {_weight_map(sharded)["model.embed_tokens.weight"]}
    others = set(asked) - fetched
    assert others <= {"config.json", "model.safetensors.index.json", "tokenizer.json",
                      "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model",
                      "vocab.json", "merges.txt", "vocab.txt", "added_tokens.json"}
    assert {"config.json", "model.safetensors.index.json", "tokenizer.json"} <= others
    assert source._loaded is None and len(rep.labels) == 20
    local = open_hf(str(sharded), cache_dir=str(tmp_path / "l"))
    np.testing.assert_array_equal(rep.values,
                                  local.number_representations(range(20), ["embed"])[0].values)


def test_no_embedding_under_any_known_name(tmp_path, monkeypatch):
    import huggingface_hub
    from safetensors.numpy import save_file

    folder = tmp_path / "odd"
    folder.mkdir()
    tokenizer, _ = make_tokenizer()
    tokenizer.save_pretrained(folder)
    (folder / "config.json").write_text(json.dumps({"model_type": "odd",
                                                    "architectures": ["OddForCausalLM"]}))
    save_file({"blocks.0.mix.weight": np.zeros((4, 4), np.float32),
               "blocks.0.norm.weight": np.zeros(4, np.float32)}, str(folder / "model.safetensors"))
    with pytest.raises(ConvergentError, match="no embedding tensor under any known name"):
        open_hf(str(folder)).number_representations(range(3), ["embed"])
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", _serve(folder, []))
    monkeypatch.setattr("convergent.sources.rows._check_online", lambda ref: None)
    with pytest.raises(ConvergentError, match=r"^someone/odd: the checkpoint has no embedding"):
        open_hf("someone/odd").number_representations(range(3), ["unembed"])


def test_encoder_without_head_has_no_unembed(tmp_path):
    folder = make_model("bert", tmp_path / "bert", style="whole")
    source = open_hf(str(folder), cache_dir=str(tmp_path / "c"))
    assert len(source.number_representations(range(5), ["embed"])[0].labels) == 5
    with pytest.raises(ConvergentError, match="no output embedding"):
        source.number_representations(range(5), ["unembed"])


def test_gguf_rows_dequantized_one_by_one(tmp_path):
    gguf = pytest.importorskip("gguf")
    from gguf.quants import dequantize, quantize

    rng = np.random.default_rng(0)
    embed = rng.normal(size=(40, 64)).astype(np.float32)
    head = rng.normal(size=(40, 64)).astype(np.float32)
    q8 = gguf.GGMLQuantizationType.Q8_0
    writer = gguf.GGUFWriter(str(tmp_path / "tiny.gguf"), "llama")
    writer.add_tensor("token_embd.weight", quantize(embed, q8), raw_dtype=q8)
    writer.add_tensor("output.weight", head)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    store = GGUFStore(tmp_path / "tiny.gguf")
    assert store.shape("token_embd.weight") == (40, 64)
    rows = EmbeddingRows("tiny", store, {}, make_tokenizer()[0], gguf=True)
    whole = dequantize(quantize(embed, q8), q8)
    np.testing.assert_array_equal(rows.rows("embed", [7, 3, 7]), whole[[7, 3, 7]])
    assert np.abs(whole - embed).max() < 0.05
    np.testing.assert_array_equal(rows.rows("unembed", [1, 39]), head[[1, 39]])
    with pytest.raises(ConvergentError, match="outside the 40 rows"):
        rows.rows("embed", [40])


def test_remote_code_needs_the_flag(tmp_path):
    from convergent.sources.hf_load import load_pretrained

    folder = tmp_path / "custom"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({
        "model_type": "my_custom_linear", "auto_map": {"AutoConfig": "conf.MyConfig"}}))
    with pytest.raises(ConvergentError, match=r"pass --trust-remote-code"):
        open_hf(str(folder)).load_model()
    with pytest.raises(ConvergentError, match=r"trust-remote-code"):
        load_pretrained(str(folder), None, False, "cpu")


def test_placement(monkeypatch):
    from convergent.sources.hf_load import placement

    assert placement("cpu", None, None) == {"dtype": torch.float32}
    assert placement("cpu", "bfloat16", None) == {"dtype": torch.bfloat16}
    assert placement("auto", None, 10) == {"dtype": "auto", "device_map": "auto"}

    class Props:
        total_memory = 80 * 2**30

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index: Props())
    assert "device_map" not in placement("cuda", None, 10 * 2**30)
    assert placement("cuda:0", None, 200 * 2**30)["device_map"] == "auto"
    with pytest.raises(ConvergentError, match="model-dtype"):
        open_hf("someone/x", model_dtype="int4")


def test_fasttext_bin_through_gensim(tmp_path):
    pytest.importorskip("gensim")
    from gensim.models import FastText
    from gensim.models.fasttext import save_facebook_model

    sentences = [["one", "two", "three", "4", "5"], ["two", "three", "4", "cat"]] * 20
    model = FastText(vector_size=8, window=2, min_count=1, epochs=2, seed=0, workers=1,
                     bucket=1000)
    model.build_vocab(sentences)
    model.train(sentences, total_examples=len(sentences), epochs=2)
    path = tmp_path / "wiki-news.bin"
    save_facebook_model(model, str(path))
    source = open_source(str(path))
    assert source.meta["format"] == "fasttext-binary"
    words, values = source.word_rows(["two", "4", "absent"])
    assert words == ["two", "4"]
    np.testing.assert_allclose(values, model.wv.vectors[[model.wv.key_to_index[w]
                                                         for w in words]], rtol=1e-6)
    rep = source.number_representations([4, 5, 6])[0]
    assert rep.labels == (4, 5)


def test_copy_of_sharded_folder_keeps_identity(sharded, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(sharded, copy)
    a = open_hf(str(sharded)).embedding_rows().identity["tensor_sha256"]
    b = open_hf(str(copy)).embedding_rows().identity["tensor_sha256"]
    assert a == b and set(a) == {"embed", "unembed"}


def test_hub_word_vectors_file_zip(tmp_path, monkeypatch):
    import zipfile

    import huggingface_hub

    pytest.importorskip("gensim")
    repo = tmp_path / "repo"
    repo.mkdir()
    text = "".join(f"{n} {n % 2}.5 {n % 5}.25 {n % 10}.125\n" for n in range(30))
    with zipfile.ZipFile(repo / "glove.tiny.zip", "w") as handle:
        handle.writestr("glove.tiny.3d.txt", text)
    asked: list[str] = []
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", _serve(repo, asked))
    source = open_source("hf:someone/glove", file="glove.tiny.zip")
    rep = source.number_representations(range(5))[0]
    assert asked == ["glove.tiny.zip"] and source.meta["format"] == "glove-text"
    np.testing.assert_allclose(rep.values[3], [1.5, 3.25, 3.125])
    with pytest.raises(ConvergentError, match=r"^hf:someone/glove: cannot download nope\.zip"):
        open_source("hf:someone/glove", file="nope.zip")


def test_universality_spec_names_the_papers_models():
    from convergent.cli import main
    from convergent.experiments.spec import load_spec

    path = Path(__file__).parents[1] / "specs" / "universality.toml"
    assert main(["run", str(path), "--dry-run"]) == 0
    spec = load_spec(path)
    assert len(spec.sources) == 11
    assert spec.analyses["universality"].settings["sites"] == ["embed"]
    for name, entry in spec.sources.items():
        if "file" not in entry.options:  # models: an HFSource, nothing downloaded yet
            source = open_source(entry.spec, **entry.options)
            assert type(source).__name__ == "HFSource" and source._rows is None, name
