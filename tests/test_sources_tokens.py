"""tokens:X and cooc:X: the data's own number signal, checked against brute force."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from convergent.cli import main
from convergent.data import open_prepared, prepare_corpus
from convergent.errors import ConvergentError
from convergent.sources import open_source, require_numbers
from convergent.sources.tokens import TRANSFORMS

WORDS = ("ships", "farms", "ports", "votes", "miles", "the", "state", "had", "and", "in")


def _texts() -> list[str]:
    rng = random.Random(0)
    texts = []
    for i in range(150):
        numbers = [rng.choice([rng.randrange(60), 10 * rng.randrange(6)]) for _ in range(4)]
        words = [rng.choice(WORDS) for _ in range(8)]
        texts.append(" ".join(f"{w} {n}" for w, n in zip(words, numbers + numbers, strict=True))
                     + f". Year {1900 + i}.")
    return texts


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CONVERGENT_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "text.jsonl"
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in _texts()))
    return str(path)


@pytest.fixture
def prepared(corpus, tmp_path):
    out = tmp_path / "prepared"
    prepare_corpus(corpus, out, vocab_size=1300, shard_tokens=700)  # several shards
    return out


def _brute_counts(folder) -> tuple[np.ndarray, int, object]:
    data = open_prepared(folder)
    ids = np.concatenate([np.asarray(s, dtype=np.int64) for s in data.shards()])
    words = ids[ids != data.eos]
    return np.bincount(words, minlength=data.tokenizer().get_vocab_size()), len(words), data


def test_counts_equal_a_brute_force_count_in_every_transform(prepared):
    counts, total, data = _brute_counts(prepared)
    tok = data.tokenizer()
    numbers = list(range(60))
    expected = np.array([counts[tok.token_to_id(str(n))] for n in numbers], dtype=np.float64)
    assert expected.min() > 0 and len(data.manifest["shards"]) > 2
    for transform in TRANSFORMS:
        rep = open_source(f"tokens:{prepared}", transform=transform).number_representations(
            numbers, ["embed"])[0]
        assert rep.values.shape == (60, 1) and list(rep.labels) == numbers
        want = {"count": expected, "frequency": expected / total,
                "log": np.log1p(expected)}[transform]
        np.testing.assert_allclose(rep.values[:, 0], want, rtol=1e-12)
        assert rep.meta["stream_tokens"] == total and rep.meta["transform"] == transform
    # the spec may carry the options itself (the command line has no flag for them)
    inline = open_source(f"tokens:{prepared},transform=count").number_representations(
        numbers, ["embed"])[0]
    np.testing.assert_array_equal(inline.values[:, 0], expected)
    assert inline.source.endswith(",transform=count")


def test_multiples_of_ten_stand_out_in_log_counts(prepared):
    rep = open_source(f"tokens:{prepared}").number_representations(range(60), ["embed"])[0]
    log_counts = rep.values[:, 0]
    tens = log_counts[::10]
    others = np.delete(log_counts, np.arange(0, 60, 10))
    assert tens.min() > np.median(others)  # the corpus writes 0, 10, ..., 50 more often


def test_a_run_folder_counts_the_stream_it_trained_on(corpus, prepared, tmp_path):
    from convergent.data.perturbed import perturbed_stream
    from convergent.train.config import TrainConfig
    from convergent.train.stream import prepare_data

    run = tmp_path / "run"
    config = TrainConfig(corpus=corpus, data=str(prepared), vocab_size=1300, perturb="unigram",
                         seed=3).validate()
    tok, _ = prepare_data(run, config, progress=False)  # what convergent train records
    config.save(run / "config.json")
    stream = np.asarray(perturbed_stream(open_prepared(prepared), "unigram", 3, tok))
    rep = open_source(f"tokens:{run}", transform="count").number_representations(
        range(60), ["embed"])[0]
    want = [np.count_nonzero(stream == tok.token_to_id(str(n))) for n in range(60)]
    np.testing.assert_array_equal(rep.values[:, 0], want)
    assert rep.meta["perturb"] == "unigram" and rep.source == "tokens:run,transform=count"


def test_a_corpus_spec_is_prepared_once_through_the_training_cache(corpus):
    from convergent.train.presets import preset
    from convergent.train.stream import prepared_for

    rep = open_source(f"tokens:{corpus}", vocab_size=1300).number_representations(
        range(60), ["embed"])[0]
    data = prepared_for(preset("quick", "transformer", corpus=corpus, vocab_size=1300))
    assert rep.meta["manifest_sha256"] == data.sha256 and rep.meta["stream"] == "corpus"
    assert rep.source == f"tokens:{corpus},vocab_size=1300"  # non-default options name it


def test_numbers_that_are_not_single_tokens_are_named(corpus, tmp_path, capsys):
    source = open_source(f"tokens:{corpus},tokenizer=digit", vocab_size=1300)
    rep = source.number_representations(range(20), ["embed"])[0]
    assert list(rep.labels) == list(range(10))
    with pytest.raises(ConvergentError, match=r"10 requested number\(s\) missing.*10, 11, 12"):
        require_numbers(rep, range(20))
    code = main(["numbers", f"tokens:{corpus},tokenizer=digit,vocab_size=1300",
                 "--numbers", "0:20", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "missing" in err and "10, 11" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out" / "results.json").exists()


@pytest.mark.parametrize(("spec", "options", "message"), [
    ("tokens:{p}", {"transform": "sqrt"}, "transform 'sqrt': choose one of log, count, frequency"),
    ("tokens:{p},transform=sqrt", {}, "choose one of log, count, frequency"),
    ("tokens:{p}", {"vocab_size": 4096}, "apply to corpus specs only"),
    ("tokens:{p},transform=log", {"transform": "log"}, "given twice"),
    ("tokens:{p}", {"pooling": "mean"}, "pooling do not apply"),
    ("cooc:{p},window=two", {}, "window must be int"),
    ("cooc:{p}", {"alpha": 2.0}, "alpha must be in"),
])
def test_bad_options_are_one_clear_error(prepared, spec, options, message):
    with pytest.raises(ConvergentError, match=message):
        open_source(spec.format(p=prepared), **options)


def test_only_the_embed_site(prepared):
    with pytest.raises(ConvergentError, match=r"site 'embed', not layer\.1"):
        open_source(f"tokens:{prepared}").number_representations(range(10), ["layer.1"])


def _direct_ppmi_rows(folder, numbers, window, alpha):
    """PPMI rows by the definition, with Python loops over each document's positions."""
    data = open_prepared(folder)
    ids = np.concatenate([np.asarray(s, dtype=np.int64) for s in data.shards()])
    docs = np.split(ids, np.flatnonzero(ids == data.eos) + 1)
    size = data.tokenizer().get_vocab_size()
    counts = np.zeros((size, size))
    for doc in docs:
        doc = doc[doc != data.eos]
        for i in range(len(doc)):
            for j in range(i + 1, min(i + window + 1, len(doc))):
                counts[doc[i], doc[j]] += 1
                counts[doc[j], doc[i]] += 1
    total = counts.sum()
    word = counts.sum(axis=1) / total
    context = counts.sum(axis=0) ** alpha
    context /= context.sum()
    tok = data.tokenizer()
    rows = counts[[tok.token_to_id(str(n)) for n in numbers]]
    with np.errstate(divide="ignore", invalid="ignore"):
        pmi = np.log(rows / total / (word[[tok.token_to_id(str(n)) for n in numbers]][:, None]
                                     * context[None, :]))
    return np.where(rows > 0, np.maximum(pmi, 0.0), 0.0)


