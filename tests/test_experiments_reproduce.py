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
    assert rows["architectures"] == ["tokens", "cooc", "glove", "smollm2", "muon/transformer",
                                     "muon/gdn",
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


def test_paper_has_the_full_grid():
    plan = make_plan(preset_spec("paper"))
    rows = {name: [m.label for m in members] for name, (_, members) in plan.analyses.items()}
    assert rows["architectures"][:11] == [
        "tokens", "cooc", "glove", "smollm2", "muon/transformer", "muon/gdn", "muon/mamba2",
        "adamw/transformer", "adamw/gdn", "adamw/mamba2", "adamw/lstm"]
    assert rows["architectures"][11].startswith("lstm4/")  # the 4-layer LSTM's own group
    assert rows["architectures"][12:] == ["classical/word2vec", "classical/ppmi"]
    assert rows["perturbations"] == ["none", "context-2", "context-4", "context-8",
                                     "context-64", "isolate-1", "isolate-2", "isolate-8",
                                     "swap", "unigram"]
    lstms = sorted(j.config["train"]["model"]["n_layers"] for j in plan.jobs.values()
                   if j.kind == "train" and j.config["train"]["arch"] == "lstm")
    assert lstms == [4, 12]
    three = [j.config["train"] for j in plan.jobs.values()
             if j.kind == "addition" and j.config["task"]["digits"] == 3]
    assert {t["tokens"] for t in three} == {3_000_000_000}
    assert {t["tokens"] // t["checkpoint_every"] for t in three} == {30}
    data = preset_data("paper")["sources"]
    assert data["tokens"]["spec"] == "tokens:hf:HuggingFaceFW/fineweb-edu:sample-10BT"
    assert data["cooc"]["options"] == {"tokenizer": "bpe", "vocab_size": 65536}


def test_quick_keeps_the_job_keys_of_its_runs():
    """Content hashes of unchanged training configs: old results folders stay valid."""
    plan = make_plan(preset_spec("quick"))
    keys = {f"{g}/{m.label}": m.job for g in ("muon", "adamw") for m in plan.groups[g][1]}
    assert keys == {"muon/transformer": "d9b8077b647da44e", "muon/gdn": "027b70430ade95e5",
                    "muon/mamba2": "56eb8955aec6cdee", "adamw/transformer": "9c95fcd065cfce71",
                    "adamw/lstm": "314700843885c5ca"}


def test_unknown_preset():
    with pytest.raises(ConvergentError, match="choose one of quick, paper"):
        run_preset("huge", "out")


@pytest.mark.parametrize("file", sorted(SPECS.glob("*.toml")), ids=lambda p: p.name)
def test_every_shipped_spec_plans(file):
    assert make_plan(load_spec(file)).jobs
