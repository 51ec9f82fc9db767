"""Frozen result dataclasses of the linearity and identifiability analyses (plain data)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class ParallelismStats:
    """Cosines of pair differences o - s under one inner product.

    ``loo``: mean over pairs of cos(d_i, mean of the other pairs' differences) (1 = exactly
    parallel). Baselines: ``shuffled`` (the same statistic after re-pairing subjects with
    other objects of the relation: what the two word classes alone give) and ``other`` (mean
    cosine of this relation's differences with the other relations' mean directions).
    """

    n_pairs: int
    loo: float
    loo_std: float
    shuffled: float
    other: float


@dataclass(frozen=True)
class LinearityStats:
    """Held-out top-1 retrieval of the object from an affine map of the subject (ridge;
    shrunk toward the identity map when subject and object share a space).

    ``top1``: fraction of held-out subjects whose retrieved object (nearest among the
    relation's ``n_candidates`` distinct objects) is one listed for the subject. Baselines:
    ``chance`` (mean over subjects of listed objects / n_candidates: 1 / n_candidates when
    each subject has one object), ``shuffled`` (the map fitted on re-paired training pairs)
    and ``offset`` (o = s + mean training offset; only when subject and object share a
    space). ``chance_corrected``: (top1 - chance) / (1 - chance), 0 at chance, 1 perfect.
    """

    n_pairs: int
    n_candidates: int
    top1: float
    chance: float
    shuffled: float
    offset: float | None
    chance_corrected: float = float("nan")


@dataclass(frozen=True)
class ProbeStats:
    """Cross-validated accuracy of a logistic probe telling objects from subjects.

    Folds split by pair; ``flipped`` is the accuracy when the label of a random half of the
    pairs is swapped (the probe then has nothing consistent to find: ~0.5).
    """

    n_pairs: int
    accuracy: float
    flipped: float


@dataclass(frozen=True)
class SteeringStats:
    """Change of log p(object) - log p(subject) when the relation's direction is added.

    The direction is the mean of f(o) - f(s) over training pairs (at ``site``); ``delta`` is
    the mean change on held-out pairs. Baselines: ``other`` (other relations' directions)
    and ``random`` (random directions of the same norm).
    """

    n_pairs: int
    delta: float
    other: float
    random: float


@dataclass(frozen=True)
class RelationResult:
    """Every property of one relation; dicts are keyed by inner-product name."""

    relation: str
    n_pairs: int
    parallelism: Mapping[str, ParallelismStats]
    linearity: Mapping[str, LinearityStats]
    probe: Mapping[str, ProbeStats]
    steering: SteeringStats | None = None


@dataclass(frozen=True)
class LinearityResult:
    """The linear properties of one source on one pair set."""

    source: str
    pairs: str
    space: Mapping[str, Any]
    inner_products: tuple[Mapping[str, Any], ...]
    relations: tuple[RelationResult, ...]
    directions: Mapping[str, tuple[tuple[float, ...], ...]]
    relation_names: tuple[str, ...]
    filter: Mapping[str, Any]
    identifiability: tuple[str, ...]
    settings: Mapping[str, Any]
    provenance: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> dict[str, dict[str, float]]:
        """Mean over relations of the headline numbers, per inner product."""
        out: dict[str, dict[str, float]] = {}
        for ip in (x["name"] for x in self.inner_products):
            rows = self.relations
            out[ip] = {
                "parallelism_loo": _mean(r.parallelism[ip].loo for r in rows),
                "parallelism_shuffled": _mean(r.parallelism[ip].shuffled for r in rows),
                "parallelism_other": _mean(r.parallelism[ip].other for r in rows),
                "linearity_top1": _mean(r.linearity[ip].top1 for r in rows),
                "linearity_chance": _mean(r.linearity[ip].chance for r in rows),
                "linearity_chance_corrected": _mean(
                    r.linearity[ip].chance_corrected for r in rows),
                "probe_accuracy": _mean(r.probe[ip].accuracy for r in rows),
                "direction_offdiag_abs_cos": offdiag_abs_mean(self.directions[ip]),
            }
        return out


@dataclass(frozen=True)
class Complexity:
    """Numerical ranks of the pivoted unembedding differences and of the context embeddings.

    Diversity (Roeder et al. 2021; Marconato et al. 2025) holds when both span R^d.
    """

    dim: int
    rank_unembedding: int
    rank_contexts: int
    n_contexts: int
    rel_tol: float
    participation_unembedding: float
    participation_contexts: float
    diversity: bool


@dataclass(frozen=True)
class InvarianceRow:
    """One statistic: its value, its values in the equivalent models, and the verdict."""

    statistic: str
    value: float
    transformed: tuple[float, ...]
    max_abs_change: float
    invariant: bool
    expected: str


@dataclass(frozen=True)
class IdentifyResult:
    """Which statistics are properties of the distribution and which of one parameterization."""

    source: str
    complexity: Complexity
    max_kl: tuple[float, ...]
    table: tuple[InvarianceRow, ...]
    settings: Mapping[str, Any]
    notes: tuple[str, ...]
    provenance: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _mean(values: Any) -> float:
    vals = [float(v) for v in values if v is not None]
    return float(sum(vals) / len(vals)) if vals else float("nan")


def offdiag_abs_mean(matrix: Any) -> float:
    """Mean |cos| over the off-diagonal entries of a square matrix."""
    n = len(matrix)
    vals = [abs(matrix[i][j]) for i in range(n) for j in range(n) if i != j]
    return float(sum(vals) / len(vals)) if vals else float("nan")
