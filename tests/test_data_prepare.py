"""Prepared data: shards, manifest, resume, mismatches, pinned HF revisions, memmapped training."""

from __future__ import annotations

import hashlib
import json
import sys
import types

import numpy as np
import pytest

from convergent.cli import main
from convergent.data import ShardedStream, open_prepared, prepare_corpus
from convergent.errors import ConvergentError
from convergent.train.config import TrainConfig
from convergent.train.stream import data_fields, make_batches, prepare_data

TEXTS = [f"Doc {i}: in {1900 + i} the state had {i * 7} farms and {i % 13} ports."
         for i in range(120)]


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "text.jsonl"
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS))
    return str(path)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CONVERGENT_CACHE", str(tmp_path / "cache"))


def prepare(corpus, out, **options):
    return prepare_corpus(corpus, out, vocab_size=1300, shard_tokens=500, **options)


def test_shards_are_uint16_memmaps_with_offsets_and_a_manifest(corpus, tmp_path):
    data = prepare(corpus, tmp_path / "d")
    m = data.manifest
    assert m["complete"] and m["dtype"] == "uint16" and m["documents"] == len(TEXTS)
    assert m["source"] == {"corpus": corpus, "revision": None, "resolved": None}
    assert m["tokenizer"]["sha256"] == hashlib.sha256(
        (tmp_path / "d" / "tokenizer.json").read_bytes()).hexdigest()
    assert len(m["shards"]) > 3 and m["tokens"] == sum(s["tokens"] for s in m["shards"])
    for shard, info, offsets in zip(data.shards(), m["shards"], data.offsets(), strict=True):
        assert isinstance(shard, np.memmap) and shard.dtype == np.uint16
        raw = (tmp_path / "d" / "shards" / info["file"]).read_bytes()
        assert hashlib.sha256(raw).hexdigest() == info["sha256"]
        assert offsets[-1] == len(shard) and np.all(shard[offsets[1:] - 1] == data.eos)
    stream = data.stream()
    assert isinstance(stream, ShardedStream) and len(stream) == m["tokens"]
    tok = data.tokenizer()
    assert tok.decode(np.asarray(stream[: data.offsets()[0][1] - 1]).tolist()) == TEXTS[0]
    before = (tmp_path / "d" / "manifest.json").read_bytes()
    assert prepare(corpus, tmp_path / "d").manifest == m  # a finished prepare is a no-op
    assert (tmp_path / "d" / "manifest.json").read_bytes() == before


def test_a_killed_prepare_resumes_and_ignores_half_written_shards(corpus, tmp_path):
    whole = prepare(corpus, tmp_path / "whole")
    part = prepare(corpus, tmp_path / "part", stop_after_shards=2)
    assert not part.manifest["complete"] and len(part.manifest["shards"]) == 2
    with pytest.raises(ConvergentError, match="did not finish"):
        open_prepared(tmp_path / "part")
    shards = tmp_path / "part" / "shards"
    (shards / ".tokens-00002.bin.x1y2.tmp").write_bytes(b"half")
    (shards / "tokens-00002.bin").write_bytes(b"renamed, but not in the manifest")
    resumed = prepare(corpus, tmp_path / "part", workers=2)
    assert not list(shards.glob(".*.tmp"))
    assert [s["sha256"] for s in resumed.manifest["shards"]] == \
        [s["sha256"] for s in whole.manifest["shards"]]
    early = tmp_path / "early"  # killed while training the tokenizer, before any manifest
    early.mkdir()
    (early / ".lock").write_text("")
    (early / ".tokenizer.json.abc.tmp").write_text("half")
    assert prepare(corpus, early).manifest["shards"] == whole.manifest["shards"]
    assert not list(early.glob(".*.tmp"))


def test_mismatched_folders_are_refused_in_one_line(corpus, tmp_path):
    prepare(corpus, tmp_path / "d")
    with pytest.raises(ConvergentError, match="tokenizer is 'bpe' there, 'digit' here"):
        prepare(corpus, tmp_path / "d", tokenizer="digit")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x").write_text("x")
    with pytest.raises(ConvergentError, match="not empty"):
        prepare(corpus, tmp_path / "other")
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n")
    with pytest.raises(ConvergentError, match="no text found"):
        prepare(str(empty), tmp_path / "none")
    assert not (tmp_path / "none").exists()
    assert main(["data", "prepare", "--corpus", corpus, "--out", str(tmp_path / "d"),
                 "--tokenizer", "digit", "--no-progress"]) == 2


def test_a_named_tokenizer_file(corpus, tmp_path):
    named = tmp_path / "tok.json"
    named.write_bytes((prepare(corpus, tmp_path / "d").folder / "tokenizer.json").read_bytes())
    data = prepare_corpus(corpus, tmp_path / "n", tokenizer=str(named), shard_tokens=10**6)
    assert data.manifest["request"]["vocab_size"] is None
    assert data.manifest["tokenizer"]["sha256"] == open_prepared(
        tmp_path / "d").manifest["tokenizer"]["sha256"]


@pytest.fixture
def fake_datasets(monkeypatch):
    from convergent.data import hub

    calls = []
    monkeypatch.setattr(hub, "resolve_revision", lambda spec, revision: None)  # no network

    def load_dataset(name, config, split, streaming, **kwargs):
        calls.append({"name": name, "config": config, "split": split,
                      "streaming": streaming, **kwargs})
        return iter([{"text": t} for t in TEXTS])

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    return calls


