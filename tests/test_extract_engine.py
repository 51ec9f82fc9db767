"""The extraction engine on tiny random-weight models of every architecture in the table."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from hf_fixtures import ARCHS, make_model, quiet_and_isolated  # noqa: E402

from convergent.errors import ConvergentError  # noqa: E402
from convergent.extract.engine import Engine, EngineConfig  # noqa: E402
from convergent.extract.sites import parse_sites, site_table  # noqa: E402
from convergent.extract.templates import encode, render  # noqa: E402
from convergent.sources.hf import open_hf  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def isolated(tmp_path_factory):
    yield from quiet_and_isolated(tmp_path_factory)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    return {arch: open_hf(str(make_model(arch, root / arch))) for arch in ARCHS}


def _engine(source, sites, templates=("{n}",), pooling="last", batch_size=8):
    model, tokenizer = source.load_model()
    config = EngineConfig(tuple(sites), tuple(templates), "numbers", pooling, batch_size)
    return Engine(model, tokenizer, site_table(model), config)


@pytest.mark.parametrize("arch", ARCHS)
def test_layers_equal_the_models_own_hidden_states(models, arch):
    source = models[arch]
    model, tokenizer = source.load_model()
    n_layers = source.n_layers
    sites = [f"layer.{i}" for i in range(n_layers)]
    has_norm = site_table(model).final_norm is not None
    if has_norm:
        sites.append("final_norm")
    engine = _engine(source, sites, templates=("The number {n}",))
    numbers = [3, 42, 7]
    got = engine.run([str(n) for n in numbers], [()] * 3)
    for row, n in enumerate(numbers):
        text, span = render("The number {n}", str(n), "numbers")
        enc = encode(tokenizer, text, span)
        ids = torch.tensor([enc.ids])
        with torch.inference_mode():
            hidden = model.base_model(input_ids=ids, output_hidden_states=True).hidden_states
        last = enc.positions[-1]
        # transformers' Mamba and Mamba-2 leave the embeddings out of hidden_states, so
        # there hidden_states[i] is after block i (elsewhere hidden_states[i + 1])
        offset = 0 if arch.startswith("mamba") else 1
        assert len(hidden) == n_layers + 1
        for i in range(n_layers - 1):  # hidden_states[-1] is post-final-norm in most models
            want = hidden[i + offset][0, last].numpy()
            np.testing.assert_allclose(got[f"layer.{i}"][row].numpy(), want, atol=1e-5)
        if has_norm:
            np.testing.assert_allclose(got["final_norm"][row].numpy(), hidden[-1][0, last],
                                       atol=1e-5)


@pytest.mark.parametrize("arch", ARCHS)
def test_batched_equals_unbatched(models, arch):
    source = models[arch]
    sites = parse_sites(["layer:all"], source.n_layers)
    templates = ("{n}", "The number {n}", "I counted {n} apples.")
    items = [str(n) for n in (5, 123, 40, 7, 9081, 66, 1)]  # 1 to 4 digit tokens
    one = _engine(source, sites, templates, batch_size=1).run(items, [()] * len(items))
    many = _engine(source, sites, templates, batch_size=5).run(items, [()] * len(items))
    for site in sites:
        np.testing.assert_allclose(one[site].numpy(), many[site].numpy(), atol=2e-5)


def test_mean_pooling_averages_the_number_tokens(models):
    source = models["llama"]
    model, tokenizer = source.load_model()
    engine = _engine(source, ["layer.1"], templates=("x = {n}",), pooling="mean")
    got = engine.run(["123"], [()])["layer.1"][0].numpy()
    text, span = render("x = {n}", "123", "numbers")
    enc = encode(tokenizer, text, span)
    assert len(enc.positions) == 3
    with torch.inference_mode():
        hidden = model.base_model(input_ids=torch.tensor([enc.ids]),
                                  output_hidden_states=True).hidden_states[2]
    np.testing.assert_allclose(got, hidden[0, list(enc.positions)].mean(0), atol=1e-5)


def test_templates_are_averaged(models):
    source = models["gpt2"]
    a = _engine(source, ["layer.0"], ("{n}",)).run(["12"], [()])["layer.0"]
    b = _engine(source, ["layer.0"], ("The number {n}",)).run(["12"], [()])["layer.0"]
    both = _engine(source, ["layer.0"], ("{n}", "The number {n}")).run(["12"], [()])["layer.0"]
    np.testing.assert_allclose(both.numpy(), ((a + b) / 2).numpy(), atol=1e-6)
    assert not np.allclose(a.numpy(), b.numpy())


def test_forward_stops_after_the_last_needed_layer(models):
    source = models["llama"]
    model, _ = source.load_model()
    calls = []
    handle = model.base_model.layers[2].register_forward_hook(lambda *a: calls.append(1))
    try:
        _engine(source, ["layer.0"]).run(["1", "2"], [(), ()])
        assert calls == []
        _engine(source, ["layer.2"]).run(["1", "2"], [(), ()])
        assert calls == [1]
    finally:
        handle.remove()


def test_static_sites_are_the_weight_rows(models):
    source = models["gpt2"]
    model, tokenizer = source.load_model()
    ids = [tuple(tokenizer("42", add_special_tokens=False)["input_ids"])]
    assert len(ids[0]) == 2
    weight = model.get_input_embeddings().weight.detach()
    wanted = {"last": weight[ids[0][-1]], "mean": weight[list(ids[0])].mean(0)}
    for pooling, want in wanted.items():
        got = _engine(source, ["embed", "unembed"], pooling=pooling).run(["42", "4"],
                                                                          [*ids, ids[0][:1]])
        np.testing.assert_allclose(got["embed"][0].numpy(), want, rtol=1e-6)
        np.testing.assert_allclose(got["unembed"][0].numpy(), want, rtol=1e-6)  # tied
        np.testing.assert_allclose(got["embed"][1].numpy(), weight[ids[0][0]])
    assert models["gpt2"].tied_embeddings() and not models["llama"].tied_embeddings()


def test_storage_dtype(models):
    out = _engine(models["llama"], ["layer.0"]).run(["1"], [()])
    assert out["layer.0"].dtype == torch.float32
    model, tokenizer = models["llama"].load_model()
    config = EngineConfig(("layer.0",), ("{n}",), "numbers", "last", 4, "bfloat16")
    out = Engine(model, tokenizer, site_table(model), config).run(["1"], [()])
    assert out["layer.0"].dtype == torch.bfloat16


def test_site_parsing():
    assert parse_sites(["layer:1", "layer.1", "embed"], 3) == ["layer.1", "embed"]
    assert parse_sites(["layer:all"], 2) == ["layer.0", "layer.1"]
    assert parse_sites(["embed,unembed"], 2) == ["embed", "unembed"]
    for bad in (["layer:3"], ["block.1"], [], ["final_norm"]):
        with pytest.raises(ConvergentError):
            parse_sites(bad, 3, ("embed", "layer"))


def test_bert_has_no_unembed_or_final_norm(models):
    source = models["bert"]
    assert source.site_table().available() == ("embed", "layer")
    with pytest.raises(ConvergentError, match="no unembed"):
        source.sites(["unembed"])
    with pytest.raises(ConvergentError, match="no output embedding"):
        source.unembedding()
