"""A tiny model learns 2-digit addition (chunk 1) through the training engine."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from convergent.errors import ConvergentError
from convergent.tasks.addition import AdditionTask
from convergent.tasks.dataset import SplitConfig
from convergent.tasks.evaluate import accuracy, answer_predictions, greedy_answers
from convergent.tasks.run import TaskRunSpec, evaluate_run, load_task_run, train_task
from convergent.train.config import ModelConfig, TrainConfig

TASK = AdditionTask(digits=2, chunk=1)
STEPS = 600


def tiny_spec(seed: int = 0, steps: int = STEPS, optimizer: str = "adamw") -> TaskRunSpec:
    per_step = 64 * (TASK.seq_len - 1)
    config = TrainConfig(
        arch="transformer", optimizer=optimizer, lr=1e-2, weight_decay=0.1,
        model=ModelConfig(d_model=64, n_layers=2, n_heads=4, tie_embeddings=True),
        batch_size=64, tokens=steps * per_step, warmup_tokens=20 * per_step,
        checkpoint_every=steps * per_step // 2, seed=seed)
    return TaskRunSpec(TASK, SplitConfig(test_pairs=500, seed=seed), config)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("runs") / "add2"
    train_task(tiny_spec(), out, progress=False)
    return out


def load_final(run_dir: Path) -> torch.nn.Module:
    from convergent.train.checkpoint import list_checkpoints, load_tensors
    from convergent.train.models import build_model

    _, task, _, config = load_task_run(run_dir)
    model = build_model(config.arch, config.model, task.vocab_size)
    model.load_state_dict(load_tensors(list_checkpoints(run_dir)[-1].path / "model.safetensors"))
    return model


def test_learns_two_digit_addition_above_chance(trained: Path) -> None:
    points = evaluate_run(trained, progress=False)
    assert [p["step"] for p in points] == [0, STEPS // 2, STEPS]
    first, last = points[0]["test"], points[-1]["test"]
    # chance: the answer (3 tokens, 199 possible sums) right by luck is < 1%
    assert first["exact_match"] < 5
    assert last["exact_match"] > 10, points
    assert last["token_accuracy"] > 50
    assert "numbers" not in last  # 10 number tokens: too few to probe mod 2..10
    record = json.loads((trained / "task.json").read_text())
    assert record["task"] == TASK.to_dict()
    cached = json.loads((trained / "eval" / f"step-{STEPS:08d}.json").read_text())
    assert cached["test"] == last


def test_exact_match_equals_greedy_decoding(trained: Path) -> None:
    model = load_final(trained)
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 100, 400), rng.integers(0, 100, 400)
    tokens = torch.from_numpy(TASK.encode(a, b))
    truth = tokens[:, TASK.answer_start:]
    forced = (answer_predictions(model, TASK, tokens) == truth).all(dim=1)
    greedy = (greedy_answers(model, TASK, tokens) == truth).all(dim=1)
    assert 0 < int(forced.sum()) < len(forced) or bool(forced.all())
    assert torch.equal(forced, greedy)
    result = accuracy(model, TASK, a, b)
    assert result.exact_match == pytest.approx(100 * float(greedy.float().mean()))


def test_run_is_a_source_of_number_embeddings(trained: Path) -> None:
    from convergent.sources import open_source

    reps = open_source(f"run:{trained}").number_representations(range(10), ["embed"])
    model = load_final(trained)
    np.testing.assert_allclose(reps[0].values, model.embed.weight[:10].detach().numpy())
    assert reps[0].meta["tied"] is True


def test_resume_gives_the_same_run(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    spec = tiny_spec(steps=40)
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    train_task(spec, whole, progress=False)
    train_task(spec, parts, progress=False, stop_after=25)
    train_task(spec, parts, progress=False)
    a = load_final(whole).state_dict()
    b = load_final(parts).state_dict()
    for key in a:
        torch.testing.assert_close(a[key], b[key])


def test_other_task_in_same_folder_is_refused(tmp_path: Path) -> None:
    spec = tiny_spec(steps=2)
    train_task(spec, tmp_path / "run", progress=False)
    other = TaskRunSpec(TASK, SplitConfig(test_pairs=400), spec.config)
    with pytest.raises(ConvergentError, match="different task or split"):
        train_task(other, tmp_path / "run", progress=False)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "file.txt").write_text("x")
    with pytest.raises(ConvergentError, match="not empty"):
        train_task(spec, tmp_path / "junk", progress=False)


def test_train_task_cli_glue(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from convergent.tasks.cli_support import add_task_arguments, run_task_training

    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path)
    parser.add_argument("--optimizer", default=None)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--compile", action="store_true")
    add_task_arguments(parser)
    args = parser.parse_args(["--task", "addition", "--digits", "2", "--chunk", "1",
                              "--steps", "6", "--test-pairs", "50", "--optimizer", "muon",
                              "--out", str(tmp_path / "cli"), "--no-progress"])
    assert run_task_training(args) == 0
    printed = capsys.readouterr().out
    assert "2-digit multi-token (chunk 1)" in printed and "test EM" in printed
    config = json.loads((tmp_path / "cli" / "config.json").read_text())
    assert config["optimizer"] == "muon" and config["model"]["tie_embeddings"] is True
    both = parser.parse_args(["--task", "addition", "--steps", "5", "--digits", "2",
                              "--chunk", "1"])
    both.tokens = 100
    from convergent.tasks.cli_support import build_task_spec

    with pytest.raises(ConvergentError, match="--steps or --tokens"):
        build_task_spec(both)
    single = parser.parse_args(["--task", "addition", "--digits", "3", "--chunk", "3"])
    assert build_task_spec(single).task == AdditionTask(3, 3, answer="whole")
    single.answer = "carry-mod"
    assert build_task_spec(single).task.spec == "addition-d3c3-carrymod"
    assert build_task_spec(parser.parse_args(["--task", "addition"])).task.answer == \
        "carry-mod"
    with pytest.raises(ConvergentError, match="single-token task"):
        build_task_spec(parser.parse_args(["--task", "addition", "--answer", "whole"]))
