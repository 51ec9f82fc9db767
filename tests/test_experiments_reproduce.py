"""The quick and paper presets: the shipped spec files equal them, and they plan the figures."""

from __future__ import annotations

from pathlib import Path

import pytest

from convergent.errors import ConvergentError
from convergent.experiments import load_spec, make_plan
from convergent.experiments.reproduce import preset_data, preset_spec, run_preset

SPECS = Path(__file__).resolve().parents[1] / "specs"


@pytest.mark.parametrize("name", ["quick", "paper"])
def test_spec_files_equal_the_presets(name):
    assert load_spec(SPECS / f"{name}.toml").raw == preset_data(name)


def test_quick_plans_the_three_figures():
    plan = make_plan(preset_spec("quick"))
    rows = {name: [m.label for m in members] for name, (_, members) in plan.analyses.items()}
    assert rows["architectures"] == ["glove", "smollm2", "muon/transformer", "muon/gdn",
                                     "muon/mamba2", "adamw/transformer", "adamw/lstm",
                                     "classical/word2vec", "classical/ppmi"]
    assert rows["perturbations"] == ["none", "context-2", "isolate-1", "swap", "unigram"]
    muon_transformer = plan.groups["muon"][1][0].job
    assert plan.groups["perturbations"][1][0].job == muon_transformer  # trained once
    trains = [j for j in plan.jobs.values() if j.kind == "train"]
    assert len(trains) == 11
    assert {j.config["train"]["tokens"] for j in trains} == {400_000}
    assert {j.config["train"]["corpus"] for j in trains} == {"bundled"}
    additions = [j for j in plan.jobs.values() if j.kind == "addition"]
    assert sorted((j.config["task"]["digits"], j.config["train"]["optimizer"])
                  for j in additions) == [(3, "adamw"), (3, "muon"), (9, "adamw"), (9, "muon")]
    assert all(j.config["settings"]["numbers"] == [0, 100]
               for j in plan.jobs.values() if j.kind == "numbers")


def test_paper_has_the_paper_sizes():
    plan = make_plan(preset_spec("paper"))
    transformer = plan.jobs[plan.groups["muon"][1][0].job].config["train"]
    assert transformer["model"]["d_model"] == 1024 and transformer["model"]["n_layers"] == 12
    assert transformer["seq_len"] == 1024 and transformer["corpus"].startswith("hf:")
    numbers = next(j for j in plan.jobs.values() if j.kind == "numbers")
    assert numbers.config["settings"]["numbers"] == [0, 1000]


def test_unknown_preset():
    with pytest.raises(ConvergentError, match="choose one of quick, paper"):
        run_preset("huge", "out")


@pytest.mark.parametrize("file", sorted(SPECS.glob("*.toml")), ids=lambda p: p.name)
def test_every_shipped_spec_plans(file):
    assert make_plan(load_spec(file)).jobs
