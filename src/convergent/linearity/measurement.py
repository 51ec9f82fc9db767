"""Park et al.'s measurement experiment: the unembedding direction of a concept measures it.

For contexts whose next word is in one language (``contexts0``, e.g. English text before
"off") or the other (``contexts1``, French text before "Ils"), the projection
f(x) . gamma_W on a concept's unembedding direction (gamma_W unit under the causal inner
product, see :mod:`convergent.linearity.controls`) separates the two sets for the matching
concept (English -> French) and not for unrelated ones (male -> female). f(x) is the input
of the unembedding at the context's last token. Park's contexts end in their word; the word is
cut off (:func:`context_sets`), so f(x) is the state that predicts it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from convergent.errors import ConvergentError
from convergent.linearity.controls import dual_direction
from convergent.linearity.inner import InnerProduct
from convergent.linearity.predictors import Context


@dataclass(frozen=True)
class MeasureStats:
    """Projections f(x) . gamma_W of the two context sets on one concept's direction.

    ``separation``: (mean1 - mean0) / pooled std (Cohen's d); ``auc``: P(a contexts1
    projection exceeds a contexts0 one), 0.5 = no separation.
    """

    mean0: float
    mean1: float
    separation: float
    auc: float


@dataclass(frozen=True)
class MeasurementResult:
    """Per concept, how its direction separates ``contexts0`` from ``contexts1``."""

    source: str
    contexts: str
    n0: int
    n1: int
    max_tokens: int
    concepts: Mapping[str, MeasureStats]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["concepts"] = {k: asdict(v) for k, v in self.concepts.items()}
        return out


def context_sets(pairs: Any, relation: str) -> tuple[list[str], list[str]]:
    """Park's paired contexts of ``relation`` (``pairs.contexts``) as two lists of texts,
    each cut before its final word (``word0`` / ``word1``): what precedes the word."""
    table = getattr(pairs, "contexts", {}).get(relation)
    if not table:
        raise ConvergentError(f"pairs {pairs.name}: relation {relation!r} has no contexts")
    sets: tuple[list[str], list[str]] = ([], [])
    for (w0, w1), (c0, c1) in table.items():
        for word, texts, out in ((w0, c0, sets[0]), (w1, c1, sets[1])):
            for text in texts:
                cut = text.rstrip()
                cut = cut[: -len(word)] if cut.endswith(word) else cut
                if cut.strip():
                    out.append(cut.rstrip())
    return sets


def tail_contexts(predictor: Any, texts: Sequence[str], max_tokens: int = 64) -> list[Context]:
    """Each text's last ``max_tokens`` tokens, after the model's BOS (if it has one)."""
    if max_tokens < 1:
        raise ConvergentError(f"max_tokens {max_tokens}: must be at least 1")
    out = []
    prefix = predictor.encode("")
    for text in texts:
        ids = tuple(predictor.tokenizer.encode(text, add_special_tokens=False))
        if not ids:
            raise ConvergentError(f"context {text[:40]!r}: no tokens")
        out.append(prefix + ids[-max_tokens:])
    return out


def auc(neg: np.ndarray, pos: np.ndarray) -> float:
    """P(pos > neg) + P(tie) / 2 (the Mann-Whitney statistic, by ranks)."""
    from scipy.stats import rankdata

    ranks = rankdata(np.concatenate([neg, pos]))
    n0, n1 = len(neg), len(pos)
    return float((ranks[n0:].sum() - n1 * (n1 + 1) / 2) / (n0 * n1))


def measure(
    predictor: Any, mean_diffs: Mapping[str, np.ndarray], causal: InnerProduct,
    contexts0: Sequence[str], contexts1: Sequence[str], name: str = "contexts",
    max_tokens: int = 64,
) -> MeasurementResult:
    """Project f(x) of both context sets on every concept's unembedding direction
    (``mean_diffs``: mean gamma(o) - gamma(s) per concept)."""
    if len(contexts0) < 2 or len(contexts1) < 2:
        raise ConvergentError(f"{name}: each context set needs at least 2 contexts")
    f0 = predictor.f(tail_contexts(predictor, contexts0, max_tokens))
    f1 = predictor.f(tail_contexts(predictor, contexts1, max_tokens))
    concepts = {}
    for rel, m in mean_diffs.items():
        gamma, _ = dual_direction(np.asarray(m, dtype=np.float64), causal)
        p0, p1 = f0 @ gamma, f1 @ gamma
        pooled = np.sqrt((p0.var(ddof=1) + p1.var(ddof=1)) / 2)
        concepts[rel] = MeasureStats(float(p0.mean()), float(p1.mean()),
                                     float((p1.mean() - p0.mean()) / max(pooled, 1e-300)),
                                     auc(p0, p1))
    return MeasurementResult(predictor.name, name, len(contexts0), len(contexts1), max_tokens,
                             concepts)
