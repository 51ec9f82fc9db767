"""Train/test split by operand pairs and a resumable batch source for the training engine.

The test set is ``test_pairs`` distinct pairs (a, b) drawn with the split seed. Training
pairs never equal a test pair:

- small pair spaces (10**(2*digits) <= ``ENUMERATE_LIMIT``, e.g. 3-digit addition) are
  enumerated and permuted once; test is the first slice, train the next ``train_pairs``
  (0 = all the rest). Training then cycles over this fixed set, reshuffled every epoch, so
  memorisation and late generalisation (grokking) can happen as in the paper.
- large spaces (9-digit: 10**18 pairs) draw fresh pairs for every batch (a pure function of
  the batch index and seed) and replace the rare draw that hits a test pair; with
  ``train_pairs`` > 0 a fixed training set of that many pairs is drawn once instead.

Operands are uniform over 0 .. 10**digits - 1 unless ``carry_rich`` is set; then each chunk
pair is, with probability 1/2, forced to sum to base - 1 so that long carry chains (e.g.
999,999,999 + 1) are common instead of one in 10**(3k).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from convergent.errors import ConvergentError
from convergent.tasks.addition import AdditionTask
from convergent.train.data import Batch

ENUMERATE_LIMIT = 10**7


@dataclass(frozen=True)
class SplitConfig:
    """How problems are drawn: sizes of the test and (optional fixed) training sets."""

    test_pairs: int = 2000
    train_pairs: int = 0
    seed: int = 0
    carry_rich: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _keys(task: AdditionTask, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """One integer per ordered pair (exact: a * 10**digits + b fits int64 up to 9 digits)."""
    if task.digits > 9:
        return np.array([f"{x}+{y}" for x, y in zip(a, b, strict=True)], dtype=object)
    return a.astype(np.int64) * 10**task.digits + b.astype(np.int64)


class AdditionSplit:
    """Disjoint train and test operand pairs of one task (see the module docstring)."""

    def __init__(self, task: AdditionTask, config: SplitConfig) -> None:
        self.task, self.config = task, config
        space = 10 ** (2 * task.digits)
        if config.test_pairs < 1:
            raise ConvergentError("test_pairs must be a positive integer")
        if config.train_pairs < 0:
            raise ConvergentError("train_pairs must be >= 0 (0 = all or fresh pairs)")
        if config.test_pairs + max(config.train_pairs, 1) > space:
            raise ConvergentError(
                f"{task.spec}: only {space} operand pairs exist; test_pairs "
                f"{config.test_pairs} + train_pairs {config.train_pairs} is too many")
        rng = np.random.default_rng([config.seed, 1])
        self.enumerated = space <= ENUMERATE_LIMIT
        if self.enumerated:
            order = rng.permutation(space)
            limit = 10**task.digits
            test = order[:config.test_pairs]
            rest = order[config.test_pairs:]
            train = rest[:config.train_pairs] if config.train_pairs else rest
            self.test = (test // limit, test % limit)
            self.train: tuple[np.ndarray, np.ndarray] | None = (train // limit, train % limit)
        else:
            a, b = self._draw(rng, config.test_pairs * 2)
            _, first = np.unique(_keys(task, a, b), return_index=True)
            first = np.sort(first)[:config.test_pairs]
            if len(first) < config.test_pairs:
                raise ConvergentError("could not draw enough distinct test pairs")
            self.test = (a[first], b[first])
            self.train = None
            if config.train_pairs:
                self.train = self._fresh(np.random.default_rng([config.seed, 2]),
                                         config.train_pairs)
        self._test_keys = np.unique(_keys(task, *self.test))
        self._epoch: tuple[int, int] | None = None
        self._order = np.zeros(0, dtype=np.int64)

    @property
    def n_train(self) -> int | None:
        """Size of the fixed training set (None: fresh pairs every batch)."""
        return None if self.train is None else len(self.train[0])

    def _draw(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        task = self.task
        if not self.config.carry_rich:
            high = 10**task.digits
            return rng.integers(0, high, n), rng.integers(0, high, n)
        ca = rng.integers(0, task.base, (n, task.chunks))
        cb = rng.integers(0, task.base, (n, task.chunks))
        force = rng.random((n, task.chunks)) < 0.5
        cb = np.where(force, task.base - 1 - ca, cb)
        return task.join(ca), task.join(cb)

    def _fresh(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        """``n`` pairs that are not test pairs (redraws the rare collision)."""
        a, b = self._draw(rng, n)
        for _ in range(100):
            hit = np.isin(_keys(self.task, a, b), self._test_keys)
            if not hit.any():
                return a, b
            a2, b2 = self._draw(rng, int(hit.sum()))
            a[hit], b[hit] = a2, b2
        raise ConvergentError(f"{self.task.spec}: the test set leaves too few training pairs")

    def is_test(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        keys = _keys(self.task, np.asarray(a), np.asarray(b))
        return np.isin(keys, self._test_keys)

    def _permutation(self, epoch: int, seed: int) -> np.ndarray:
        """The training-set order of ``epoch`` (cached: batches come in order)."""
        if self._epoch != (epoch, seed):
            n = len(self.train[0]) if self.train is not None else 0
            self._epoch = (epoch, seed)
            self._order = np.random.default_rng([seed, 4, epoch]).permutation(n)
        return self._order

    def train_pairs(self, index: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``size`` training pairs of batch ``index`` (pure function of its arguments)."""
        if self.train is None:
            return self._fresh(np.random.default_rng([seed, 3, index]), size)
        n = len(self.train[0])
        flat = np.arange(index * size, (index + 1) * size, dtype=np.int64)
        epochs, offsets = np.divmod(flat, n)
        rows = np.empty(size, dtype=np.int64)
        for epoch in np.unique(epochs):
            chosen = epochs == epoch
            rows[chosen] = self._permutation(int(epoch), seed)[offsets[chosen]]
        return self.train[0][rows], self.train[1][rows]


class AdditionBatches:
    """:class:`~convergent.train.data.BatchSource` of training problems.

    ``loss_on="answer"`` (default) masks the loss to the answer tokens; ``"all"`` also
    trains on predicting the operands.
    """

    def __init__(self, split: AdditionSplit, batch_size: int, seed: int,
                 loss_on: str = "answer") -> None:
        if loss_on not in ("answer", "all"):
            raise ConvergentError(f"loss_on {loss_on!r}: choose answer or all")
        self.split, self.batch_size, self.seed, self.loss_on = split, batch_size, seed, loss_on
        task = split.task
        mask = torch.zeros(task.seq_len - 1, dtype=torch.bool)
        mask[task.answer_start - 1:] = True
        if loss_on == "all":
            mask[:] = True
        self._mask = mask

    def batch(self, index: int) -> Batch:
        a, b = self.split.train_pairs(index, self.batch_size, self.seed)
        tokens = torch.from_numpy(self.split.task.encode(a, b))
        return Batch(tokens, self._mask.expand(self.batch_size, -1))
