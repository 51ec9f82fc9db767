"""``convergent reproduce addition`` end to end at a toy scale, and its figures."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

from convergent.cli import main

ARGS = ["reproduce", "addition", "--only", "d3c3-adamw", "--only", "d9c3-muon",
        "--steps", "3", "--checkpoints", "1", "--d-model", "32", "--layers", "1",
        "--seeds", "1", "--workers", "1", "--permutations", "5", "--test-pairs", "20",
        "--no-progress"]


@pytest.fixture(scope="module")
def reproduced(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("repro")
    assert main([*ARGS, "--out", str(out)]) == 0
    return out


def test_writes_results_and_figures(reproduced: Path) -> None:
    for name in ("results.json", "addition.png", "addition.svg", "dynamics.png",
                 "dynamics.svg"):
        assert (reproduced / name).stat().st_size > 0, name
    data = json.loads((reproduced / "results.json").read_text())
    assert data["experiment"] == "addition"
    assert set(data["summary"]) == {"3-digit AdamW", "9-digit Muon"}
    nine = data["summary"]["9-digit Muon"]
    # the paper's values come from convergent.reference, matched on the setting
    assert {t: nine["paper_kappa"][t] for t in ("2", "4", "5", "10")} == {
        "2": 99.7, "4": 59.4, "5": 100.0, "10": 100.0}
    assert nine["paper_row"] == "addition/9digit/muon" and nine["paper_note"] is None
    assert set(nine["kappa"]) == set(nine["spike"]) == {str(t) for t in range(2, 11)}
    three = data["summary"]["3-digit AdamW"]
    assert three["paper_kappa"] == {} and three["paper_row"] == "addition/3digit/adamw"
    assert "|kappa| ≤ 15" in three["paper_note"]
    runs = {r["setting"]: r for r in data["runs"]}
    assert [p["step"] for p in runs["9-digit Muon"]["dynamics"]] == [0, 3]
    final = runs["9-digit Muon"]["final"]
    assert final["test"]["n_problems"] == 20
    assert final["numbers"]["numbers"] == [0, 999] and final["numbers"]["dim"] == 32
    null = nine["null_kappa"]
    assert set(null) == set(nine["kappa"]) and len(null["10"]["values"]) == 4
    first = runs["9-digit Muon"]["dynamics"][0]["periods"]["2"]["kappa"]
    assert nine["init_kappa"]["2"]["values"] == [first]
    config = json.loads(Path(runs["9-digit Muon"]["run_dir"], "config.json").read_text())
    assert config["optimizer"] == "muon" and config["model"]["tie_embeddings"] is True
    assert config["seq_len"] == 12 and config["tokens"] == 3 * 12 * 256
    # the 3-digit row is the whole-sum control: sum tokens up to 1998, operand rows analysed
    single = runs["3-digit AdamW"]
    config = json.loads(Path(single["run_dir"], "config.json").read_text())
    assert config["vocab_size"] == 2002 and config["corpus"] == "task:addition-d3c3"
    assert single["final"]["numbers"]["numbers"] == [0, 999]


def test_shuffled_kappa_is_chance_on_periodic_rows() -> None:
    from convergent.numbers.probe import probe_moduli
    from convergent.tasks.evaluate import shuffled_kappa

    rng = np.random.default_rng(0)
    n = np.arange(200)
    rows = np.concatenate([np.eye(10)[n % 10], 0.1 * rng.normal(size=(200, 6))], axis=1)
    assert probe_moduli(rows, n)[10].kappa > 90  # the rows are separable mod 10 ...
    null = shuffled_kappa(rows, shuffles=3, seed=0)
    assert len(null["10"]["values"]) == 3
    assert all(abs(v["mean"]) < 20 for v in null.values())  # ... and shuffled, chance


def test_rerun_resumes_without_retraining(reproduced: Path) -> None:
    evals = sorted((reproduced / "runs").glob("*/eval/*.json"))
    before = {p: p.stat().st_mtime_ns for p in evals}
    assert main([*ARGS, "--out", str(reproduced)]) == 0
    assert {p: p.stat().st_mtime_ns for p in evals} == before


def test_bad_setting_is_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                       ) -> None:
    code = main(["reproduce", "addition", "--out", str(tmp_path), "--only", "d5c3-sgd"])
    assert code == 2
    assert "--only d5c3-sgd" in capsys.readouterr().err


def repro_parser() -> argparse.ArgumentParser:
    """The arguments of ``reproduce addition`` (the global ones it reads included)."""
    from convergent.tasks.cli_support import add_reproduce_arguments

    parser = argparse.ArgumentParser()
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument("--workers", type=int, default=None)
    add_reproduce_arguments(parser)
    return parser


def test_answer_order_option_reaches_the_task() -> None:
    from convergent.tasks.cli_support import repro_config

    parser = repro_parser()
    quick = repro_config(parser.parse_args([]))
    assert quick.reverse is False  # the paper's reading: most significant chunk first
    lsb = repro_config(parser.parse_args(["--answer-order", "lsb", "--only", "d9c3-adamw"]))
    spec = lsb.run_spec(lsb.settings[0], seed=0)
    assert spec.task.reverse and spec.task.spec == "addition-d9c3-rev"


def test_answer_option_selects_the_single_token_format(capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    from convergent.tasks.cli_support import repro_config

    parser = repro_parser()
    whole = repro_config(parser.parse_args(["--only", "d3c3-muon"]))
    assert whole.run_spec(whole.settings[0], 0).task.answer == "whole"
    variant = repro_config(parser.parse_args(["--answer", "carry-mod", "--only",
                                              "d3c3-carrymod-adamw", "--only", "d9c3-muon"]))
    specs = [variant.run_spec(s, 0).task.spec for s in variant.settings]
    assert specs == ["addition-d3c3-carrymod", "addition-d9c3"]
    with pytest.raises(SystemExit):
        parser.parse_args(["--answer", "mod1000"])
    assert "'mod1000': choose one of whole, carry-mod" in capsys.readouterr().err


def test_paper_preset_trains_single_token_runs_to_3b_tokens() -> None:
    from convergent.tasks.cli_support import repro_config

    parser = repro_parser()
    paper = repro_config(parser.parse_args(["--preset", "paper"]))
    single = paper.run_spec(paper.settings[2], 0).config
    multi = paper.run_spec(paper.settings[0], 0).config
    assert single.tokens == 3_000_000_000 and single.checkpoint_every == 150_000_000
    assert multi.tokens == 20_000 * paper.batch_size * 12  # 9-digit: steps x tokens per step
    steps = repro_config(parser.parse_args(["--preset", "paper", "--steps", "7"]))
    assert steps.run_spec(steps.settings[2], 0).config.tokens == 7 * steps.batch_size * 5


def test_only_the_papers_own_control_has_published_values() -> None:
    from convergent.tasks.experiment import Setting, paper_kappa

    carry_mod = paper_kappa(Setting("single", "muon", answer="carry-mod"))
    assert carry_mod["paper_row"] is None and carry_mod["paper_kappa"] == {}
    assert "no published value" in carry_mod["paper_note"]
    scaled = paper_kappa(Setting("multi", "adamw", chunk=2))  # the chunk-2 analogue of 9-digit
    assert scaled["paper_row"] == "addition/9digit/adamw" and scaled["paper_kappa"]["10"] == 100
