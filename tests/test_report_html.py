"""The HTML report: self-contained content, and a real headless Chromium loads it cleanly."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from test_experiments_fixtures import periodic_matrix, write_spec

from convergent.cli import main
from convergent.experiments import load_spec, run_experiment
from convergent.report.html import write_report

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--window-size=1280,2600")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A finished experiment with two analyses, one of them with a failed row."""
    tmp = tmp_path_factory.mktemp("report")
    spec = write_spec(tmp / "r.toml", {
        "experiment": {"name": "report-test", "description": "two <matrices> & a NaN"},
        "numbers": {"numbers": "0:60", "permutations": 10},
        "sources.periodic": {"spec": f"matrix:{periodic_matrix(tmp / 'p.npy')}"},
        "sources.noisy": {"spec": f"matrix:{periodic_matrix(tmp / 'n.npy', noise=3.0)}"},
        "sources.<i>broken": {"spec": f"matrix:{periodic_matrix(tmp / 'b.npy', nan=True)}"},
        "analyses.main": {"sources": ["periodic", "noisy"], "title": "Periodic vs noisy"},
        "analyses.other": {"sources": ["periodic", "<i>broken"], "moduli": "2:6"},
    })
    out = tmp / "out"
    run_experiment(load_spec(spec), out, backend="serial", progress=False)
    return out


def test_report_is_self_contained_and_escaped(folder, capsys):
    assert main(["report", str(folder)]) == 0
    assert "report.html" in capsys.readouterr().out
    text = (folder / "report.html").read_text()
    assert text.count('src="data:image/png;base64,') == 2
    assert not re.search(r'(src|href)="(http|//)', text)  # nothing loaded from elsewhere
    assert "<i>broken" not in text and "&lt;i&gt;broken" in text
    assert "two &lt;matrices&gt; &amp; a NaN" in text
    for needed in ("Periodic vs noisy", "Failures", "Timings", "Job configs", "Versions",
                   "&quot;permutations&quot;: 10", "numpy"):
        assert needed in text
    assert (folder / "report" / "main.png").is_file()


def find_chromium() -> str | None:
    explicit = os.environ.get("CONVERGENT_CHROMIUM")
    if explicit:
        return explicit
    return next((found for name in CHROMIUM_NAMES if (found := shutil.which(name))), None)


def load_in_chromium(browser: str, page: Path, tmp: Path) -> tuple[dict, list[str], Path]:
    """(data-* of <body> after load, console error lines, screenshot) for ``page``."""
    url = page.resolve().as_uri()
    common = [browser, *FLAGS, f"--user-data-dir={tmp / 'profile'}"]
    dom = subprocess.run([*common, "--enable-logging=stderr", "--v=0", "--dump-dom", url],
                         capture_output=True, text=True, timeout=120)
    body = re.search(r"<body([^>]*)>", dom.stdout)
    assert body, f"chromium printed no DOM: {dom.stderr[-2000:]}"
    data = {k: json.loads(v.replace("&quot;", '"')) if k != "ready" else v
            for k, v in re.findall(r'data-(\w+)="([^"]*)"', body.group(1))}
    errors = [line for line in dom.stderr.splitlines()
              if "CONSOLE" in line or "Uncaught" in line]
    shot = tmp / "shot.png"
    subprocess.run([*common, f"--screenshot={shot}", url], capture_output=True, timeout=120)
    assert shot.is_file(), "chromium wrote no screenshot"
    return data, errors, shot


