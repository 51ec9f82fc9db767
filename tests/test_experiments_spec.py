"""Experiment specs: parsing, grid expansion, content hashes, and one-line errors."""

from __future__ import annotations

import pytest
from test_experiments_fixtures import tiny_train, write_spec

from convergent.errors import ConvergentError
from convergent.experiments import load_spec, make_plan, parse_spec
from convergent.experiments.hashing import canonical_json, content_hash


def spec_data(**extra):
    data = {
        "experiment": {"name": "t"},
        "numbers": {"numbers": "0:60", "permutations": 10},
        "sources": {"glove": {"spec": "glove-6b-50d"}},
        "train": {"arch": {"set": tiny_train("c.jsonl"),
                           "grid": {"arch": ["transformer", "lstm"], "seed": [0, 1]}}},
        "analyses": {"a": {"sources": ["glove", "arch"]}},
    }
    data.update(extra)
    return data


def test_grid_expands_to_the_product_and_analyses_to_one_job_per_row():
    plan = make_plan(parse_spec(spec_data()))
    kinds = [j.kind for j in plan.jobs.values()]
    assert kinds.count("train") == 4 and kinds.count("numbers") == 5
    _title, rows = plan.analyses["a"]
    assert [r.label for r in rows] == ["glove", "transformer/seed=0", "transformer/seed=1",
                                       "lstm/seed=0", "lstm/seed=1"]
    lstm = plan.jobs[rows[3].job]
    assert lstm.deps == (plan.groups["arch"][1][2].job,)
    assert plan.jobs[lstm.deps[0]].config["train"]["arch"] == "lstm"
    assert plan.jobs[lstm.deps[0]].config["train"]["model"]["d_model"] == 32


def test_hash_ignores_names_and_order_but_not_values():
    a = make_plan(parse_spec(spec_data()))
    renamed = spec_data(experiment={"name": "other"})
    renamed["train"] = {"runs": renamed["train"]["arch"]}
    renamed["analyses"] = {"b": {"sources": ["runs", "glove"]}}
    b = make_plan(parse_spec(renamed))
    assert set(a.jobs) == set(b.jobs)
    changed = spec_data()
    changed["train"]["arch"]["set"]["lr"] = 1e-3
    c = make_plan(parse_spec(changed))
    assert not {k for k, j in c.jobs.items() if j.kind == "train"} & set(a.jobs)
    assert content_hash({"x": 1, "y": [1.0, 2]}) == content_hash({"y": (1.0, 2), "x": 1})
    assert content_hash({"x": 1}) != content_hash({"x": 1.5})
    assert canonical_json({"b": 1, "a": {"d": True, "c": None}}) == \
        '{"a":{"c":null,"d":true},"b":1}'


def test_shared_runs_are_one_job_and_none_means_unset():
    data = spec_data()
    data["train"]["pert"] = {"set": {**tiny_train("c.jsonl"), "arch": "transformer"},
                             "grid": {"perturb": ["none", "swap"], "seed": [0]}}
    plan = make_plan(parse_spec(data))
    members = plan.groups["pert"][1]
    assert members[0].job == plan.groups["arch"][1][0].job  # transformer, seed 0, no perturb
    assert plan.jobs[members[1].job].config["train"]["perturb"] == "swap"
    assert sum(j.kind == "train" for j in plan.jobs.values()) == 5


def test_member_reference_and_preset():
    data = spec_data(analyses={"a": {"sources": ["arch/lstm/1"], "checkpoints": "all"}})
    plan = make_plan(parse_spec(data))
    (row,) = plan.analyses["a"][1]
    assert row.label == "lstm/seed=1"
    assert plan.jobs[row.job].config["settings"]["checkpoints"] == "all"
    preset = spec_data(train={"q": {"preset": "quick", "grid": {"arch": ["lstm", "ppmi"]}}},
                       analyses={})
    jobs = list(make_plan(parse_spec(preset)).jobs.values())
    assert jobs[0].config["train"]["model"]["d_model"] == 192  # the quick LSTM's width
    assert jobs[1].config["train"]["tokenizer"] == "word"


