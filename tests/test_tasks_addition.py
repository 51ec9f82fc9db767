"""Addition generator, tokenization round trip and the train/test split."""

from __future__ import annotations

import numpy as np
import pytest

from convergent.errors import ConvergentError
from convergent.tasks.addition import AdditionTask
from convergent.tasks.dataset import AdditionBatches, AdditionSplit, SplitConfig


def digitwise_sum(a: int, b: int, digits: int) -> list[int]:
    """Schoolbook addition digit by digit (an independent reference)."""
    da = [int(c) for c in f"{a:0{digits}d}"][::-1]
    db = [int(c) for c in f"{b:0{digits}d}"][::-1]
    out, carry = [], 0
    for x, y in zip(da, db, strict=True):
        out.append((x + y + carry) % 10)
        carry = (x + y + carry) // 10
    return [carry, *out[::-1]]


@pytest.mark.parametrize(("digits", "chunk"), [(9, 3), (3, 3), (2, 1), (6, 2), (4, 1)])
def test_answer_matches_schoolbook_addition(digits: int, chunk: int) -> None:
    task = AdditionTask(digits, chunk, answer="carry-mod")
    rng = np.random.default_rng(0)
    a = rng.integers(0, 10**digits, 500)
    b = rng.integers(0, 10**digits, 500)
    answer = task.answer_chunks(a, b)
    assert answer.shape == (500, digits // chunk + 1)
    np.testing.assert_array_equal(task.answer_value(answer), a + b)
    for x, y, row in zip(a[:50], b[:50], answer[:50], strict=True):
        ref = digitwise_sum(int(x), int(y), digits)
        text = str(row[0]) + "".join(f"{int(c):0{chunk}d}" for c in row[1:])
        assert [int(c) for c in text] == ref


def test_edge_cases_999_plus_1() -> None:
    task = AdditionTask(9, 3)
    cases = {
        (999_999_999, 1): [1, 0, 0, 0],
        (999, 1): [0, 0, 1, 0],
        (999_999, 1): [0, 1, 0, 0],
        (0, 0): [0, 0, 0, 0],
        (999_999_999, 999_999_999): [1, 999, 999, 998],
        (500_500_500, 499_499_499): [0, 999, 999, 999],
        (500_500_500, 499_499_500): [1, 0, 0, 0],
    }
    for (a, b), want in cases.items():
        got = task.answer_chunks(np.array([a]), np.array([b]))[0].tolist()
        assert got == want, (a, b, got)
        assert task.answer_value(np.array([got]))[0] == a + b
    single = AdditionTask(3, 3, answer="carry-mod")
    assert single.answer_chunks(np.array([999]), np.array([1]))[0].tolist() == [1, 0]
    assert single.answer_chunks(np.array([998]), np.array([1]))[0].tolist() == [0, 999]


def test_carry_into_every_chunk() -> None:
    """A carry out of chunk i reaches chunk i - 1 for every i (and only then)."""
    task = AdditionTask(9, 3)
    for i in range(3):  # chunk i (0 = most significant) overflows, nothing else does
        a = np.array([999 * 1000 ** (2 - i)])
        b = np.array([1 * 1000 ** (2 - i)])
        row = task.answer_chunks(a, b)[0]
        expected = [0, 0, 0, 0]
        expected[i] = 1  # the carry lands one chunk to the left (index i of 4 answer chunks)
        assert row.tolist() == expected, (i, row)
    # a carry chain through every chunk: 1 + 999,999,999
    assert task.answer_chunks(np.array([1]), np.array([999_999_999]))[0].tolist() == [1, 0, 0, 0]


def test_variants_no_final_carry_and_reverse() -> None:
    a, b = np.array([999_999_999, 123_456_789]), np.array([1, 987_654_321])
    mod = AdditionTask(9, 3, final_carry=False)
    np.testing.assert_array_equal(mod.answer_value(mod.answer_chunks(a, b)), (a + b) % 10**9)
    rev = AdditionTask(9, 3, reverse=True)
    assert rev.answer_chunks(a, b)[1].tolist() == [110, 111, 111, 1]
    np.testing.assert_array_equal(rev.answer_value(rev.answer_chunks(a, b)), a + b)


@pytest.mark.parametrize("task", [AdditionTask(9, 3), AdditionTask(3, 3), AdditionTask(2, 1),
                                  AdditionTask(3, 3, answer="carry-mod"), AdditionTask(2, 2),
                                  AdditionTask(9, 3, final_carry=False, reverse=True)])
def test_tokenization_round_trip(task: AdditionTask) -> None:
    rng = np.random.default_rng(1)
    a = rng.integers(0, 10**task.digits, 200)
    b = rng.integers(0, 10**task.digits, 200)
    ids = task.encode(a, b)
    assert ids.shape == (200, task.seq_len)
    assert ids.max() < task.vocab_size
    da, db, total = task.decode(ids)
    np.testing.assert_array_equal(da, a)
    np.testing.assert_array_equal(db, b)
    np.testing.assert_array_equal(total, a + b if task.final_carry else (a + b) % 10**task.digits)
    for row in ids[:20]:
        np.testing.assert_array_equal(task.from_text(task.to_text(row)), row)
    tok = task.tokenizer()
    assert tok.get_vocab_size() == task.vocab_size
    for row in ids[:20]:
        text = " ".join(tok.id_to_token(int(t)) for t in row)
        assert tok.encode(text).ids == row.tolist()


def test_text_form_is_readable() -> None:
    task = AdditionTask(9, 3)
    ids = task.encode(np.array([123_456_789]), np.array([987_654_321]))[0]
    assert task.to_text(ids) == "123,456,789+987,654,321=001,111,111,110"
    assert task.from_text("000,000,999+000,000,001=000,000,001,000").tolist() == \
        [task.bos_id, 0, 0, 999, task.plus_id, 0, 0, 1, task.equals_id, 0, 0, 1, 0]


def test_run_tokenizer_maps_numbers_to_their_rows() -> None:
    from convergent.train.tokenize import number_token_ids

    tok = AdditionTask(3, 3).tokenizer()
    assert number_token_ids(tok, range(1000)) == {n: n for n in range(1000)}


def test_bad_inputs() -> None:
    with pytest.raises(ConvergentError, match="multiple of the chunk"):
        AdditionTask(8, 3)
    with pytest.raises(ConvergentError, match="chunk"):
        AdditionTask(8, 4)
    task = AdditionTask(3, 3)
    with pytest.raises(ConvergentError, match="operands"):
        task.encode(np.array([1000]), np.array([1]))
    with pytest.raises(ConvergentError, match="operands"):
        task.encode(np.array([-1]), np.array([1]))
    with pytest.raises(ConvergentError, match="not a addition-d3c3 problem"):
        task.from_text("1+2=3")
    ids = task.encode(np.array([5]), np.array([7]))
    ids[0, 2] = 5
    with pytest.raises(ConvergentError, match="token 2"):
        task.decode(ids)
    with pytest.raises(ConvergentError, match="operand pairs exist"):
        AdditionSplit(AdditionTask(1, 1), SplitConfig(test_pairs=100))


@pytest.mark.parametrize("task", [AdditionTask(3, 3), AdditionTask(2, 1), AdditionTask(9, 3)])
def test_split_has_no_overlap(task: AdditionTask) -> None:
    split = AdditionSplit(task, SplitConfig(test_pairs=300, train_pairs=0, seed=3))
    ta, tb = split.test
    assert len(set(zip(ta.tolist(), tb.tolist(), strict=True))) == 300
    seen = set()
    for index in range(20):
        a, b = split.train_pairs(index, 256, seed=3)
        assert not split.is_test(a, b).any()
        seen.update(zip(a.tolist(), b.tolist(), strict=True))
    assert not seen & set(zip(ta.tolist(), tb.tolist(), strict=True))


def test_fresh_pairs_redraw_test_collisions() -> None:
    """Force collisions: a test set covering most of a small space drawn the 'fresh' way."""
    task = AdditionTask(1, 1)
    split = AdditionSplit(task, SplitConfig(test_pairs=90, seed=0))
    split.train = None  # use the fresh-draw path on a space where collisions are frequent
    a, b = split.train_pairs(0, 500, seed=0)
    assert not split.is_test(a, b).any()


def test_fixed_train_set_and_batches_are_deterministic() -> None:
    task = AdditionTask(3, 3)
    split = AdditionSplit(task, SplitConfig(test_pairs=100, train_pairs=1000, seed=0))
    assert split.n_train == 1000
    batches = AdditionBatches(split, 64, seed=5)
    first = batches.batch(7)
    again = AdditionBatches(AdditionSplit(task, SplitConfig(100, 1000, 0)), 64, 5).batch(7)
    assert (first.tokens == again.tokens).all()
    assert first.tokens.shape == (64, task.seq_len)
    assert first.mask.shape == (64, task.seq_len - 1)
    assert first.n_targets == 64 * task.answer_len
    # one epoch (1000 pairs / 50 per batch) visits every training pair exactly once
    epoch = AdditionBatches(split, 50, seed=5)
    rows = np.concatenate([epoch.batch(i).tokens.numpy() for i in range(20)])
    a, b, _ = task.decode(rows)
    pairs = set(zip(a.tolist(), b.tolist(), strict=True))
    assert pairs == set(zip(*(x.tolist() for x in split.train), strict=True))


def test_carry_rich_operands_have_long_chains() -> None:
    task = AdditionTask(9, 3)
    split = AdditionSplit(task, SplitConfig(test_pairs=10, carry_rich=True, seed=0))
    a, b = split.train_pairs(0, 2000, seed=0)
    ca, cb = task.split(a), task.split(b)
    assert ((ca + cb) == 999).all(axis=1).mean() > 0.08  # ~1/8 force all three chunks


def test_reproduction_settings_and_run_specs() -> None:
    from convergent.tasks.experiment import ReproConfig, settings_for

    paper = settings_for(3)
    assert [s.slug for s in paper] == ["d9c3-muon", "d9c3-adamw", "d3c3-muon", "d3c3-adamw"]
    assert [s.label for s in paper][:2] == ["9-digit Muon", "9-digit AdamW"]
    small = settings_for(2)
    assert [s.slug for s in small] == ["d6c2-muon", "d6c2-adamw", "d2c2-muon", "d2c2-adamw"]
    assert small[0].paper_label == "9-digit Muon" and small[3].paper_label == "3-digit AdamW"
    config = ReproConfig(steps=10, batch_size=8, checkpoints=5)
    spec = config.run_spec(paper[2], seed=4)
    assert spec.task == AdditionTask(3, 3) and spec.split.train_pairs == 100_000
    assert spec.config.seed == 4 and spec.split.seed == 4 and spec.config.optimizer == "muon"
    assert spec.config.tokens == 10 * 8 * (spec.task.seq_len - 1)
    assert spec.config.checkpoint_every == 2 * 8 * (spec.task.seq_len - 1)
    # 2-digit single-token addition has only 10**4 pairs: the training set is all the rest
    assert config.run_spec(small[2], seed=0).split.train_pairs == 0
    assert config.run_spec(paper[0], seed=0).split.train_pairs == 0  # fresh 9-digit pairs
    with pytest.raises(ConvergentError, match="chunk 4"):
        settings_for(4)
    with pytest.raises(ConvergentError, match="chunk 1"):
        settings_for(1)
