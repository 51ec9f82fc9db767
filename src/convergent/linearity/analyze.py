"""``analyze_linearity``: every property of every relation under every inner product."""

from __future__ import annotations

from typing import Any

import numpy as np

from convergent.linearity.inner import InnerProduct, euclidean, random_inner, whitening
from convergent.linearity.pairs import FilterReport
from convergent.linearity.properties import (
    concept_directions,
    parallelism,
    probe_membership,
    relational_linearity,
    small_blas,
    steering_final,
)
from convergent.linearity.results import LinearityResult, RelationResult
from convergent.linearity.space import RelationSpace
from convergent.provenance import array_hash, versions

STATIC_NOTES = (
    "Static word vectors define no next-token distribution, so the identifiability results "
    "of Marconato et al. (equivalence f -> M f, g -> M^-T g + c) do not apply to them.",
    "What does carry over: every statistic under the whitened inner product is unchanged by "
    "any invertible affine map x -> A x + b of the vectors (cosines of differences, ridge "
    "retrieval and probe accuracy in whitened coordinates); Euclidean and random-metric "
    "numbers are not, so they describe this particular embedding, not a representation "
    "class.",
    "GloVe is a log-bilinear model of co-occurrence whose word and context vectors are "
    "identified only up to W -> W A, W~ -> W~ A^-T; the published vectors are W + W~, so not "
    "even that equivalence class is recoverable from them.",
)

PREDICTOR_NOTES = (
    "Unembedding statistics under the causal inner product (parallelism, concept-direction "
    "cosines), relational retrieval and probing in whitened coordinates, and steering on f "
    "are invariant under f -> M f, g -> M^-T g + c; Euclidean and random-metric ones are not "
    "(run `convergent identify` to check numerically for this model).",
)


def inner_products(space: RelationSpace, seed: int = 0) -> tuple[
    dict[str, InnerProduct], dict[str, InnerProduct]
]:
    """Output-space and input-space inner products, keyed by a shared name.

    Key 'causal' (LM) / 'whitened' (word vectors): whitening by the unembedding (output)
    and by the context embeddings of the pair words (input).
    """
    d_out, d_in = space.reference_g.shape[1], space.reference_f.shape[1]
    static = space.meta.get("kind") == "static"
    cov_name = "whitened" if static else "causal"
    out = {"euclidean": euclidean(d_out), cov_name: whitening(space.reference_g, cov_name),
           "random": random_inner(d_out, seed)}
    if space.same_space:
        return out, out
    inp = {"euclidean": euclidean(d_in), cov_name: whitening(space.reference_f, "whitened"),
           "random": random_inner(d_in, seed + 1)}
    return out, inp


def analyze_linearity(
    space: RelationSpace,
    report: FilterReport | None = None,
    seed: int = 0,
    alpha: float = 0.1,
    folds: int = 5,
    steering: dict[str, Any] | None = None,
) -> LinearityResult:
    """Parallelism, concept directions, relational linearity and probing for every relation.

    Parallelism and directions use the output space (g); linearity maps f(subject) to
    g(object); the probe reads f. ``steering`` (per-relation SteeringStats computed by the
    caller at a layer) replaces the default: steering on f for predictors (exact for a
    log-linear head), none for word vectors.
    """
    with small_blas():
        outs, ins = inner_products(space, seed)
        return _analyze(space, report, outs, ins, seed, alpha, folds, steering)


def _analyze(
    space: RelationSpace, report: FilterReport | None, outs: dict[str, InnerProduct],
    ins: dict[str, InnerProduct], seed: int, alpha: float, folds: int,
    steering: dict[str, Any] | None,
) -> LinearityResult:
    names = list(space.pairs.relations)
    par = {k: parallelism(space.g_sub, space.g_obj, ip, seed) for k, ip in outs.items()}
    dirs = {k: concept_directions(space.g_sub, space.g_obj, ip) for k, ip in outs.items()}
    subjects = space.subjects
    lin = {
        k: relational_linearity(space.f_sub, space.g_obj, space.objects, ins[k], outs[k],
                                alpha, folds, seed, space.same_space, subjects)
        for k in outs
    }
    prb = {k: probe_membership(space.f_sub, space.f_obj, ins[k], folds, seed,
                               groups=subjects) for k in outs}
    if steering is None and not space.same_space and space.f_name == "final":
        steering = steering_final(space.f_sub, space.f_obj, space.g_sub, space.g_obj,
                                  folds, seed, groups=subjects)
    relations = tuple(
        RelationResult(
            relation=r,
            n_pairs=len(space.pairs.relations[r]),
            parallelism={k: par[k][r] for k in outs},
            linearity={k: lin[k][r] for k in outs},
            probe={k: prb[k][r] for k in outs},
            steering=None if steering is None else steering.get(r),
        )
        for r in names
    )
    cos = {k: tuple(tuple(float(x) for x in row) for row in d @ d.T) for k, d in dirs.items()}
    settings = {"seed": seed, "alpha": alpha, "folds": folds, "folds_grouped_by": "subject"}
    provenance = {"versions": versions(),
                  "reference_g_hash": array_hash(np.asarray(space.reference_g)),
                  "pairs_kept": sum(len(p) for p in space.pairs.relations.values())}
    return LinearityResult(
        source=space.source,
        pairs=space.pairs.name + (f" ({space.pairs.format})" if space.pairs.format else ""),
        space=space.describe(),
        inner_products=tuple(
            {**outs[k].to_dict(), "key": k, "input": ins[k].to_dict()} for k in outs
        ),
        relations=relations,
        directions=cos,
        relation_names=tuple(names),
        filter={} if report is None else report.to_dict(),
        identifiability=STATIC_NOTES if space.meta.get("kind") == "static" else PREDICTOR_NOTES,
        settings=settings,
        provenance=provenance,
    )