def test_hf_revision_is_pinned_and_a_second_prepare_does_not_restream(fake_datasets, tmp_path):
    spec = "hf:org/data:sub@train"
    data = prepare(spec, tmp_path / "d", revision="abc123")
    assert fake_datasets == [{"name": "org/data", "config": "sub", "split": "train",
                              "streaming": True, "revision": "abc123"}]
    assert data.manifest["source"] == {"corpus": spec, "revision": "abc123", "resolved": None}
    prepare(spec, tmp_path / "d", revision="abc123")
    assert len(fake_datasets) == 1
    with pytest.raises(ConvergentError, match="prepared from revision 'abc123', not 'v2'"):
        prepare(spec, tmp_path / "d", revision="v2")
    config = TrainConfig(corpus=spec, vocab_size=1300, batch_size=4, seq_len=16, tokens=640)
    prepare_data(tmp_path / "run1", config, progress=False)
    prepare_data(tmp_path / "run2", config, progress=False)  # another job: cached
    assert len(fake_datasets) == 2 and "revision" not in fake_datasets[1]


def test_a_revision_change_under_a_resume_is_refused(fake_datasets, tmp_path):
    prepare("hf:org/data", tmp_path / "d", revision="abc123", stop_after_shards=1)
    with pytest.raises(ConvergentError, match="revision changed under a resume"):
        prepare("hf:org/data", tmp_path / "d", revision="def456")


def test_an_unpinned_dataset_is_read_at_the_commit_it_had_when_preparation_began(
        fake_datasets, tmp_path, monkeypatch):
    from convergent.data import hub

    monkeypatch.setattr(hub, "resolve_revision", lambda spec, revision: "c0ffee")
    prepare("hf:org/data", tmp_path / "d", stop_after_shards=1)
    monkeypatch.setattr(hub, "resolve_revision", lambda spec, revision: "newer")  # main moved
    data = prepare("hf:org/data", tmp_path / "d")
    assert [c["revision"] for c in fake_datasets] == ["c0ffee", "c0ffee"]
    assert data.manifest["source"] == {"corpus": "hf:org/data", "revision": None,
                                       "resolved": "c0ffee"}


def test_training_memmaps_prepared_data_and_checks_its_manifest(corpus, tmp_path):
    data = prepare_corpus(corpus, tmp_path / "d", vocab_size=1300)  # one shard
    config = TrainConfig(corpus=corpus, data=str(tmp_path / "d"), vocab_size=1300,
                         batch_size=4, seq_len=16, tokens=640)
    tok, stream = prepare_data(tmp_path / "run", config, progress=False)
    assert isinstance(stream, np.memmap) and stream.dtype == np.uint16
    batch = make_batches(stream, tok, config).batch(3)
    assert str(batch.tokens.dtype) == "torch.int64"
    record = json.loads((tmp_path / "run" / "data" / "corpus.json").read_text())
    assert record["manifest_sha256"] == data.sha256 and record["dtype"] == "uint16"
    assert not list((tmp_path / "run").rglob("*.npy"))  # no copy of the tokens
    with pytest.raises(ConvergentError, match="vocab_size is 1300 there, 2000 here"):
        prepare_data(tmp_path / "run2", config.replace(vocab_size=2000), progress=False)
    with pytest.raises(ConvergentError, match="corpus is"):
        prepare_data(tmp_path / "run3", config.replace(corpus="bundled"), progress=False)
    assert config.replace(**data_fields(tmp_path / "d")) == config.replace(
        data=str(tmp_path / "d"))
    on_the_fly = config.replace(data="")
    _, cached = prepare_data(tmp_path / "run4", on_the_fly, progress=False)
    assert isinstance(cached, np.memmap) and cached.dtype == np.uint16
    assert np.array_equal(cached, stream)


def test_a_sharded_stream_slices_and_gathers_like_one_array():
    whole = np.arange(50, dtype=np.uint16)
    stream = ShardedStream([whole[:10], whole[10:10], whole[10:33], whole[33:]])
    for start, stop in [(0, 50), (5, 12), (10, 33), (32, 34), (-3, None), (40, 20)]:
        assert np.array_equal(stream[start:stop], whole[start:stop])
    assert np.array_equal(stream[::7], whole[::7]) and stream[-1] == 49
    index = np.array([[0, 9, 10], [33, 49, 20]])
    assert np.array_equal(stream.take(index), whole[index])
    assert stream.take(index).dtype == np.uint16
    assert np.array_equal(np.asarray(stream), whole)


def test_large_vocabularies_get_uint32_shards(tmp_path):
    from convergent.data.shards import open_shard, token_dtype, write_shard

    assert token_dtype(65536) == np.uint16 and token_dtype(65537) == np.uint32
    ids = np.array([0, 70_000, 5, 128_255], dtype=np.int64)
    info = write_shard(tmp_path, 0, ids, np.array([0, 2, 4]), token_dtype(128_256))
    shard = open_shard(tmp_path, info, token_dtype(128_256))
    assert shard.dtype == np.uint32 and np.array_equal(shard, ids)
    assert (tmp_path / info.file).stat().st_size == 16
