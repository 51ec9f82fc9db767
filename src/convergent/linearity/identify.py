"""Numerical identifiability test (Marconato et al. 2025): which linear statistics are
properties of the next-token distribution, and which of one parameterization.

Sample distribution-equivalent predictors f -> M f, g -> M^{-T} g + c (plus components in
the non-identified directions when diversity fails), check that the next-token
distributions match on held-out contexts (max KL), recompute every statistic and compare.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from convergent.errors import ConvergentError
from convergent.linearity.inner import euclidean, random_inner, whitening
from convergent.linearity.pairs import PairSet
from convergent.linearity.predictors import (
    Context,
    Predictor,
    Reparameterization,
    kl_divergence,
)
from convergent.linearity.properties import (
    concept_directions,
    parallelism,
    probe_membership,
    relational_linearity,
    small_blas,
    steering_final,
)
from convergent.linearity.results import Complexity, IdentifyResult, InvarianceRow
from convergent.linearity.space import (
    RelationSpace,
    predictor_space,
    reparameterized_space,
)
from convergent.provenance import versions

INV, DEP, DIV = "invariant", "depends", "invariant if diversity holds"


def _spectrum(x: np.ndarray) -> np.ndarray:
    """Singular values (descending) via the d x d Gram matrix, accumulated in float64."""
    gram = np.zeros((x.shape[1], x.shape[1]))
    for start in range(0, x.shape[0], 8192):
        block = np.asarray(x[start:start + 8192], dtype=np.float64)
        gram += block.T @ block
    evals, evecs = np.linalg.eigh(gram)
    order = np.argsort(evals)[::-1]
    return np.sqrt(np.clip(evals[order], 0, None)), evecs[:, order]


def _rank(sv: np.ndarray, rel_tol: float) -> int:
    return int(np.sum(sv > rel_tol * sv[0])) if sv.size and sv[0] > 0 else 0


def _participation(sv: np.ndarray) -> float:
    p = sv**2
    return float(p.sum() ** 2 / np.sum(p**2)) if p.sum() > 0 else 0.0


@dataclass(frozen=True, eq=False)
class Subspaces:
    """Spectra and orthonormal bases of the pivoted unembedding differences and contexts."""

    sv_g: np.ndarray
    span_g: np.ndarray
    null_g: np.ndarray
    sv_f: np.ndarray
    null_f: np.ndarray


def subspaces(f: np.ndarray, g: np.ndarray, pivot: int = 0, rel_tol: float = 1e-6) -> Subspaces:
    """One pass over the vocabulary and the contexts (reused by every sample)."""
    sv_g, vg = _spectrum(np.asarray(g, dtype=np.float64) - np.asarray(g[pivot], np.float64))
    sv_f, vf = _spectrum(f)
    rg, rf = _rank(sv_g, rel_tol), _rank(sv_f, rel_tol)
    return Subspaces(sv_g, vg[:, :rg], vg[:, rg:], sv_f, vf[:, rf:])


def effective_complexity(
    f: np.ndarray, g: np.ndarray, pivot: int = 0, rel_tol: float = 1e-6,
    spaces: Subspaces | None = None,
) -> Complexity:
    """Numerical ranks of {g(y) - g(y0)} and of {f(x)}; diversity = both equal d."""
    d = g.shape[1]
    sp = spaces or subspaces(f, g, pivot, rel_tol)
    rg, rf = _rank(sp.sv_g, rel_tol), _rank(sp.sv_f, rel_tol)
    return Complexity(
        dim=d, rank_unembedding=rg, rank_contexts=rf, n_contexts=int(f.shape[0]),
        rel_tol=rel_tol, participation_unembedding=_participation(sp.sv_g),
        participation_contexts=_participation(sp.sv_f), diversity=rg == d and rf == d,
    )


def _intersection(a: np.ndarray, b: np.ndarray, tol: float = 1e-8) -> np.ndarray:
    """Orthonormal basis of span(a) ∩ span(b) (a, b orthonormal columns)."""
    if a.shape[1] == 0 or b.shape[1] == 0:
        return np.zeros((a.shape[0], 0))
    u, s, _ = np.linalg.svd(a.T @ b, full_matrices=False)
    return a @ u[:, s > 1 - tol]


def sample_reparameterization(
    f: np.ndarray, g: np.ndarray, seed: int, condition: float = 10.0,
    null_scale: float = 1.0, pivot: int = 0, rel_tol: float = 1e-6,
    spaces: Subspaces | None = None,
) -> Reparameterization:
    """Random M (singular values log-uniform in [1/sqrt(condition), sqrt(condition)]), c,
    and, where diversity fails, null-space components of size ``null_scale`` (relative)."""
    rng = np.random.default_rng(seed)
    d = g.shape[1]
    q1, _ = np.linalg.qr(rng.standard_normal((d, d)))
    q2, _ = np.linalg.qr(rng.standard_normal((d, d)))
    s = np.exp(rng.uniform(-0.5, 0.5, d) * np.log(condition))
    m = (q1 * s) @ q2.T
    g_rms = float(np.sqrt(np.mean(np.asarray(g, dtype=np.float64) ** 2)))
    c = rng.standard_normal(d) * g_rms
    sp = spaces or subspaces(f, g, pivot, rel_tol)
    span_g, null_g, null_f = sp.span_g, sp.null_g, sp.null_f
    f_null = f_mix = g_extra = None
    if null_scale > 0 and null_g.shape[1]:
        f_norm = float(np.sqrt(np.mean(np.sum(np.asarray(f) ** 2, axis=1))))
        f_null = null_g * null_scale * f_norm / np.sqrt(null_g.shape[1])
        f_mix = 2.0 * rng.standard_normal((null_g.shape[1], d)) / f_norm  # R f = O(1)
    extra = _intersection(null_f, span_g)
    if null_scale > 0 and extra.shape[1]:
        coeff = rng.standard_normal((g.shape[0], extra.shape[1])) * null_scale * g_rms
        g_extra = coeff @ extra.T
    return Reparameterization(m, c, f_null, f_mix, g_extra)


def statistics(space: RelationSpace, seed: int = 0, alpha: float = 0.1,
               folds: int = 5) -> dict[str, np.ndarray]:
    """Every statistic as a vector (one entry per relation, or per relation pair)."""
    d_g, d_f = space.reference_g.shape[1], space.reference_f.shape[1]
    with small_blas():
        g_ips = {"euclidean": euclidean(d_g), "causal": whitening(space.reference_g, "causal"),
                 "random": random_inner(d_g, seed)}
        f_ips = {"euclidean": euclidean(d_f),
                 "whitened": whitening(space.reference_f, "whitened"),
                 "random": random_inner(d_f, seed + 1)}
        return _statistics(space, g_ips, f_ips, seed, alpha, folds)


def _statistics(space: RelationSpace, g_ips: dict, f_ips: dict, seed: int, alpha: float,
                folds: int) -> dict[str, np.ndarray]:
    rels = list(space.pairs.relations)
    off = ~np.eye(len(rels), dtype=bool)
    out: dict[str, np.ndarray] = {}
    for k, ip in g_ips.items():
        par = parallelism(space.g_sub, space.g_obj, ip, seed, shuffles=1)
        out[f"parallelism of g(o)-g(s), {k}"] = np.array([par[r].loo for r in rels])
        dirs = concept_directions(space.g_sub, space.g_obj, ip)
        out[f"cosine between relation directions, {k}"] = (dirs @ dirs.T)[off]
    for k, ip in f_ips.items():
        par = parallelism(space.f_sub, space.f_obj, ip, seed, shuffles=1)
        out[f"parallelism of f(o)-f(s), {k}"] = np.array([par[r].loo for r in rels])
    for kg, kf in (("euclidean", "euclidean"), ("causal", "whitened")):
        lin = relational_linearity(space.f_sub, space.g_obj, space.objects, f_ips[kf],
                                   g_ips[kg], alpha, folds, seed)
        out[f"relational linearity top-1, {kg}"] = np.array([lin[r].top1 for r in rels])
    for k in ("euclidean", "whitened"):
        prb = probe_membership(space.f_sub, space.f_obj, f_ips[k], folds, seed, flipped=False)
        out[f"probe accuracy on f, {k}"] = np.array([prb[r].accuracy for r in rels])
    steer = steering_final(space.f_sub, space.f_obj, space.g_sub, space.g_obj, folds, seed)
    out["steering on f: change of log-odds"] = np.array([steer[r].delta for r in rels])
    return out


EXPECTED = {
    "parallelism of g(o)-g(s), euclidean": DEP,
    "parallelism of g(o)-g(s), causal": DIV,
    "parallelism of g(o)-g(s), random": DEP,
    "cosine between relation directions, euclidean": DEP,
    "cosine between relation directions, causal": DIV,
    "cosine between relation directions, random": DEP,
    "parallelism of f(o)-f(s), euclidean": DEP,
    "parallelism of f(o)-f(s), whitened": DIV,
    "parallelism of f(o)-f(s), random": DEP,
    "relational linearity top-1, euclidean": DEP,
    "relational linearity top-1, causal": DIV,
    "probe accuracy on f, euclidean": DEP,
    "probe accuracy on f, whitened": DIV,
    "steering on f: change of log-odds": INV,
}


def default_contexts(predictor: Predictor) -> tuple[list[Context], list[Context]]:
    """(contexts for the rank estimate, held-out contexts for the KL check)."""
    vocab = getattr(predictor, "vocab", None)
    if vocab is not None:  # a synthetic predictor: every context is its last token
        every = [(i,) for i in range(len(vocab))]
        return every, every
    from convergent.linearity.steer import NEUTRAL

    texts = list(_lee_sentences(80)) or list(NEUTRAL)
    fit = [predictor.encode(t) for t in texts[: len(texts) // 2]]
    held = [predictor.encode(t) for t in texts[len(texts) // 2:]]
    return fit, held


def _lee_sentences(n: int, words: int = 12) -> Sequence[str]:
    """Short contexts from gensim's bundled news corpus (empty without gensim)."""
    from convergent.linearity.pairs import gensim_data

    path = gensim_data("lee_background.cor")
    if path is None:
        return []
    out = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            toks = line.split()
            for start in range(0, len(toks) - words, words * 4):
                out.append(" ".join(toks[start:start + words]))
                if len(out) >= n:
                    return out
    return out


