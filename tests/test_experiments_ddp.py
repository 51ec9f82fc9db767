"""torchrun DDP on CPU (gloo, 2 processes): the same weights as one process on the batch."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file
from test_experiments_fixtures import make_corpus

from convergent.errors import ConvergentError
from convergent.experiments.ddp import ShardedBatches, launch
from convergent.train import ModelConfig, TrainConfig, train
from convergent.train.checkpoint import list_checkpoints
from convergent.train.data import Batch


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("CONVERGENT_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


def tiny(corpus: str, **changes) -> TrainConfig:
    return TrainConfig(
        arch="transformer", corpus=corpus, vocab_size=1300, optimizer="adamw",
        model=ModelConfig(d_model=32, n_layers=1, n_heads=2), tokens=8 * 16 * 6,
        batch_size=8, seq_len=16, checkpoint_every=8 * 16 * 3, warmup_tokens=0,
        lr=3e-3).replace(**changes)


def test_sharded_batches_split_the_rows():
    class Source:
        def batch(self, index):
            return Batch(torch.arange(12).reshape(6, 2) + 100 * index)

    shards = [ShardedBatches(Source(), r, 3).batch(1).tokens for r in range(3)]
    assert torch.equal(torch.cat(shards).sort(dim=0).values,
                       Source().batch(1).tokens.sort(dim=0).values)
    assert shards[1][0, 0] == 102


@pytest.mark.parametrize("compiled", [False, True])
def test_two_process_ddp_matches_one_process(tmp_path, compiled):
    # Muon agrees too (measured: same tolerance); one optimizer keeps the test short.
    # Compiled ranks are compared with the eager single process (rounding differs only).
    corpus = make_corpus(tmp_path / "c.jsonl", docs=20)
    config = tiny(corpus, optimizer="muon")
    single = train(config, tmp_path / "single", progress=False)
    launch(config, tmp_path / "ddp", processes=2, timeout=300, compile=compiled)
    ddp_ckpts = list_checkpoints(tmp_path / "ddp")
    assert [c.step for c in ddp_ckpts] == [c.step for c in list_checkpoints(single.run_dir)]
    ours = load_file(str(ddp_ckpts[-1].path / "model.safetensors"))
    reference = load_file(str(list_checkpoints(single.run_dir)[-1].path / "model.safetensors"))
    initial = load_file(str(ddp_ckpts[0].path / "model.safetensors"))
    moved = max(float((reference[k] - initial[k]).abs().max()) for k in reference)
    for name, tensor in reference.items():
        assert torch.allclose(ours[name], tensor, atol=2e-4, rtol=1e-3), name
    assert moved > 1e-2  # training changed the weights, so agreement means something
    from inspect import signature

    from convergent.train.loop import train_loop

    scratch = (tmp_path / "ddp" / ".ddp" / "rank-1" / "checkpoints").is_dir()
    assert scratch != ("is_main" in signature(train_loop).parameters)


def test_bad_launches_are_one_line_errors(tmp_path):
    corpus = make_corpus(tmp_path / "c.jsonl", docs=5)
    with pytest.raises(ConvergentError, match="not divisible by the 3 processes"):
        launch(tiny(corpus, batch_size=8), tmp_path / "bad", processes=3)
    with pytest.raises(ConvergentError, match="not trained by gradient"):
        launch(tiny(corpus, arch="word2vec"), tmp_path / "w2v", processes=2)


def test_a_spec_group_with_processes_runs_as_ddp(tmp_path):
    from test_experiments_fixtures import tiny_train, write_spec

    from convergent.experiments import load_spec, load_table, run_experiment

    corpus = make_corpus(tmp_path / "c.jsonl", docs=10)
    file = write_spec(tmp_path / "d.toml", {
        "experiment": {"name": "d"},
        "train.g": {"set": {**tiny_train(corpus), "arch": "lstm"}, "processes": 2}})
    summary = run_experiment(load_spec(file), tmp_path / "out", backend="serial",
                             progress=False)
    assert summary.success, summary.failed
    (row,) = load_table(tmp_path / "out").itertuples()
    assert row.steps == 6 and row.final_loss > 0
    assert '"processes": 2' in row.config
