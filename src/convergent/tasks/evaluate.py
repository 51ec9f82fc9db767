"""Exact-match accuracy on held-out problems, and the number-token analysis of a checkpoint.

Exact match is computed in one teacher-forced forward pass: a greedy decoder reproduces the
whole answer iff, at every answer position, the argmax given the *true* prefix is the true
token (the first wrong token is wrong in both readings, and before it the prefixes agree).
``tests/test_tasks_training.py`` checks this against explicit step-by-step greedy decoding.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from convergent.tasks.addition import AdditionTask


@dataclass(frozen=True)
class TaskAccuracy:
    """Held-out accuracy in percent: whole answers and single answer tokens."""

    exact_match: float
    token_accuracy: float
    n_problems: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@torch.no_grad()
def answer_predictions(model: nn.Module, task: AdditionTask, tokens: torch.Tensor,
                       batch_size: int = 1024) -> torch.Tensor:
    """Teacher-forced argmax at the answer positions: [n, answer_len] token ids."""
    was_training = model.training
    model.eval()
    start = task.answer_start
    out = []
    for lo in range(0, tokens.shape[0], batch_size):
        chunk = tokens[lo:lo + batch_size, :-1]
        logits = model(chunk)[:, start - 1:]
        out.append(logits.argmax(-1))
    model.train(was_training)
    return torch.cat(out)


@torch.no_grad()
def greedy_answers(model: nn.Module, task: AdditionTask, tokens: torch.Tensor) -> torch.Tensor:
    """Step-by-step greedy decoding of the answer from the prompt (reference; slower)."""
    was_training = model.training
    model.eval()
    seq = tokens[:, :task.answer_start].clone()
    for _ in range(task.answer_len):
        nxt = model(seq)[:, -1].argmax(-1, keepdim=True)
        seq = torch.cat([seq, nxt], dim=1)
    model.train(was_training)
    return seq[:, task.answer_start:]


def accuracy(model: nn.Module, task: AdditionTask, a: np.ndarray, b: np.ndarray
             ) -> TaskAccuracy:
    """Exact-match and per-token accuracy (percent) of ``model`` on the problems a + b."""
    tokens = torch.from_numpy(task.encode(a, b))
    predicted = answer_predictions(model, task, tokens)
    truth = tokens[:, task.answer_start:]
    right = predicted == truth
    return TaskAccuracy(exact_match=100.0 * float(right.all(dim=1).float().mean()),
                        token_accuracy=100.0 * float(right.float().mean()),
                        n_problems=int(tokens.shape[0]))


def number_embeddings(model: nn.Module, task: AdditionTask) -> np.ndarray:
    """Input-embedding rows of the operand tokens 0 .. base-1 (token id = number); the sum
    tokens base .. 2*base-2 of a 'whole' answer are not among them."""
    weight = model.get_submodule("embed").weight.detach()
    return weight[:task.base].float().numpy().copy()


def shuffled_kappa(values: np.ndarray, shuffles: int = 4, seed: int = 0,
                   moduli: tuple[int, ...] = tuple(range(2, 11))) -> dict[str, dict[str, Any]]:
    """Chance level of the mod-T probe on these rows: kappa (%) with the numbers shuffled.

    The same embedding rows, the same probe and folds (``convergent.numbers`` probes), but
    row n is labelled with a random permutation of 0..N-1, so any kappa is chance. Per T:
    mean, standard deviation and the values over ``shuffles`` permutations.
    """
    from convergent.numbers.probe import probe_moduli

    rng = np.random.default_rng([seed, 7])
    n = values.shape[0]
    runs = [probe_moduli(values, rng.permutation(n), moduli, seed=seed) for _ in range(shuffles)]
    out = {}
    for t in moduli:
        kappas = np.array([r[t].kappa for r in runs])
        out[str(t)] = {"mean": float(kappas.mean()), "std": float(kappas.std(ddof=0)),
                       "values": [float(k) for k in kappas]}
    return out