def identify(
    predictor: Predictor,
    pairs: PairSet,
    samples: int = 3,
    seed: int = 0,
    condition: float = 10.0,
    null_scale: float = 1.0,
    tol: float = 1e-6,
    rel_tol: float = 1e-6,
    max_pairs: int | None = None,
    contexts: tuple[Sequence[Context], Sequence[Context]] | None = None,
) -> IdentifyResult:
    """Run the identifiability test on ``predictor`` with the relations of ``pairs``."""
    if samples < 1:
        raise ConvergentError(f"--samples {samples}: need at least one equivalent model")
    fit, held = contexts or default_contexts(predictor)
    space, report = predictor_space(predictor, pairs, "final", "single", 3, max_pairs)
    f_fit = np.concatenate([predictor.f(fit), *space.f_sub.values(), *space.f_obj.values()])
    g = predictor.g()
    spaces = subspaces(f_fit, g, rel_tol=rel_tol)
    complexity = effective_complexity(f_fit, g, rel_tol=rel_tol, spaces=spaces)
    base = statistics(space, seed)
    base_logits = predictor.logits(held)
    kls, changed, f_check = [], {k: [] for k in base}, 0.0
    probe_ctx = [predictor.encode("") + space.tokens[w] for w in list(space.tokens)[:8]]
    for i in tqdm(range(samples), desc="equivalent models", leave=False):
        rp = sample_reparameterization(f_fit, g, seed + 1000 + i, condition, null_scale,
                                       rel_tol=rel_tol, spaces=spaces)
        other = predictor.transformed(rp)
        kls.append(float(kl_divergence(base_logits, other.logits(held)).max()))
        # the statistics use f~ = rp(f) from stored vectors; check that against the forward
        f_check = max(f_check, float(np.abs(other.f(probe_ctx)
                                            - rp.apply_f(predictor.f(probe_ctx))).max()))
        for k, v in statistics(reparameterized_space(space, rp), seed).items():
            changed[k].append(v)
    table = tuple(
        InvarianceRow(
            statistic=k, value=float(np.mean(v)),
            transformed=tuple(float(np.mean(x)) for x in changed[k]),
            max_abs_change=float(max(np.max(np.abs(x - v)) for x in changed[k])),
            invariant=bool(max(np.max(np.abs(x - v)) for x in changed[k]) <= tol),
            expected=EXPECTED.get(k, ""),
        )
        for k, v in base.items()
    )
    notes = [report.summary()]
    if not complexity.diversity:
        notes.append("diversity fails: components were added in the non-identified directions "
                     f"(null_scale={null_scale}); statistics of f that read those directions "
                     "are not properties of the distribution")
    return IdentifyResult(
        source=predictor.name, complexity=complexity, max_kl=tuple(kls), table=table,
        settings={"samples": samples, "seed": seed, "condition": condition,
                  "null_scale": null_scale, "tol": tol, "rel_tol": rel_tol,
                  "relations": list(space.pairs.relations), "n_heldout_contexts": len(held),
                  "max_abs_f_forward_vs_stored": f_check},
        notes=tuple(notes), provenance={"versions": versions()},
    )
