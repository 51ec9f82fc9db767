"""The training engine: devices, precision, micro-batches, ranks (gloo on CPU), bad input."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from safetensors.torch import load_file
from test_experiments_fixtures import make_corpus

from convergent.errors import ConvergentError
from convergent.train import ModelConfig, TrainConfig, train
from convergent.train.checkpoint import list_checkpoints
from convergent.train.config import EngineConfig
from convergent.train.data import Batch
from convergent.train.engine import Engine, accumulate, check_placement, start_engine, wrap


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("CONVERGENT_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_corpus(tmp_path_factory.mktemp("corpus") / "c.jsonl", docs=20)


def tiny(corpus: str, arch: str = "transformer", **engine) -> TrainConfig:
    return TrainConfig(
        arch=arch, corpus=corpus, vocab_size=1300, optimizer="adamw",
        model=ModelConfig(d_model=32, n_layers=1, n_heads=2, chunk_size=8, d_state=8),
        tokens=8 * 16 * 6, batch_size=8, seq_len=16, checkpoint_every=8 * 16 * 3,
        warmup_tokens=0, lr=3e-3, engine=EngineConfig(**engine))


def last_weights(run_dir) -> dict[str, torch.Tensor]:
    return load_file(str(list_checkpoints(run_dir)[-1].path / "model.safetensors"))


def assert_same_training(run_a, run_b, atol: float = 2e-4) -> None:
    a, b = last_weights(run_a), last_weights(run_b)
    first = load_file(str(list_checkpoints(run_a)[0].path / "model.safetensors"))
    assert max(float((a[k] - first[k]).abs().max()) for k in a) > 1e-2  # training moved them
    for name in a:
        assert torch.allclose(a[name], b[name], atol=atol, rtol=1e-3), name


class _Linear(torch.nn.Module):
    """A model whose loss is a masked mean over targets, like the language models'."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(11, 4)
        self.head = torch.nn.Linear(4, 11)

    def loss(self, tokens, mask=None, segments=None):
        logits = self.head(self.embed(tokens[:, :-1]))
        losses = torch.nn.functional.cross_entropy(
            logits.transpose(1, 2), tokens[:, 1:], reduction="none")
        return losses.mean() if mask is None else losses[mask].mean()


@pytest.mark.parametrize("masked", [False, True])
def test_accumulation_equals_one_step_on_the_whole_batch(masked):
    torch.manual_seed(0)
    tokens = torch.randint(0, 11, (8, 7))
    mask = torch.rand(8, 6) > 0.4 if masked else None
    grads = []
    for micro in (0, 2, 1):
        torch.manual_seed(1)
        model = _Linear()
        engine = Engine(torch.device("cpu"), "fp32", micro_batch=micro)
        loss = accumulate(wrap(model, engine), engine, Batch(tokens, mask))
        grads.append((loss, [p.grad.clone() for p in model.parameters()]))
    (loss0, whole), *others = grads
    for loss, parts in others:
        assert loss == pytest.approx(loss0, rel=1e-6)
        for g0, g in zip(whole, parts, strict=True):
            assert torch.allclose(g0, g, atol=1e-6)


def test_micro_batches_train_like_the_whole_batch(corpus, tmp_path):
    whole = train(tiny(corpus), tmp_path / "whole", progress=False)
    micro = train(tiny(corpus, micro_batch=2), tmp_path / "micro", progress=False)
    assert whole.complete and micro.complete
    assert_same_training(tmp_path / "whole", tmp_path / "micro")
    manifest = json.loads((tmp_path / "micro" / "manifest.json").read_text())
    assert manifest["engine"]["micro_batch"] == 2 and "micro-batch 2" in \
        manifest["engine"]["resolved"]


def test_a_run_resumes_under_another_engine_config(corpus, tmp_path):
    config = tiny(corpus)
    train(config, tmp_path / "run", progress=False, stop_after=4)
    other = dataclasses.replace(config, engine=EngineConfig(micro_batch=4))
    assert train(other, tmp_path / "run", progress=False).complete


def test_cpu_bf16_autocast_trains_and_keeps_fp32_weights(corpus, tmp_path):
    result = train(tiny(corpus, precision="bf16"), tmp_path / "bf16", progress=False)
    metrics = json.loads((tmp_path / "bf16" / "metrics.json").read_text())
    assert result.complete and metrics[-1]["loss"] < metrics[0]["loss"]
    assert all(t.dtype == torch.float32 for t in last_weights(tmp_path / "bf16").values())
    assert "tokens_per_s" in metrics[-1]


@pytest.mark.slow
@pytest.mark.parametrize("engine", [
    {"nproc": 2},
    {"nproc": 2, "micro_batch": 2},
    {"nproc": 2, "fsdp": True},
], ids=["ddp", "ddp-accumulation", "fsdp2"])
def test_two_gloo_ranks_train_like_one_process(corpus, tmp_path, engine):
    single = tiny(corpus).replace(optimizer="muon")
    train(single, tmp_path / "single", progress=False)
    ranks = single.replace(engine=EngineConfig(**engine))
    result = train(ranks, tmp_path / "ranks", progress=False)
    assert result.complete and result.steps == single.total_steps
    assert [c.step for c in list_checkpoints(tmp_path / "ranks")] == \
        [c.step for c in list_checkpoints(tmp_path / "single")]
    assert_same_training(tmp_path / "single", tmp_path / "ranks")
    manifest = json.loads((tmp_path / "ranks" / "manifest.json").read_text())
    assert manifest["engine"]["world_size"] == 2


