"""The latent-concept model of next-token prediction (Jiang et al., ICML 2024), simulated.

A sample is drawn in three vectorized steps:

1. a full concept vector c ~ P(C) from the :class:`ConceptStructure` (ancestral sampling);
2. a reveal mask: concept i is revealed by the context with probability ``reveal[i]``,
   independently of c (probability 1 = always revealed, 0 = never: a "chosen subset");
3. context x = (mask, revealed values), next token y = c.

Since the mask is independent of c, y | x is exactly the model's rule: the revealed concepts
are fixed by x, the hidden ones are drawn from P(C_hidden | C_revealed), and the full concept
vector is mapped to its token. With ``noise`` > 0 each revealed value is shown flipped with
that probability, so every token keeps some probability in every context (with ``noise`` = 0
tokens that contradict the context have probability 0 and the best logits are infinite).

Ids: token ``y = sum_i c_i 2^i``; context ``x = sum_i s_i 3^i`` with ``s_i`` = 0 hidden,
1 revealed as 0, 2 revealed as 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from convergent.errors import ConvergentError
from convergent.origins.structure import ConceptStructure, token_bits

HIDDEN, REVEALED_0, REVEALED_1 = 0, 1, 2
MAX_MODEL_CONCEPTS = 12  # 2^12 tokens, 3^12 contexts: the largest vocabulary we train on
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Samples:
    """``contexts`` and ``tokens`` (int64 ids, one per sample); ``seed`` that drew them."""

    contexts: np.ndarray
    tokens: np.ndarray
    seed: int | Sequence[int]

    def __len__(self) -> int:
        return int(self.tokens.shape[0])


@dataclass(frozen=True, eq=False)
class Simulator:
    """Draws (context, next token) pairs from the latent-concept model (module docstring)."""

    structure: ConceptStructure
    reveal: tuple[float, ...]
    noise: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.noise < 0.5:
            raise ConvergentError(f"noise must be in [0, 0.5), got {self.noise}")
        probs = tuple(float(r) for r in self.reveal)
        if len(probs) != self.structure.m:
            raise ConvergentError(
                f"reveal: {len(probs)} probabilities for {self.structure.m} concepts"
            )
        if any(not 0.0 <= r <= 1.0 for r in probs):
            raise ConvergentError(f"reveal probabilities must be in [0, 1], got {probs}")
        object.__setattr__(self, "reveal", probs)

    @classmethod
    def make(
        cls,
        structure: ConceptStructure,
        reveal: float | Sequence[float] = 0.5,
        noise: float = 0.0,
    ) -> Simulator:
        """``reveal``: one probability for every concept, or one per concept."""
        if isinstance(reveal, int | float):
            reveal = (float(reveal),) * structure.m
        return cls(structure=structure, reveal=tuple(reveal), noise=float(noise))

    @property
    def m(self) -> int:
        return self.structure.m

    @property
    def n_tokens(self) -> int:
        return 2**self.m

    @property
    def n_contexts(self) -> int:
        return 3**self.m

    def sample(self, n: int, seed: int | Sequence[int] = 0) -> Samples:
        """``n`` samples, drawn in chunks of 2^20; ``seed`` as for numpy's default_rng."""
        if n < 1:
            raise ConvergentError(f"number of samples must be positive, got {n}")
        rng = np.random.default_rng(seed)
        contexts = np.empty(n, dtype=np.int64)
        tokens = np.empty(n, dtype=np.int64)
        pow2 = 2 ** np.arange(self.m, dtype=np.int64)
        pow3 = 3 ** np.arange(self.m, dtype=np.int64)
        reveal = np.asarray(self.reveal)
        for start in range(0, n, _CHUNK):
            k = min(_CHUNK, n - start)
            c = self.structure.sample(k, rng)
            shown = rng.random((k, self.m)) < reveal
            tokens[start : start + k] = c @ pow2
            if self.noise > 0:
                c = c ^ (rng.random((k, self.m)) < self.noise)
            contexts[start : start + k] = (shown * (1 + c)) @ pow3
        return Samples(contexts=contexts, tokens=tokens, seed=seed)

    def context_states(self, contexts: np.ndarray) -> np.ndarray:
        """[n, m] states (0 hidden, 1 revealed 0, 2 revealed 1) of context ids."""
        contexts = np.asarray(contexts, dtype=np.int64)
        return (contexts[:, None] // 3 ** np.arange(self.m)) % 3

    def likelihood(self, contexts: np.ndarray) -> np.ndarray:
        """[n, 2^m]: P(shown values of x | token y) (with noise 0: y agrees with x or not)."""
        states = self.context_states(contexts)[:, None, :]
        bits = token_bits(self.m)[None, :, :]
        agree = np.where(states == bits + 1, 1.0 - self.noise, self.noise)
        return np.where(states == HIDDEN, 1.0, agree).prod(axis=2)

    def next_token_distribution(self, contexts: np.ndarray) -> np.ndarray:
        """Exact P(y | x) [n, 2^m] for context ids (rows of impossible contexts are NaN)."""
        weights = self.likelihood(contexts) * self.structure.joint()[None, :]
        total = weights.sum(axis=1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            return weights / total

    def context_distribution(self) -> np.ndarray:
        """Exact P(x) over all 3^m context ids."""
        states = self.context_states(np.arange(self.n_contexts))
        reveal = np.asarray(self.reveal)[None, :]
        p_mask = np.where(states == HIDDEN, 1.0 - reveal, reveal).prod(axis=1)
        p_values = (self.likelihood(np.arange(self.n_contexts)) * self.structure.joint()).sum(1)
        return p_mask * p_values

    def describe(self) -> dict[str, Any]:
        return {
            "concepts": self.m,
            "tokens": self.n_tokens,
            "contexts": self.n_contexts,
            "reveal": list(self.reveal),
            "noise": self.noise,
            "structure": self.structure.to_dict(),
        }


def context_features(states: np.ndarray) -> np.ndarray:
    """[n, 2m] float32 one-hot features (revealed-0, revealed-1 per concept) of states."""
    return np.concatenate([states == REVEALED_0, states == REVEALED_1], axis=1).astype(np.float32)


def aggregate(samples: Samples, n_tokens: int) -> tuple[np.ndarray, np.ndarray]:
    """Distinct contexts seen and their next-token counts [n_seen, n_tokens] (float64)."""
    seen, inverse = np.unique(samples.contexts, return_inverse=True)
    counts = np.bincount(inverse * n_tokens + samples.tokens, minlength=seen.size * n_tokens)
    return seen, counts.reshape(seen.size, n_tokens).astype(np.float64)
