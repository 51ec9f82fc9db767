"""Site-table entries of the paper's families, each on a tiny random-weight model built
from its config offline: every site is found, the final norm applied to the last block's
state gives the ``final_norm`` site, and checkpoint rows equal the loaded model's rows."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from hf_fixtures import FAMILIES, make_model, quiet_and_isolated  # noqa: E402

from convergent.extract.sites import ARCHITECTURES  # noqa: E402
from convergent.sources.hf import open_hf  # noqa: E402

#: families whose tiny model takes long to build on two shared cores
SLOW = {"gpt_oss", "llama4"}


@pytest.fixture(scope="module", autouse=True)
def isolated(tmp_path_factory):
    yield from quiet_and_isolated(tmp_path_factory)


def _model_class_or_skip(family: str) -> None:
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    name = "llama4" if family == "llama4_text" else family
    if name not in CONFIG_MAPPING_NAMES:
        pytest.skip(f"transformers {transformers.__version__} has no {family} model class")


@pytest.mark.parametrize("family", [
    pytest.param(f, marks=pytest.mark.slow) if f in SLOW else f for f in FAMILIES])
def test_family_sites(family, tmp_path):
    _model_class_or_skip(family)
    folder = make_model(family, tmp_path / family)
    source = open_hf(str(folder), cache_dir=str(tmp_path / "cache"), templates=["x = {n}"])
    reps = source.number_representations(range(12), ["embed", "layer:all", "final_norm",
                                                     "unembed"])
    model, _ = source.load_model()
    table = source.site_table()
    assert table.family == family and ARCHITECTURES[family] == table
    assert [r.site for r in reps] == ["embed", "layer.0", "layer.1", "layer.2", "final_norm",
                                      "unembed"]
    by_site = {r.site: r for r in reps}
    embed = table.embed_of(model).weight.detach().numpy()
    last = [ids[-1] for ids in by_site["embed"].token_ids]
    np.testing.assert_allclose(by_site["embed"].values, embed[last])
    norm = table.final_norm_of(model)
    with torch.inference_mode():
        normed = norm(torch.from_numpy(np.asarray(by_site["layer.2"].values)).float()[None])
    np.testing.assert_allclose(by_site["final_norm"].values, normed[0].numpy(), atol=1e-5)
    assert not np.allclose(by_site["layer.0"].values, by_site["layer.2"].values)
    # the same rows straight from the checkpoint, without building the model
    fresh = open_hf(str(folder), cache_dir=str(tmp_path / "rows"))
    rows = fresh.number_representations(range(12), ["embed", "unembed"])
    assert fresh._loaded is None
    np.testing.assert_array_equal(rows[0].values, by_site["embed"].values)
    np.testing.assert_array_equal(rows[1].values, by_site["unembed"].values)
    assert rows[1].meta["tied_embeddings"] is False