def test_cooc_rows_equal_a_direct_computation(prepared):
    numbers = list(range(30))
    direct = _direct_ppmi_rows(prepared, numbers, window=2, alpha=0.75)
    rep = open_source(f"cooc:{prepared},window=2").number_representations(numbers, ["embed"])[0]
    used = np.flatnonzero(direct.any(axis=0))
    assert rep.values.shape == (30, len(used)) and rep.meta["contexts_used"] == len(used)
    np.testing.assert_allclose(rep.values, direct[:, used], rtol=1e-9, atol=1e-12)
    assert rep.source == f"cooc:{prepared.name},window=2"
    reduced = open_source(f"cooc:{prepared}", window=2, dim=5).number_representations(
        numbers, ["embed"])[0]
    top = np.linalg.svd(direct, compute_uv=False)[:5]
    assert reduced.values.shape == (30, 5)
    np.testing.assert_allclose(np.linalg.svd(reduced.values, compute_uv=False), top, rtol=1e-7)


def test_the_numbers_command_analyses_token_counts_end_to_end(prepared, tmp_path):
    out = tmp_path / "out"
    code = main(["numbers", f"tokens:{prepared}", "--numbers", "0:50", "--moduli", "2:6",
                 "--permutations", "20", "--out", str(out)])
    assert code == 0
    (entry,) = json.loads((out / "results.json").read_text())["sources"]
    assert entry["dim"] == 1 and entry["name"] == f"tokens:{prepared.name}"
    assert entry["numbers"] == [0, 49] and set(entry["periods"]) == {"2", "3", "4", "5"}
    fisher = entry["fisher"]["5"]  # one column: S_W is a number, its condition number 1
    assert fisher["cond_sw"] == pytest.approx(1.0) and fisher["trace_identity_error"] < 1e-9
    assert entry["periods"]["5"]["kappa"] > entry["periods"]["3"]["kappa"]
    assert (out / "numbers.png").is_file()


@pytest.mark.slow
def test_the_numbers_command_analyses_cooc_rows_end_to_end(prepared, tmp_path):
    out = tmp_path / "out"
    code = main(["numbers", f"cooc:{prepared},window=2", "--numbers", "0:50", "--moduli",
                 "2:6", "--permutations", "20", "--out", str(out)])
    assert code == 0
    (entry,) = json.loads((out / "results.json").read_text())["sources"]
    assert entry["dim"] > 1 and entry["meta"]["kind"] == "cooc"
    assert np.isfinite(entry["fisher"]["5"]["lambda_max"])
