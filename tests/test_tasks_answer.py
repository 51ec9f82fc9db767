"""The answer formats of single-token addition: the whole sum as one token (the paper's
control, the default) and the carry-mod variant; decoding, accuracy and selection."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from convergent.errors import ConvergentError
from convergent.tasks.addition import ANSWER_FORMATS, AdditionTask, check_answer_format


def test_whole_sum_is_one_token_above_the_operands() -> None:
    task = AdditionTask(3, 3)
    assert task.answer == "whole" and task.answer_len == 1 and task.seq_len == 6
    assert task.number_tokens == 1999  # sums 0..1998
    assert (task.plus_id, task.equals_id, task.bos_id, task.vocab_size) == (1999, 2000, 2001,
                                                                             2002)
    a, b = np.array([999, 998, 0, 123, 500]), np.array([999, 1, 0, 456, 500])
    ids = task.encode(a, b)
    assert ids[:, -1].tolist() == [1998, 999, 0, 579, 1000]
    assert ids[0].tolist() == [2001, 999, 1999, 999, 2000, 1998]
    # no output position is a sum mod 1000: sums >= 1000 get tokens of their own
    assert (ids[:, task.answer_start:] >= 1000).any()
    assert task.to_text(ids[0]) == "999+999=1998" and task.to_text(ids[2]) == "000+000=000"
    np.testing.assert_array_equal(task.from_text("123+456=579"), ids[3])
    tok = task.tokenizer()
    assert tok.get_vocab_size() == 2002 and tok.token_to_id("1998") == 1998
    assert tok.encode("<|endoftext|> 999 + 999 = 1998").ids == ids[0].tolist()
    two = AdditionTask(2, 2)  # the chunk-2 analogue: sum tokens 0..198
    assert two.number_tokens == 199 and two.encode([99], [99])[0, -1] == 198


def test_operand_rows_stay_the_numbers_0_to_999() -> None:
    from convergent.tasks.evaluate import number_embeddings
    from convergent.train.config import ModelConfig
    from convergent.train.models import build_model
    from convergent.train.tokenize import number_token_ids

    task = AdditionTask(3, 3)
    assert number_token_ids(task.tokenizer(), range(1000)) == {n: n for n in range(1000)}
    torch.manual_seed(0)
    model = build_model("transformer", ModelConfig(d_model=16, n_layers=1, n_heads=2,
                                                   tie_embeddings=True), task.vocab_size)
    rows = number_embeddings(model, task)
    assert rows.shape == (1000, 16)
    np.testing.assert_array_equal(rows, model.embed.weight[:1000].detach().numpy())


def test_decode_and_bad_answer_tokens() -> None:
    task = AdditionTask(3, 3)
    a, b = np.arange(0, 1000, 7), np.arange(999, -1, -7)
    da, db, total = task.decode(task.encode(a, b))
    np.testing.assert_array_equal(db, b)
    np.testing.assert_array_equal(da, a)
    np.testing.assert_array_equal(total, a + b)
    ids = task.encode(np.array([5]), np.array([7]))
    ids[0, -1] = 1999  # the "+" id, not a sum
    with pytest.raises(ConvergentError, match=r"answer token is outside 0\.\.1998"):
        task.decode(ids)
    ids[0, -1], ids[0, 1] = 12, 1500  # a sum token cannot be an operand
    with pytest.raises(ConvergentError, match=r"operand chunk is outside 0\.\.999"):
        task.decode(ids)
    with pytest.raises(ConvergentError, match="not a addition-d3c3 problem"):
        task.from_text("123+456=2000")


class Oracle(nn.Module):
    """Logits that put ``a + b + offset`` (mod ``modulus`` if given) at the position that
    predicts a whole answer."""

    def __init__(self, task: AdditionTask, offset: int = 0, modulus: int | None = None) -> None:
        super().__init__()
        self.task, self.offset, self.modulus = task, offset, modulus

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(*ids.shape, self.task.vocab_size)
        total = ids[:, 1] + ids[:, 3] + self.offset
        if self.modulus:
            total = total % self.modulus
        total = total.clamp(0, self.task.number_tokens - 1)
        logits[torch.arange(ids.shape[0]), self.task.answer_start - 1, total] = 1.0
        return logits


def test_accuracy_of_the_whole_sum() -> None:
    from convergent.tasks.evaluate import accuracy, greedy_answers

    task = AdditionTask(3, 3)
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 1000, 300), rng.integers(0, 1000, 300)
    right = accuracy(Oracle(task), task, a, b)
    assert (right.exact_match, right.token_accuracy, right.n_problems) == (100.0, 100.0, 300)
    # a model that answers (a + b) mod 1000, the old format's second token, is wrong on
    # exactly the problems with a + b >= 1000
    modular = accuracy(Oracle(task, modulus=1000), task, a, b)
    no_carry = 100.0 * float(np.mean(a + b < 1000))
    assert 0 < no_carry < 100 and modular.exact_match == pytest.approx(no_carry)
    off = accuracy(Oracle(task, offset=1), task, a, b)
    assert off.exact_match == 0.0
    tokens = torch.from_numpy(task.encode(a, b))
    assert torch.equal(greedy_answers(Oracle(task), task, tokens)[:, 0], torch.from_numpy(a + b))


def test_format_selection_and_the_carry_mod_variant() -> None:
    assert AdditionTask(3, 3).answer == "whole" and AdditionTask(2, 2).answer == "whole"
    assert AdditionTask(9, 3).answer == "carry-mod"  # multi-token: unchanged
    assert AdditionTask(9, 3).vocab_size == 1003 and AdditionTask(9, 3).spec == "addition-d9c3"
    carry = AdditionTask(3, 3, answer="carry-mod")
    assert carry.vocab_size == 1003 and carry.answer_len == 2
    assert carry.spec == "addition-d3c3-carrymod" and AdditionTask(3, 3).spec == "addition-d3c3"
    assert carry.answer_chunks(np.array([999, 998]), np.array([999, 1])).tolist() == \
        [[1, 998], [0, 999]]
    assert carry.to_text(carry.encode([999], [999])[0]) == "999+999=001,998"
    # no final carry only exists as carry-mod; a one-token answer has no order
    assert AdditionTask(3, 3, final_carry=False).answer == "carry-mod"
    assert AdditionTask(3, 3, reverse=True).reverse is False
    assert AdditionTask(3, 3, answer="carry-mod", reverse=True).reverse is True
    assert AdditionTask(**AdditionTask(3, 3).to_dict()) == AdditionTask(3, 3)


def test_unknown_or_impossible_formats_are_errors() -> None:
    with pytest.raises(ConvergentError, match="'mod': choose one of whole, carry-mod"):
        AdditionTask(3, 3, answer="mod")
    with pytest.raises(ConvergentError, match="choose one of whole, carry-mod"):
        check_answer_format("digits")
    assert [check_answer_format(f) for f in ANSWER_FORMATS] == list(ANSWER_FORMATS)
    with pytest.raises(ConvergentError, match="single-token task"):
        AdditionTask(9, 3, answer="whole")
    with pytest.raises(ConvergentError, match="final_carry=False"):
        AdditionTask(3, 3, final_carry=False, answer="whole")


def test_reproduction_selects_the_format() -> None:
    from convergent.tasks.experiment import ReproConfig, settings_for

    config = ReproConfig(steps=10, batch_size=8)
    whole = settings_for(3)
    assert config.run_spec(whole[2], 0).task == AdditionTask(3, 3, answer="whole")
    assert config.run_spec(whole[0], 0).task.answer == "carry-mod"
    variant = settings_for(3, "carry-mod")
    assert [s.slug for s in variant][2:] == ["d3c3-carrymod-muon", "d3c3-carrymod-adamw"]
    assert variant[2].label == "3-digit Muon (carry-mod)" and variant[0].label == "9-digit Muon"
    assert settings_for(2, "carry-mod")[3].label == "2-digit AdamW (chunk 2, carry-mod)"
    assert config.run_spec(variant[3], 0).task == AdditionTask(3, 3, answer="carry-mod")
    assert config.run_spec(variant[0], 0).task == AdditionTask(9, 3)
    with pytest.raises(ConvergentError, match="choose one of whole, carry-mod"):
        settings_for(3, "sum")


def test_runs_made_before_the_format_existed_load_as_carry_mod(tmp_path: Path) -> None:
    from convergent.io import write_json_atomic
    from convergent.tasks.run import TASK_FILE, _check_task_file, load_task_run
    from convergent.train.config import TrainConfig

    old = {"kind": "addition", "task": {"digits": 3, "chunk": 3, "final_carry": True,
                                        "reverse": False},
           "split": {"test_pairs": 10, "train_pairs": 100, "seed": 0, "carry_rich": False},
           "loss_on": "answer", "permutations": 10, "probe_seed": 0}
    write_json_atomic(tmp_path / TASK_FILE, old)
    TrainConfig(vocab_size=1003).save(tmp_path / "config.json")
    _, task, _, _ = load_task_run(tmp_path)
    assert task == AdditionTask(3, 3, answer="carry-mod")
    resumed = {**old, "task": task.to_dict()}
    _check_task_file(tmp_path, resumed)  # the same task: accepted
    whole = {**old, "task": AdditionTask(3, 3).to_dict()}
    with pytest.raises(ConvergentError, match="different task"):
        _check_task_file(tmp_path, whole)
    assert json.loads((tmp_path / TASK_FILE).read_text()) == old  # left as it was
