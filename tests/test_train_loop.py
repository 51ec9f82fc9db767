"""The training loop: falling loss, exact resume after a kill, config and checkpoint errors,
--compile."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from test_experiments_fixtures import make_corpus

from convergent.errors import ConvergentError
from convergent.train import ModelConfig, TrainConfig, train
from convergent.train.checkpoint import list_checkpoints


def tiny_config(corpus: str, arch: str = "transformer", **changes) -> TrainConfig:
    base = TrainConfig(
        arch=arch, corpus=corpus, vocab_size=1300,
        model=ModelConfig(d_model=32, n_layers=2, n_heads=2, chunk_size=8, d_state=8),
        tokens=16 * 8 * 12, batch_size=8, seq_len=16, checkpoint_every=16 * 8 * 4,
        warmup_tokens=256, lr=3e-3,
    )
    return base.replace(**changes)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corpus")
    return make_corpus(folder / "text.jsonl", docs=60, largest=200)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """A token cache shared by this module's tests, away from the user's cache."""
    monkeypatch.setenv("CONVERGENT_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


def test_loss_falls_and_checkpoints_appear(corpus, tmp_path):
    result = train(tiny_config(corpus), tmp_path / "run", progress=False)
    assert result.complete and result.steps == 12
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics[-1]["loss"] < metrics[0]["loss"] - 0.5
    steps = [c.step for c in list_checkpoints(tmp_path / "run")]
    assert steps == [0, 4, 8, 12]
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["complete"] and [c["step"] for c in manifest["checkpoints"]] == steps


@pytest.mark.parametrize("optimizer", ["adamw", "muon"])
def test_resume_after_kill_is_bit_exact(corpus, tmp_path, optimizer):
    config = tiny_config(corpus, optimizer=optimizer, tokens=16 * 8 * 8)
    straight = train(config, tmp_path / "straight", progress=False)
    partial = train(config, tmp_path / "resumed", progress=False, stop_after=6)
    assert not partial.complete and partial.steps == 6  # killed after step 6, ckpt at 4
    assert [c.step for c in list_checkpoints(tmp_path / "resumed")] == [0, 4]
    resumed = train(config, tmp_path / "resumed", progress=False)
    assert resumed.complete and resumed.steps == straight.steps
    a = load_file(str(tmp_path / "straight/checkpoints/step-00000008/model.safetensors"))
    b = load_file(str(tmp_path / "resumed/checkpoints/step-00000008/model.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    sa = load_file(str(tmp_path / "straight/checkpoints/step-00000008/optimizer.safetensors"))
    sb = load_file(str(tmp_path / "resumed/checkpoints/step-00000008/optimizer.safetensors"))
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_different_config_is_refused(corpus, tmp_path):
    config = tiny_config(corpus, tokens=16 * 8 * 2)
    train(config, tmp_path / "run", progress=False)
    with pytest.raises(ConvergentError, match=r"different config.*lr"):
        train(config.replace(lr=1e-3), tmp_path / "run", progress=False)


def test_corrupt_checkpoint_is_a_clear_error(corpus, tmp_path):
    config = tiny_config(corpus)
    train(config, tmp_path / "run", progress=False, stop_after=5)
    weights = tmp_path / "run/checkpoints/step-00000004/model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(ConvergentError, match="corrupt"):
        train(config, tmp_path / "run", progress=False)


@pytest.mark.parametrize(
    ("changes", "message"),
    [({"arch": "rnn"}, "arch"), ({"optimizer": "sgd"}, "optimizer"),
     ({"tokens": 10}, "less than one step"), ({"perturb": "isolate-x"}, "perturbation"),
     ({"model": ModelConfig(d_model=30, n_heads=4)}, "divisible")],
)
def test_bad_configs(corpus, changes, message):
    with pytest.raises(ConvergentError, match=message):
        tiny_config(corpus, **changes).validate()


def test_config_json_round_trip(corpus, tmp_path):
    config = tiny_config(corpus, optimizer="muon", perturb="context-4")
    config.save(tmp_path / "c.json")
    assert TrainConfig.load(tmp_path / "c.json") == config
    with pytest.raises(ConvergentError, match="unknown field"):
        TrainConfig.from_dict({"arch": "lstm", "width": 3})


@pytest.mark.parametrize("perturb", ["unigram", "isolate-1", "context-4"])
def test_perturbed_runs_train(corpus, tmp_path, perturb):
    config = tiny_config(corpus, perturb=perturb, tokens=16 * 8, arch="lstm")
    result = train(config, tmp_path / "run", progress=False)
    assert result.complete and result.final_loss is not None
    meta = json.loads((tmp_path / "run" / "data" / "corpus.json").read_text())
    assert meta["perturb"] == perturb
    from convergent.train.stream import make_batches, prepare_data

    tok, stream = prepare_data(tmp_path / "run", config, progress=False)
    batch = make_batches(stream, tok, config).batch(0)
    if perturb == "context-4":
        assert batch.tokens.shape == (16 * 8 // 4, 5)
    elif perturb == "isolate-1":
        assert batch.mask is not None and batch.tokens.shape == (8, 17)
    else:
        assert batch.mask is None and batch.tokens.shape == (8, 17)


def test_compiled_run_trains_and_resumes_to_the_same_weights(corpus, tmp_path):
    config = tiny_config(corpus, tokens=16 * 8 * 8)
    straight = train(config, tmp_path / "straight", progress=False, compile=True)
    metrics = json.loads((tmp_path / "straight" / "metrics.json").read_text())
    assert straight.complete and metrics[-1]["loss"] < metrics[0]["loss"] - 0.3
    train(config, tmp_path / "resumed", progress=False, compile=True, stop_after=6)
    assert [c.step for c in list_checkpoints(tmp_path / "resumed")] == [0, 4]
    train(config, tmp_path / "resumed", progress=False, compile=True)
    a = load_file(str(tmp_path / "straight/checkpoints/step-00000008/model.safetensors"))
    b = load_file(str(tmp_path / "resumed/checkpoints/step-00000008/model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_compiler_failure_is_one_line_before_any_checkpoint(corpus, tmp_path):
    import torch._inductor.config as inductor

    torch._dynamo.reset()
    # torch's own config patches (monkeypatch would delete these config keys on undo)
    with torch.compiler.config.patch(force_disable_caches=True), \
            inductor.patch({"cpp.cxx": ("/nonexistent/c++",)}), \
            pytest.raises(ConvergentError, match=r"--compile failed.*run without --compile"):
        train(tiny_config(corpus), tmp_path / "run", progress=False, compile=True)
    assert not list_checkpoints(tmp_path / "run")
    torch._dynamo.reset()
