"""Run folders as sources (run:DIR[@step]), classical embeddings, and the train CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors.numpy import load_file
from test_experiments_fixtures import make_corpus
from test_train_loop import tiny_config

from convergent.cli import main
from convergent.errors import ConvergentError
from convergent.sources import open_source
from convergent.train import EmbeddingConfig, TrainConfig, train
from convergent.train.embeddings import cooccurrence, ppmi_matrix


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_corpus(tmp_path_factory.mktemp("corpus") / "text.jsonl", docs=30, largest=200)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """A token cache shared by this module's tests, away from the user's cache."""
    monkeypatch.setenv("CONVERGENT_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(scope="module")
def tied_run(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "tied"
    config = tiny_config(corpus, tokens=16 * 8 * 4, checkpoint_every=16 * 8 * 2)
    config = config.replace(model=config.model.__class__(
        **{**config.model.__dict__, "tie_embeddings": True}))
    train(config, out, progress=False)
    return out


def test_run_source_reads_embedding_rows_of_number_tokens(tied_run):
    source = open_source(f"run:{tied_run}")
    embed, unembed = source.number_representations(list(range(300)), ["embed", "unembed"])
    weights = load_file(str(tied_run / "checkpoints/step-00000004/model.safetensors"))
    tokenizer = json.loads((tied_run / "tokenizer.json").read_text())
    added = {t["content"]: t["id"] for t in tokenizer["added_tokens"]}
    assert embed.labels == tuple(range(300)) and embed.meta["step"] == 4
    for row, n in enumerate(embed.labels[:20]):
        tid = added.get(str(n)) or tokenizer["model"]["vocab"][str(n)]
        assert embed.token_ids[row] == (tid,)
        assert np.array_equal(embed.values[row], weights["embed.weight"][tid])
    assert unembed.meta["tied"] and np.array_equal(unembed.values, embed.values)
    assert [c[:2] for c in source.checkpoints()] == [(0, 0), (2, 256), (4, 512)]
    early = open_source(f"run:{tied_run}@2").number_representations([5], ["embed"])[0]
    assert early.meta["step"] == 2 and not np.array_equal(early.values[0], embed.values[5])


def test_run_source_errors(tied_run, tmp_path):
    with pytest.raises(ConvergentError, match="no checkpoint at step 3"):
        open_source(f"run:{tied_run}@3")
    with pytest.raises(ConvergentError, match="has 2 layers"):
        open_source(f"run:{tied_run}").number_representations([1], ["layer.2"])
    with pytest.raises(ConvergentError, match="do not apply"):
        open_source(f"run:{tied_run}", dtype="float16")
    with pytest.raises(ConvergentError, match="pooling"):
        open_source(f"run:{tied_run}", pooling="max").number_representations([1], ["layer.0"])
    with pytest.raises(ConvergentError, match="not a training run"):
        open_source(f"run:{tmp_path}")


def test_resolve_routes_a_run_folder(tied_run):
    assert open_source(str(tied_run)).name == tied_run.name


def test_ppmi_matches_a_dense_computation():
    docs = [np.array([0, 1, 2, 1, 0, 3]), np.array([2, 3, 3, 1])]
    counts = cooccurrence(docs, np.arange(4), window=2).toarray()
    dense = np.zeros((4, 4))
    for doc in docs:
        for i in range(len(doc)):
            for j in range(max(0, i - 2), min(len(doc), i + 3)):
                if i != j:
                    dense[doc[i], doc[j]] += 1
    assert np.array_equal(counts, dense)
    pmi = ppmi_matrix(__import__("scipy.sparse").sparse.csr_matrix(dense), 1.0).toarray()
    total = dense.sum()
    with np.errstate(divide="ignore"):
        expected = np.log(dense * total / np.outer(dense.sum(1), dense.sum(0)))
    assert np.allclose(pmi, np.where(dense > 0, np.maximum(expected, 0), 0))


@pytest.mark.parametrize("arch", ["word2vec", "ppmi"])
def test_classical_runs_are_sources_and_reproducible(corpus, tmp_path, arch):
    config = TrainConfig(arch=arch, corpus=corpus, tokenizer="word", vocab_size=5000,
                         embedding=EmbeddingConfig(dim=8, epochs=2, min_count=2))
    first = train(config, tmp_path / "a", progress=False)
    second = train(config, tmp_path / "b", progress=False)
    assert first.complete and first.checkpoints == second.checkpoints
    a = open_source(f"run:{tmp_path / 'a'}").number_representations(list(range(200)),
                                                                    ["embed", "unembed"])
    b = open_source(f"run:{tmp_path / 'b'}").number_representations(list(range(200)),
                                                                    ["embed"])
    assert len(a[0].labels) > 150 and a[0].values.shape[1] == 8
    assert np.array_equal(a[0].values, b[0].values)
    assert not np.allclose(a[0].values, a[1].values)


def test_cli_trains_resumes_and_refuses_a_changed_config(corpus, tmp_path, capsys):
    config_file = tmp_path / "tiny.json"
    tiny_config(corpus, tokens=16 * 8 * 2).save(config_file)
    argv = ["train", "--arch", "lstm", "--config", str(config_file), "--out",
            str(tmp_path / "run"), "--no-progress"]
    assert main(argv) == 0
    assert "2 checkpoints" in capsys.readouterr().out
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["complete"] and manifest["arch"] == "lstm"
    assert main(argv) == 0  # complete: resuming is a no-op
    assert main([*argv, "--lr", "0.5"]) == 2
    assert "different config" in capsys.readouterr().err
    assert main(["train", "--arch", "ppmi", "--optimizer", "muon", "--out",
                 str(tmp_path / "x")]) == 2


def test_word2vec_resumes_after_a_kill_with_the_vectors_of_an_uninterrupted_run(corpus,
                                                                               tmp_path):
    config = TrainConfig(arch="word2vec", corpus=corpus, tokenizer="word", vocab_size=5000,
                         embedding=EmbeddingConfig(dim=8, epochs=3, min_count=2))
    straight = train(config, tmp_path / "straight", progress=False)
    partial = train(config, tmp_path / "resumed", progress=False, stop_after=1)
    assert not partial.complete and partial.steps == 1
    manifest = json.loads((tmp_path / "resumed" / "manifest.json").read_text())
    assert not manifest["complete"]
    resumed = train(config, tmp_path / "resumed", progress=False)
    assert resumed.complete and resumed.checkpoints == straight.checkpoints
    final = "checkpoints/step-00000003/vectors.safetensors"
    a = load_file(str(tmp_path / "straight" / final))
    b = load_file(str(tmp_path / "resumed" / final))
    assert np.array_equal(a["embed"], b["embed"]) and np.array_equal(a["unembed"], b["unembed"])
    before = (tmp_path / "resumed" / final).stat().st_mtime_ns
    train(config, tmp_path / "resumed", progress=False)  # complete: a no-op
    assert (tmp_path / "resumed" / final).stat().st_mtime_ns == before


def test_word2vec_refuses_to_resume_from_a_checkpoint_without_its_random_state(corpus,
                                                                              tmp_path):
    config = TrainConfig(arch="word2vec", corpus=corpus, tokenizer="word", vocab_size=5000,
                         embedding=EmbeddingConfig(dim=8, epochs=2, min_count=2))
    train(config, tmp_path / "run", progress=False, stop_after=1)
    (state_file,) = (tmp_path / "run" / "checkpoints").glob("step-00000001/state.json")
    state = json.loads(state_file.read_text())
    del state["random"]
    state_file.write_text(json.dumps(state))
    with pytest.raises(ConvergentError, match="cannot resume word2vec"):
        train(config, tmp_path / "run", progress=False)


def _direct_states(run_dir, n: int, text: str):
    """Hidden states of the run's last checkpoint for ``text``, computed without the engine."""
    import torch

    from convergent.sources.run_layers import load_network
    from convergent.train.checkpoint import list_checkpoints
    from convergent.train.tokenize import load_tokenizer

    config = json.loads((run_dir / "config.json").read_text())
    tok = load_tokenizer(run_dir / "tokenizer.json")
    model = load_network(list_checkpoints(run_dir)[-1].path, config, tok.get_vocab_size())
    ids = torch.tensor([tok.encode(text, add_special_tokens=False).ids])
    with torch.no_grad():
        return model.hidden(ids)[0, -1].numpy(), model