def test_load_spec_from_toml(tmp_path):
    file = write_spec(tmp_path / "s.toml", {
        "experiment": {"name": "from-file"},
        "sources.m": {"spec": "matrix:x.npy"},
        "analyses.a": {"sources": ["m"], "numbers": "0:50", "moduli": [2, 6]},
    })
    spec = load_spec(file)
    assert spec.name == "from-file" and spec.path == file
    settings = spec.analyses["a"].settings
    assert settings["numbers"] == [0, 50] and settings["moduli"] == [2, 3, 4, 5]


@pytest.mark.parametrize("change, message", [
    ({"extra": {}}, "unknown key(s) extra"),
    ({"analyses": {"a": {"sources": ["nope"]}}}, "'nope' is neither"),
    ({"analyses": {"a": {"sources": ["arch/gru/0"]}}}, "has no member 'gru/0'"),
    ({"analyses": {"a": {"sources": ["glove"], "numbers": "5:1"}}}, "the range is empty"),
    ({"analyses": {"a": {"sources": ["glove"], "checkpoints": "some"}}}, "'last' or 'all'"),
    ({"train": {"x": {"grid": {"arch": []}}}}, "grid.arch must be a non-empty list"),
    ({"train": {"x": {"grid": {"arch": ["rnn"]}}}, "analyses": {}}, "arch 'rnn'"),
    ({"train": {"x": {"set": {"model.width": 3}}}, "analyses": {}}, "unknown field(s) width"),
    ({"train": {"x": {"set": {"colour": 3}}}, "analyses": {}}, "unknown field(s) colour"),
    ({"sources": {"glove": {"path": "x"}}}, "needs spec"),
    ({"experiment": {"name": "a/b"}}, "without '/'"),
    ({"sources": {"a/b": "glove-6b-50d"}}, "have no '/'"),
    ({"sources": {"glove": "no-such-model"}}, "'no-such-model': no such file, folder or"),
    ({"sources": {"glove": "matrix:/no/such.npy"}}, "/no/such.npy does not exist"),
    ({"sources": {"glove": "run:/no/run@3"}}, "/no/run does not exist"),
    ({"analyses": {"a": {"sources": ["glove"], "checkpoints": "all"}}},
     "checkpoints = 'all' needs a training run"),
])
def test_bad_specs_are_one_line_errors(change, message):
    with pytest.raises(ConvergentError) as caught:
        make_plan(parse_spec(spec_data(**change)))
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_unreadable_and_invalid_toml(tmp_path):
    with pytest.raises(ConvergentError, match="cannot read the spec"):
        load_spec(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[experiment\nname = 1")
    with pytest.raises(ConvergentError, match="not valid TOML"):
        load_spec(bad)


def test_spec_errors_stop_the_run_before_anything_is_written(tmp_path):
    from convergent.cli import main

    file = write_spec(tmp_path / "s.toml", {
        "experiment": {"name": "s"},
        "sources.g": {"spec": "glove-6b-50d"},
        "analyses.a": {"sources": ["g"], "checkpoints": "all"},
    })
    out = tmp_path / "out"
    assert main(["run", str(file), "--out", str(out), "--no-progress"]) == 2
    assert not out.exists()


def test_members_are_labelled_by_what_differs_between_them():
    data = spec_data(analyses={})
    data["train"] = {
        "one": {"set": tiny_train("c.jsonl"), "grid": {"arch": ["lstm"], "seed": [0, 1]}},
        "add": {"set": tiny_train("c.jsonl"),
                "grid": {"lr": [1e-3, 3e-3], "model.d_model": [16, 32], "perturb": ["none"]}},
        "solo": {"set": tiny_train("c.jsonl"), "grid": {"seed": [4]}},
    }
    plan = make_plan(parse_spec(data))
    labels = {name: [m.label for m in members] for name, (_, members) in plan.groups.items()}
    assert labels["one"] == ["seed=0", "seed=1"]
    assert labels["add"] == ["lr=0.001/d_model=16", "lr=0.001/d_model=32",
                             "lr=0.003/d_model=16", "lr=0.003/d_model=32"]
    assert labels["solo"] == ["seed=4"]
    assert [j.label for j in plan.jobs.values()][:2] == ["one/seed=0", "one/seed=1"]
    old_style = spec_data(analyses={"a": {"sources": ["one/lstm/1", "one/seed=0"]}})
    old_style["train"] = {"one": data["train"]["one"]}
    rows = make_plan(parse_spec(old_style)).analyses["a"][1]
    assert [r.label for r in rows] == ["seed=1", "seed=0"]  # values or label both name it
