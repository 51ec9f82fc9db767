import json

import numpy as np
import pytest
from numbers_fixtures import planted

from convergent.cli import main


def test_numbers_cli_writes_results_and_figures(tmp_path, capsys):
    np.save(tmp_path / "a.npy", planted(n=200, dim=8, periods=(2, 5), seed=0))
    np.save(tmp_path / "b.npy", planted(n=200, dim=8, periods=(3,), seed=1))
    out = tmp_path / "out"
    code = main(["numbers", f"matrix:{tmp_path / 'a.npy'}", f"matrix:{tmp_path / 'b.npy'}",
                 "--labels", "0:200", "--numbers", "0:200", "--out", str(out),
                 "--permutations", "49"])
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    assert [s["name"] for s in results["sources"]] == ["a", "b"]
    entry = results["sources"][0]
    assert entry["numbers"] == [0, 199] and entry["dim"] == 8 and entry["site"] == "embed"
    assert {"frequency", "power", "magnitude", "peaks"} <= set(entry["spectrum"])
    assert len(entry["spectrum"]["frequency"]) == 101
    assert set(entry["periods"]) == {str(t) for t in range(2, 11)}
    assert {"phi", "spike", "p_value", "kappa", "kappa_ci", "accuracy"} <= set(
        entry["periods"]["5"])
    assert {"lambda_max", "cond_sw", "lower_bound", "upper_bound", "trace_identity_error"} <= set(
        entry["fisher"]["10"])
    assert entry["seed"] == 0 and "numpy" in entry["versions"]
    assert entry["periods"]["5"]["kappa"] > 80
    assert results["sources"][1]["periods"]["3"]["kappa"] > 80
    for name in ("numbers.png", "numbers.svg"):
        assert (out / name).stat().st_size > 1000
    assert "kappa_10" in capsys.readouterr().out


def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    values = planted(n=50, dim=4)
    values[3, 1] = np.nan
    np.save(tmp_path / "nan.npy", values)
    out = tmp_path / "out"
    code = main(["numbers", f"matrix:{tmp_path / 'nan.npy'}", "--numbers", "0:50", "--out",
                 str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("convergent: error:") and "NaN" in err and "\n" not in err
    assert not (out / "results.json").exists()


def test_missing_numbers_from_the_cli(tmp_path, capsys):
    np.save(tmp_path / "m.npy", planted(n=50, dim=4))
    code = main(["numbers", f"matrix:{tmp_path / 'm.npy'}", "--numbers", "0:60", "--out",
                 str(tmp_path / "o")])
    assert code == 2
    assert "50, 51" in capsys.readouterr().err
    code = main(["numbers", f"matrix:{tmp_path / 'm.npy'}", "--numbers", "0:60", "--contiguous",
                 "--out", str(tmp_path / "o"), "--permutations", "0"])
    assert code == 0


def test_labels_need_a_matrix_source(tmp_path, capsys):
    assert main(["numbers", "glove-6b-50d", "--labels", "0:10", "--out", str(tmp_path)]) == 2
    assert "matrix" in capsys.readouterr().err


def test_theory_cli(tmp_path, capsys):
    assert main(["theory", "--period", "5", "--n", "500", "--out", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "theory.json").read_text())
    assert data["separable"]["phi"] == pytest.approx(data["inseparable"]["phi"])
    assert data["separable"]["best_linear_accuracy"] == 100.0
    assert (tmp_path / "theory.png").exists()
    assert "Theorem 1" in capsys.readouterr().out


def test_a_rerun_resumes_from_finished_analyses(tmp_path):
    np.save(tmp_path / "a.npy", planted(n=100, dim=4, periods=(2,), seed=0))
    out = tmp_path / "out"
    argv = ["numbers", f"matrix:{tmp_path / 'a.npy'}", "--numbers", "0:100", "--out", str(out),
            "--permutations", "0", "--moduli", "2:4"]
    # an interrupted run (its second source fails) keeps the finished analysis beside --out
    assert main([*argv[:2], f"matrix:{tmp_path / 'missing.npy'}", *argv[2:]]) == 2
    assert not out.exists()
    (kept,) = (tmp_path / "out.partial").glob("*.json")
    entry = json.loads(kept.read_text())
    entry["periods"]["2"]["kappa"] = 12.5  # marks the kept file: a rerun must read it
    kept.write_text(json.dumps(entry))
    assert main(argv) == 0
    assert json.loads((out / "results.json").read_text())["sources"][0]["periods"]["2"][
        "kappa"] == 12.5
    assert not (tmp_path / "out.partial").exists()  # success removes the memo
    assert {p.name for p in out.iterdir()} >= {"results.json", "numbers.png", "numbers.svg"}
    assert not [p for p in out.iterdir() if p.name.endswith(".partial")]
    assert main([*argv, "--seed", "1"]) == 0  # other settings: analysed afresh
    assert json.loads((out / "results.json").read_text())["sources"][0]["periods"]["2"][
        "kappa"] > 50