@pytest.mark.parametrize("arch", ["transformer", "lstm"])
def test_run_layers_are_the_states_at_the_number_in_context(corpus, tmp_path, arch):
    run = tmp_path / arch
    train(tiny_config(corpus, arch=arch, tokens=16 * 8 * 2), run, progress=False)
    source = open_source(f"run:{run}", templates=["The number {n}"])
    reps = source.number_representations([3, 41, 250], ["layer:all", "final_norm"])
    assert [r.site for r in reps] == ["layer.0", "layer.1", "final_norm"]
    final = reps[-1]
    assert final.labels == (3, 41, 250) and final.values.shape == (3, 32)
    assert final.meta["templates"] == ["The number {n}"] and final.meta["step"] == 2
    expected, model = _direct_states(run, 41, "The number 41")
    assert np.allclose(final.values[1], expected, atol=1e-5)
    # the last layer's output, normalised, is the final-norm state
    import torch

    with torch.no_grad():
        normed = model.norm(torch.from_numpy(reps[1].values)).numpy()
    assert np.allclose(normed, final.values, atol=1e-5)
    assert not np.allclose(reps[0].values, reps[1].values)


def test_classical_runs_have_no_layers(corpus, tmp_path):
    config = TrainConfig(arch="ppmi", corpus=corpus, tokenizer="word", vocab_size=5000,
                         embedding=EmbeddingConfig(dim=8, min_count=2))
    train(config, tmp_path / "ppmi", progress=False)
    with pytest.raises(ConvergentError, match=r"ppmi runs.*no layers"):
        open_source(f"run:{tmp_path / 'ppmi'}").number_representations([1], ["layer.0"])


def test_cli_set_changes_any_config_field(corpus, tmp_path, capsys):
    config_file = tmp_path / "tiny.json"
    tiny_config(corpus, tokens=16 * 8 * 2).save(config_file)
    out = tmp_path / "run"
    argv = ["train", "--arch", "lstm", "--config", str(config_file), "--out", str(out),
            "--no-progress", "--set", "model.d_model=16", "--set", "checkpoint_every=128",
            "--set", "perturb=none"]
    assert main(argv) == 0
    saved = json.loads((out / "config.json").read_text())
    assert saved["model"]["d_model"] == 16 and saved["checkpoint_every"] == 128
    assert saved["perturb"] is None
    capsys.readouterr()
    assert main([*argv[:-2], "--set", "model.width=3"]) == 2
    assert "unknown field(s) width" in capsys.readouterr().err
    assert main([*argv[:-2], "--set", "lr"]) == 2
    assert "expected KEY=VALUE" in capsys.readouterr().err
