import numpy as np
import pytest
from numbers_fixtures import planted

from convergent import analyze_numbers
from convergent.errors import ConvergentError
from convergent.representation import Representation
from convergent.sources import open_source, parse_range, require_numbers


def test_nan_and_infinite_values_are_errors():
    values = planted(n=100, dim=4)
    values[17, 2] = np.nan
    with pytest.raises(ConvergentError, match=r"NaN or infinite.*row 17"):
        analyze_numbers(values, range(100))
    values[17, 2] = np.inf
    with pytest.raises(ConvergentError, match="NaN or infinite"):
        analyze_numbers(values, range(100))


def test_numbers_must_be_consecutive():
    values = planted(n=100, dim=4)
    with pytest.raises(ConvergentError, match="consecutive"):
        analyze_numbers(values, [*range(99), 200])
    with pytest.raises(ConvergentError, match="100 rows"):
        analyze_numbers(values, range(99))


def test_too_few_rows_for_the_folds():
    with pytest.raises(ConvergentError, match=r"too few rows.*modulus 10"):
        analyze_numbers(planted(n=40, dim=4), range(40), moduli=[10], folds=5)


def test_identical_rows_are_an_error_and_duplicates_a_warning():
    with pytest.raises(ConvergentError, match="identical"):
        analyze_numbers(np.ones((50, 3)), range(50), moduli=[2])
    values = planted(n=100, dim=4)
    values[5] = values[6] = 0.0
    with pytest.warns(UserWarning, match="duplicate"):
        result = analyze_numbers(values, range(100), moduli=[2], permutations=0)
    assert any("duplicate" in w for w in result.warnings)
    assert any("constant" in w for w in result.warnings)


def test_wrong_shapes():
    with pytest.raises(ConvergentError, match="2-D"):
        analyze_numbers(np.zeros(10), range(10))


def test_missing_numbers_are_named_or_repaired():
    values = planted(n=30, dim=3)
    labels = tuple(n for n in range(32) if n not in (3, 20))
    rep = Representation(values, labels, "toy")
    with pytest.raises(ConvergentError, match=r"2 requested number\(s\) missing.*3, 20"):
        require_numbers(rep, range(32))
    chosen = require_numbers(rep, range(32), contiguous=True)
    assert chosen.labels == tuple(range(4, 20))
    np.testing.assert_array_equal(chosen.values, values[3:19])


def test_ranges():
    assert parse_range("0:1000") == range(1000)
    for bad in ("10", "a:b", "5:5", "1:2:3"):
        with pytest.raises(ConvergentError, match="--numbers"):
            parse_range(bad)


def test_matrix_sources(tmp_path):
    values = planted(n=50, dim=6)
    np.save(tmp_path / "m.npy", values)
    np.savetxt(tmp_path / "m.csv", values, delimiter=",")
    from safetensors.numpy import save_file

    save_file({"emb": values.astype(np.float32)}, str(tmp_path / "m.safetensors"))
    save_file({"a": values, "b": values}, str(tmp_path / "two.safetensors"))
    for spec in ("matrix:" + str(tmp_path / "m.npy"), "matrix:" + str(tmp_path / "m.csv"),
                 "matrix:" + str(tmp_path / "m.safetensors"),
                 "matrix:" + str(tmp_path / "two.safetensors") + "#b"):
        rep = open_source(spec, labels="100:150").number_representations(range(100, 150),
                                                                         ["embed"])[0]
        assert rep.labels == tuple(range(100, 150))
        np.testing.assert_allclose(rep.values, values, rtol=1e-6)
    with pytest.raises(ConvergentError, match="holds 2 tensors"):
        open_source("matrix:" + str(tmp_path / "two.safetensors"))
    with pytest.raises(ConvergentError, match="49 labels for a matrix of 50 rows"):
        open_source("matrix:" + str(tmp_path / "m.npy"), labels="0:49")
    (tmp_path / "labels.txt").write_text("\n".join(str(n) for n in range(50)))
    src = open_source("matrix:" + str(tmp_path / "m.npy"), labels=str(tmp_path / "labels.txt"))
    assert src.number_representations(range(50), ["embed"])[0].labels[-1] == 49


def test_bad_matrix_files(tmp_path):
    np.save(tmp_path / "flat.npy", np.zeros(10))
    with pytest.raises(ConvergentError, match="2-D"):
        open_source("matrix:" + str(tmp_path / "flat.npy"))
    (tmp_path / "broken.npy").write_bytes(b"not a numpy file")
    with pytest.raises(ConvergentError, match="cannot read"):
        open_source("matrix:" + str(tmp_path / "broken.npy"))
    with pytest.raises(ConvergentError, match="no such matrix file"):
        open_source("matrix:" + str(tmp_path / "absent.npy"))
    (tmp_path / "words.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ConvergentError, match="cannot read"):
        open_source("matrix:" + str(tmp_path / "words.csv"))
    with pytest.raises(ConvergentError, match="static vectors have only the site 'embed'"):
        np.save(tmp_path / "ok.npy", np.ones((3, 2)))
        open_source("matrix:" + str(tmp_path / "ok.npy")).number_representations(
            range(3), ["layer:3"])


def test_unknown_sources_and_options(tmp_path):
    with pytest.raises(ConvergentError, match="no such file, folder or bundled source"):
        open_source("not-a-source")
    with pytest.raises(ConvergentError, match="templates"):
        open_source("glove-6b-50d", templates=["x {n}"])


@pytest.mark.parametrize("fmt", ["glove", "word2vec-text", "word2vec-binary", "fasttext-vec",
                                 "gensim"])
def test_word_vector_files(tmp_path, fmt):
    from gensim.models import KeyedVectors

    rng = np.random.default_rng(0)
    words = [str(n) for n in range(20)] + ["the", "cat"]
    kv = KeyedVectors(vector_size=5)
    kv.add_vectors(words, rng.standard_normal((len(words), 5)).astype(np.float32))
    if fmt == "gensim":
        path = tmp_path / "v.kv"
        kv.save(str(path))
    elif fmt == "word2vec-binary":
        path = tmp_path / "v.bin"
        kv.save_word2vec_format(str(path), binary=True)
    else:
        path = tmp_path / ("v.vec" if fmt == "fasttext-vec" else "v.txt")
        kv.save_word2vec_format(str(path), binary=False, write_header=fmt != "glove")
    rep = open_source(str(path)).number_representations(range(25), ["embed"])[0]
    assert rep.labels == tuple(range(20))
    np.testing.assert_allclose(rep.values, kv.vectors[:20], rtol=1e-5)
    with pytest.raises(ConvergentError, match=r"missing.*20, 21, 22, 23, 24"):
        require_numbers(rep, range(25))


def test_corrupt_word_vector_file(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text("3 4\nfoo 1 2\n")
    with pytest.raises(ConvergentError, match="not a readable word-vector file"):
        open_source(str(path))
