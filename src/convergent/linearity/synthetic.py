"""Synthetic log-linear predictors with planted linear properties, whose every metric has a
known value (used by the tests and as a sanity check of the pipeline).

Planted: relation r has a direction u_r (orthonormal across relations, length ``shift``);
subjects' unembeddings g(s) are random in the complement of span{u_r}; objects are
g(o) = g(s) + u_r (exactly parallel differences); f(w) = B g(w) for a random invertible B
(so g(o) = B^{-1} f(s) + u_r is an exact relation map, the probe direction B^{-T} u_r
separates subjects (score 0) from objects (score |u_r|^2), and steering f by B u_r changes
log p(o) - log p(s) by exactly u_r^T B^T u_r). ``rank_f`` < d makes f(w) = B P g(w) with P
a rank-``rank_f`` projection: diversity fails on the context side.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from convergent.errors import ConvergentError
from convergent.linearity.pairs import PairSet
from convergent.linearity.predictors import LogLinearPredictor


@dataclass(frozen=True, eq=False)
class Planted:
    """The planted ground truth."""

    directions: np.ndarray  # u_r as rows [R, d]
    b: np.ndarray  # f = B g (B P g when rank_f < d)
    steering_delta: np.ndarray  # exact log-odds change per relation


def planted_predictor(
    dim: int = 6, relations: int = 3, pairs: int = 15, fillers: int = 30, shift: float = 3.0,
    rank_f: int | None = None, seed: int = 0,
) -> tuple[LogLinearPredictor, PairSet, Planted]:
    """A predictor, its pair set (relations ``rel0``.., words ``s{r}_{i}``/``o{r}_{i}``)."""
    if relations >= dim:
        raise ConvergentError(f"planted predictor: {relations} relations need dim > relations")
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    u = q[:, :relations].T * shift
    comp = q[:, relations:]
    vocab: list[str] = []
    g_rows: list[np.ndarray] = []
    rel_pairs: dict[str, tuple[tuple[str, str], ...]] = {}
    for r in range(relations):
        ps = []
        for i in range(pairs):
            gs = comp @ rng.standard_normal(comp.shape[1])
            vocab += [f"s{r}_{i}", f"o{r}_{i}"]
            g_rows += [gs, gs + u[r]]
            ps.append((f"s{r}_{i}", f"o{r}_{i}"))
        rel_pairs[f"rel{r}"] = tuple(ps)
    for i in range(fillers):
        vocab.append(f"w{i}")
        g_rows.append(rng.standard_normal(dim))
    g = np.stack(g_rows)
    b = rng.standard_normal((dim, dim)) / np.sqrt(dim) + np.eye(dim)
    if rank_f is not None:
        if not 0 < rank_f <= dim:
            raise ConvergentError(f"planted predictor: rank_f {rank_f} not in 1..{dim}")
        basis, _ = np.linalg.qr(rng.standard_normal((dim, rank_f)))
        b = b @ basis @ basis.T
    f = g @ b.T
    delta = np.array([(b @ ur) @ ur for ur in u])
    pred = LogLinearPredictor(vocab, f, g, name="planted")
    return pred, PairSet("planted", rel_pairs), Planted(u, b, delta)