def painted_fraction(shot: Path, box: list[int]) -> tuple[float, int]:
    """(share of non-white pixels, number of distinct colours) inside ``box`` (x, y, w, h)."""
    from PIL import Image

    x, y, w, h = box[:4]
    pixels = np.asarray(Image.open(shot).convert("RGB"))[y:y + h, x:x + w].reshape(-1, 3)
    painted = float((pixels.min(axis=1) < 235).mean())
    return painted, len(np.unique(pixels // 16, axis=0))


@pytest.fixture(scope="module")
def browser():
    found = find_chromium()
    if found is None:
        pytest.skip("no Chromium found (install the Debian package chromium, or set "
                    "CONVERGENT_CHROMIUM to a Chrome/Chromium binary)")
    return found


def test_chromium_loads_the_report_without_errors_and_shows_the_figures(folder, browser,
                                                                        tmp_path):
    page = write_report(folder)
    data, errors, shot = load_in_chromium(browser, page, tmp_path)
    assert data["ready"] == "1" and data["errors"] == [] and errors == []
    figures = data["figures"]
    assert len(figures) == 2
    for box in figures:
        assert box[4] > 500 and box[2] > 300 and box[3] > 100  # decoded and laid out
        if box[1] + box[3] <= 2600:  # inside the screenshot
            painted, colours = painted_fraction(shot, box)
            assert painted > 0.3 and colours > 20, (box, painted, colours)
    blank = [figures[0][0], 5, figures[0][2], 20]  # the page's top margin
    assert painted_fraction(shot, blank)[0] < 0.05


def test_the_chromium_check_catches_a_script_error(folder, browser, tmp_path):
    broken = tmp_path / "broken.html"
    text = write_report(folder, tmp_path / "ok.html").read_text()
    broken.write_text(text.replace("</body>", "<script>notDefined();</script></body>"))
    data, errors, _ = load_in_chromium(browser, broken, tmp_path)
    assert any("notDefined" in line for line in errors) or data["errors"]


def test_addition_groups_get_a_figure_and_a_table(tmp_path):
    from convergent.experiments.plan import Job, Member, Plan
    from convergent.experiments.worker import job_dir
    from convergent.io import write_json_atomic

    train = {"arch": "transformer", "optimizer": "muon", "tokens": 1000}
    job = Job("a" * 16, "addition", "add/muon",
              {"task": {"digits": 9, "chunk": 3}, "split": {}, "loss_on": "answer",
               "train": train})
    plan = Plan("syn", "", {job.key: job}, {"add": ("addition", (Member("muon", job.key,
                                                                        "add"),))}, {})
    write_json_atomic(tmp_path / "plan.json", plan.to_dict())
    points = [{"step": s, "tokens": 100 * s,
               "test": {"exact_match": 10.0 * s, "token_accuracy": 50.0, "n_problems": 9},
               "numbers": {"periods": {"2": {"kappa": 5.0 * s}, "10": {"kappa": 9.0 * s}}}}
              for s in range(5)]
    write_json_atomic(job_dir(tmp_path, job.key) / "result.json", {"points": points})
    write_json_atomic(job_dir(tmp_path, job.key) / "record.json",
                      {"key": job.key, "status": "ok", "seconds": 2.5,
                       "summary": {"steps": 4, "final_loss": 0.5}})
    text = write_report(tmp_path).read_text()
    assert "Addition: add" in text and text.count("data:image/png;base64,") == 1
    assert "<td>40.0</td>" in text and '<td data-v="36.0">36.0' in text  # exact match, kappa 10
    assert 'title="paper: addition figure">59.4</div>' in text  # 9-digit Muon, kappa 4
    assert "No published value" not in text


def test_the_paper_stands_beside_matching_rows(tmp_path):
    from convergent.experiments.plan import Job, Member, Plan
    from convergent.experiments.worker import job_dir
    from convergent.io import write_json_atomic
    from convergent.numbers import analyze_numbers

    run = Job("b" * 16, "train", "muon/transformer", {"train": {
        "arch": "transformer", "optimizer": "muon", "perturb": None, "tokens": 1000,
        "model": {"n_layers": 2}}})
    ours = Job("c" * 16, "numbers", "arch/muon/transformer",
               {"source": {"run": run.key}, "settings": {}}, (run.key,))
    other = Job("d" * 16, "numbers", "arch/mine",
                {"source": {"spec": "matrix:m.npy", "options": {}}, "settings": {}})
    rows = (Member("muon/transformer", ours.key, "muon"), Member("mine", other.key, ""))
    plan = Plan("paper-test", "", {j.key: j for j in (run, ours, other)},
                {"muon": ("train", (Member("transformer", run.key, "muon"),))},
                {"arch": ("Architectures", rows)})
    write_json_atomic(tmp_path / "plan.json", plan.to_dict())
    entry = analyze_numbers(np.load(periodic_matrix(tmp_path / "m.npy")), range(60),
                            permutations=10).to_dict()
    for job in (ours, other):
        write_json_atomic(job_dir(tmp_path, job.key) / "result.json", {"entries": [entry]})
        write_json_atomic(job_dir(tmp_path, job.key) / "record.json",
                          {"key": job.key, "status": "ok", "seconds": 1.0})
    text = write_report(tmp_path).read_text()
    kappa10 = entry["periods"]["10"]["kappa"]
    assert f'data-v="{kappa10}"' in text
    assert 'title="paper: architectures figure (Muon)">85.4</div>' in text
    assert 'title="paper: Fisher table, T = 10">122</div>' in text  # cond(S_W)
    assert "No published value for: mine." in text
    compared = json.loads((tmp_path / "report" / "results.json").read_text())["analyses"]["arch"]
    assert [c["published"] for c in compared] == [True, False]
    by = {(v["measure"], v["period"]): v for v in compared[0]["values"]}
    assert by[("kappa", 10)] == {"measure": "kappa", "period": 10, "ours": kappa10,
                                 "value": 85.4, "row": "arch/transformer/muon",
                                 "origin": "architectures figure (Muon)", "within": None}
    assert compared[0]["setting"] == {"kind": "train", "arch": "transformer",
                                      "optimizer": "muon", "perturb": "none"}
