"""Next-token predictors p(y | x) = softmax(f(x)^T g(y) + b(y)): a small common interface.

A predictor gives the context embedding f (the input of the unembedding), the unembedding
rows g, and logits computed through its real forward path. Contexts are token-id tuples.
Implementations: :class:`LogLinearPredictor` (synthetic: f depends on the last token only,
used for planted tests) and :class:`HFPredictor` (any Hugging Face causal LM, or a trained
run exposing ``load_model()``; accepts a (model, tokenizer) pair directly).

Every predictor can be reparameterized (``transformed``) by a :class:`Reparameterization`:
f -> M (f + N tanh(R f)), g -> M^{-T} (g + E) + c, which leaves the next-token
distribution unchanged when N spans directions orthogonal to the pivoted unembedding
differences and the rows of E are orthogonal to every f(x) (Marconato et al. 2025).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from convergent.errors import ConvergentError

Context = tuple[int, ...]


@dataclass(frozen=True, eq=False)
class Reparameterization:
    """f -> M (f + N tanh(R f)),  g -> (g + E) M^{-1} + c   (rows; M^{-T} g in column form)."""

    m: np.ndarray
    c: np.ndarray
    f_null: np.ndarray | None = None  # N [d, k]
    f_mix: np.ndarray | None = None  # R [k, d]
    g_extra: np.ndarray | None = None  # E [V, d]

    def apply_f(self, f: np.ndarray) -> np.ndarray:
        f = np.asarray(f, dtype=np.float64)
        if self.f_null is not None and self.f_mix is not None:
            f = f + np.tanh(f @ self.f_mix.T) @ self.f_null.T
        return f @ self.m.T

    def apply_g(self, g: np.ndarray) -> np.ndarray:
        g = np.asarray(g, dtype=np.float64)
        if self.g_extra is not None:
            g = g + self.g_extra
        return np.linalg.solve(self.m.T, g.T).T + self.c


@runtime_checkable
class Predictor(Protocol):
    name: str
    dim: int
    vocab_size: int

    def word_tokens(self, word: str) -> Context:
        """Token ids of ``word`` as it appears inside text (after a space)."""
        ...

    def encode(self, text: str) -> Context:
        """Token ids of a context text (with the model's BOS token if it uses one)."""
        ...

    def f(self, contexts: Sequence[Context]) -> np.ndarray:
        """Context embeddings [n, d]: the input of the unembedding at the last position."""
        ...

    def g(self) -> np.ndarray:
        """Unembedding rows [V, d]."""
        ...

    def bias(self) -> np.ndarray | None: ...

    def logits(self, contexts: Sequence[Context]) -> np.ndarray:
        """Next-token logits [n, V] at the last position, through the real forward path."""
        ...

    def transformed(self, reparam: Reparameterization) -> Predictor: ...


class LogLinearPredictor:
    """Synthetic predictor: f(x) = F[last token of x], logits = f(x) . g(y) + b(y)."""

    def __init__(
        self, vocab: Sequence[str], f_table: np.ndarray, g_table: np.ndarray,
        bias: np.ndarray | None = None, name: str = "loglinear",
        reparam: Reparameterization | None = None,
    ) -> None:
        if f_table.shape != g_table.shape or f_table.shape[0] != len(vocab):
            raise ConvergentError(
                f"{name}: f {f_table.shape} and g {g_table.shape} must both be [V={len(vocab)}, d]"
            )
        self.name, self.vocab = name, list(vocab)
        self.index = {w: i for i, w in enumerate(self.vocab)}
        self._f, self._g, self._b = np.asarray(f_table, float), np.asarray(g_table, float), bias
        self.reparam = reparam
        self.vocab_size, self.dim = self._g.shape

    def word_tokens(self, word: str) -> Context:
        return (self.index[word],) if word in self.index else ()

    def encode(self, text: str) -> Context:
        missing = [w for w in text.split() if w not in self.index]
        if missing:
            raise ConvergentError(f"{self.name}: unknown word(s) {', '.join(missing[:5])}")
        return tuple(self.index[w] for w in text.split())

    def f(self, contexts: Sequence[Context]) -> np.ndarray:
        f = self._f[[c[-1] for c in contexts]]
        return f if self.reparam is None else self.reparam.apply_f(f)

    def g(self) -> np.ndarray:
        return self._g if self.reparam is None else self.reparam.apply_g(self._g)

    def bias(self) -> np.ndarray | None:
        return self._b

    def logits(self, contexts: Sequence[Context]) -> np.ndarray:
        out = self.f(contexts) @ self.g().T
        return out if self._b is None else out + self._b

    def transformed(self, reparam: Reparameterization) -> LogLinearPredictor:
        if self.reparam is not None:
            raise ConvergentError(f"{self.name}: already reparameterized")
        return LogLinearPredictor(self.vocab, self._f, self._g, self._b,
                                  f"{self.name}~", reparam)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def kl_divergence(logits_p: np.ndarray, logits_q: np.ndarray) -> np.ndarray:
    """KL(p || q) per row, in nats, from logits."""
    lp, lq = log_softmax(np.asarray(logits_p, float)), log_softmax(np.asarray(logits_q, float))
    return np.sum(np.exp(lp) * (lp - lq), axis=-1)


def predictor_from(obj: Any, name: str | None = None) -> Predictor:
    """A Predictor from a predictor, a (model, tokenizer) pair or a source with load_model()."""
    if isinstance(obj, Predictor):
        return obj
    if isinstance(obj, tuple) and len(obj) == 2:
        from convergent.linearity.hf import HFPredictor

        return HFPredictor(obj[0], obj[1], name=name or "model")
    load = getattr(obj, "load_model", None)
    if callable(load):
        from convergent.linearity.hf import HFPredictor

        model, tokenizer = load()
        identity = getattr(obj, "identity", None)  # weights hash: enables resumable caching
        return HFPredictor(model, tokenizer, name=name or getattr(obj, "name", "model"),
                           identity=identity if isinstance(identity, dict) else None)
    label = name or getattr(obj, "name", type(obj).__name__)
    raise ConvergentError(
        f"{label}: not a next-token predictor (no unembedding or next-token distribution); "
        "identify needs a causal language model or a trained run"
    )