@pytest.mark.slow
def test_a_killed_two_rank_run_resumes(corpus, tmp_path):
    config = tiny(corpus, nproc=2)
    partial = train(config, tmp_path / "run", progress=False, stop_after=4)
    assert not partial.complete
    assert train(config, tmp_path / "run", progress=False).complete
    straight = train(config, tmp_path / "straight", progress=False)
    assert straight.complete
    a, b = last_weights(tmp_path / "run"), last_weights(tmp_path / "straight")
    for name in a:
        assert torch.allclose(a[name], b[name], atol=1e-5), name


def test_bad_engines_are_one_line_errors_before_anything_is_written(corpus, tmp_path,
                                                                   monkeypatch):
    out = tmp_path / "run"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConvergentError, match="no CUDA GPU"):
        train(tiny(corpus, device="cuda"), out, progress=False)
    with pytest.raises(ConvergentError, match="--nproc 64: this machine has"):
        train(tiny(corpus, nproc=64), out, progress=False)
    with pytest.raises(ConvergentError, match="--nproc applies to neural"):
        train(tiny(corpus, arch="word2vec", nproc=2), out, progress=False)
    with pytest.raises(ConvergentError, match="does not divide"):
        train(tiny(corpus, micro_batch=3), out, progress=False)
    assert not out.exists()
    with pytest.raises(ConvergentError, match="not divisible by the 3 processes"):
        monkeypatch.setenv("WORLD_SIZE", "3")
        monkeypatch.setenv("RANK", "0")
        start_engine(EngineConfig(), batch_size=8)


def _fake_gpus(monkeypatch, count: int) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: None)


def test_cuda_is_resolved_for_model_batches_and_compile_sample(monkeypatch, tmp_path):
    """With CUDA faked, the model, every batch and the compile sample go to one device."""
    from convergent.train import loop as loop_module

    _fake_gpus(monkeypatch, 2)
    assert check_placement(EngineConfig(device="auto", nproc=2)).type == "cuda"
    with pytest.raises(ConvergentError, match="--nproc 3: this machine has 2 CUDA GPUs"):
        check_placement(EngineConfig(nproc=3))
    engine = start_engine(EngineConfig(), batch_size=8)
    assert engine.device == torch.device("cuda", 0) and engine.precision == "bf16"
    assert torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    seen: list[tuple[str, object]] = []
    monkeypatch.setattr(Engine, "to_device", lambda self, batch: seen.append(
        ("batch", self.device)) or batch)

    class Model(_Linear):
        def to(self, device):
            seen.append(("model", device))
            return self

    def fake_compile(model, sample):
        seen.append(("compile", engine.device))

    monkeypatch.setattr("convergent.train.compiled.compile_for_training", fake_compile)
    cpu_engine = dataclasses.replace(engine, precision="fp32")

    class Source:
        def batch(self, index):
            return Batch(torch.randint(0, 11, (8, 7)))

    config = TrainConfig(tokens=8 * 6 * 2, batch_size=8, seq_len=6, checkpoint_every=10**6)
    model = Model()
    loop_module.prepare(model, Source(), config, tmp_path, cpu_engine, compile=True)
    trainable = wrap(model, cpu_engine)
    accumulate(trainable, cpu_engine, Source().batch(0))
    assert {device for _, device in seen} == {torch.device("cuda", 0)}
    assert [kind for kind, _ in seen][:3] == ["model", "batch", "compile"]


@pytest.mark.slow
def test_a_spec_group_with_processes_trains_with_two_ranks(corpus, tmp_path):
    from test_experiments_fixtures import tiny_train, write_spec

    from convergent.experiments import load_spec, load_table, run_experiment

    file = write_spec(tmp_path / "d.toml", {
        "experiment": {"name": "d"},
        "train.g": {"set": {**tiny_train(corpus), "arch": "lstm"}, "processes": 2}})
    summary = run_experiment(load_spec(file), tmp_path / "out", backend="serial",
                             progress=False)
    assert summary.success, summary.failed
    (row,) = load_table(tmp_path / "out").itertuples()
    assert row.steps == 6 and row.final_loss > 0
    assert '"processes": 2' in row.config


def test_a_run_that_fails_while_setting_up_leaves_nothing(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(ConvergentError, match="no text found"):
        train(tiny(str(empty)), tmp_path / "new", progress=False)
    assert not (tmp_path / "new").exists()
    (tmp_path / "given").mkdir()
    with pytest.raises(ConvergentError, match="no text found"):
        train(tiny(str(empty)), tmp_path / "given", progress=False)
    assert list((tmp_path / "given").iterdir()) == []
    good = make_corpus(tmp_path / "c.jsonl", docs=20)
    assert train(tiny(good), tmp_path / "new", progress=False).complete  # not refused
