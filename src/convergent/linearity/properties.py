"""Linear properties of relations, each with a baseline, computed on plain arrays.

Every function takes, per relation, matrices whose row i belongs to pair i (subject rows
``S``, object rows ``O``), and an :class:`~convergent.linearity.inner.InnerProduct`.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace

import numpy as np

from convergent.errors import ConvergentError
from convergent.linearity.inner import InnerProduct, unit_rows
from convergent.linearity.pairs import MIN_PAIRS
from convergent.linearity.results import (
    LinearityStats,
    ParallelismStats,
    ProbeStats,
    SteeringStats,
)
from convergent.probing.logistic import LogisticSettings

Arrays = Mapping[str, np.ndarray]


@contextmanager
def small_blas() -> Iterator[None]:
    """One BLAS thread: the many tiny matrix products here run 10-40x slower when OpenBLAS
    threads contend for a loaded CPU (measured). No-op without threadpoolctl."""
    try:
        from threadpoolctl import threadpool_limits
    except ModuleNotFoundError:
        yield
        return
    import scipy.optimize  # noqa: F401  (loads scipy's own BLAS first, so the limit covers it)

    with threadpool_limits(limits=1, user_api="blas"):
        yield


def _check(subjects: Arrays, objects: Arrays, min_pairs: int = 2) -> None:
    if set(subjects) != set(objects):
        raise ConvergentError("subjects and objects name different relations")
    for rel, s in subjects.items():
        if s.shape[0] != objects[rel].shape[0]:
            raise ConvergentError(f"relation {rel!r}: {s.shape[0]} subjects, "
                                  f"{objects[rel].shape[0]} objects")
        if s.shape[0] < min_pairs:
            raise ConvergentError(
                f"relation {rel!r} has {s.shape[0]} pair(s); at least {min_pairs} are needed"
            )


def _derangement(n: int, rng: np.random.Generator) -> np.ndarray:
    """A permutation with no fixed point (n >= 2)."""
    while True:
        perm = rng.permutation(n)
        if not np.any(perm == np.arange(n)):
            return perm


def _loo_cosines(diffs: np.ndarray) -> np.ndarray:
    """cos(d_i, mean_{j != i} d_j) for every i."""
    n = diffs.shape[0]
    others = (diffs.sum(axis=0, keepdims=True) - diffs) / (n - 1)
    return np.sum(unit_rows(diffs) * unit_rows(others), axis=1)


def concept_directions(subjects: Arrays, objects: Arrays, inner: InnerProduct) -> np.ndarray:
    """Unit mean difference per relation (Park et al. 2024), in ``inner``'s coordinates."""
    _check(subjects, objects)
    means = [inner.apply(objects[r] - subjects[r]).mean(axis=0) for r in subjects]
    return unit_rows(np.stack(means))


def parallelism(
    subjects: Arrays, objects: Arrays, inner: InnerProduct, seed: int = 0, shuffles: int = 5
) -> dict[str, ParallelismStats]:
    """Leave-one-out cosine of pair differences, with shuffled and other-relation baselines."""
    _check(subjects, objects)
    rng = np.random.default_rng(seed)
    names = list(subjects)
    diffs = {r: inner.apply(objects[r] - subjects[r]) for r in names}
    means = unit_rows(np.stack([diffs[r].mean(axis=0) for r in names]))
    out: dict[str, ParallelismStats] = {}
    for k, rel in enumerate(names):
        loo = _loo_cosines(diffs[rel])
        n = loo.size
        s_w, o_w = inner.apply(subjects[rel]), inner.apply(objects[rel])
        shuffled = [float(_loo_cosines(o_w[_derangement(n, rng)] - s_w).mean())
                    for _ in range(shuffles)]
        cos_other = unit_rows(diffs[rel]) @ np.delete(means, k, axis=0).T
        out[rel] = ParallelismStats(
            n_pairs=n,
            loo=float(loo.mean()),
            loo_std=float(loo.std()),
            shuffled=float(np.mean(shuffled)),
            other=float(cos_other.mean()) if cos_other.size else float("nan"),
        )
    return out


def _folds(n: int, folds: int, rng: np.random.Generator) -> list[np.ndarray]:
    return [f for f in np.array_split(rng.permutation(n), min(folds, n)) if f.size]


def grouped_folds(
    groups: Sequence[Hashable] | None, n: int, folds: int, rng: np.random.Generator,
) -> list[np.ndarray]:
    """Row indices of each held-out fold; rows of one group (a subject) share a fold.

    With every group distinct (or ``groups`` None) these are exactly :func:`_folds`."""
    if groups is None:
        return _folds(n, folds, rng)
    names = list(dict.fromkeys(groups))
    index = {g: k for k, g in enumerate(names)}
    of_row = np.asarray([index[g] for g in groups])
    return [np.flatnonzero(np.isin(of_row, f)) for f in _folds(len(names), folds, rng)]


def _ridge(x: np.ndarray, y: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Affine ridge fit y ~ x A^T + b (intercept unpenalized); alpha is relative to the mean
    squared norm of the centred inputs. Closed form in the smaller of the primal (d x d) and
    dual (n x n) systems: the same solution as sklearn's Ridge without its per-call overhead
    (hundreds of small fits per run)."""
    mx, my = x.mean(axis=0), y.mean(axis=0)
    xc, yc = x - mx, y - my
    lam = alpha * (float(np.mean(np.sum(xc**2, axis=1))) or 1.0)
    n, d = xc.shape
    if n <= d:
        a = (xc.T @ np.linalg.solve(xc @ xc.T + lam * np.eye(n), yc)).T
    else:
        a = np.linalg.solve(xc.T @ xc + lam * np.eye(d), xc.T @ yc).T
    return a, my - mx @ a.T


def _nearest(pred: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    d2 = (np.sum(pred**2, axis=1, keepdims=True) - 2 * pred @ candidates.T
          + np.sum(candidates**2, axis=1))
    return np.argmin(d2, axis=1)


def relational_linearity(
    inputs: Arrays,
    outputs: Arrays,
    objects: Mapping[str, Sequence[str]],
    inner_in: InnerProduct,
    inner_out: InnerProduct,
    alpha: float = 0.1,
    folds: int = 5,
    seed: int = 0,
    same_space: bool = False,
    subjects: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, LinearityStats]:
    """Ridge map from subject inputs to object outputs; held-out top-1 object retrieval.

    ``objects[r]`` are the object words of the pairs (rows of ``outputs[r]``); candidates
    are the relation's distinct objects; retrieval is by distance under ``inner_out``.
    ``subjects[r]`` (the pairs' subject words) makes a relation what researchers mean by
    one: a retrieved object is correct if it is any object listed for the subject, each
    subject counts once, chance is the mean fraction of candidates that are correct, and
    the folds keep all pairs of a subject together. With ``same_space`` (subjects and
    objects in one space, one inner product) the map is shrunk toward the identity,
    o = s + D s + b with a ridge penalty on D, so that heavy shrinkage gives the
    vector-offset method rather than the mean object.
    """
    _check(inputs, outputs, min_pairs=MIN_PAIRS)
    out: dict[str, LinearityStats] = {}
    for rel in inputs:
        rng = np.random.default_rng(seed)
        x, y = inner_in.apply(inputs[rel]), inner_out.apply(outputs[rel])
        labels = list(objects[rel])
        first = {w: labels.index(w) for w in dict.fromkeys(labels)}
        cands = y[np.asarray(list(first.values()))]
        column = {w: k for k, w in enumerate(first)}
        subs = None if subjects is None else list(subjects[rel])
        correct = np.zeros((len(labels), len(first)), dtype=bool)
        for i, w in enumerate(labels):
            correct[i, column[w]] = True
        weight = np.ones(len(labels))  # each subject counts once
        if subs is not None:
            by_subject: dict[str, list[int]] = {}
            for i, s_word in enumerate(subs):
                by_subject.setdefault(s_word, []).append(i)
            for rows in by_subject.values():
                correct[np.ix_(rows, [column[labels[i]] for i in rows])] = True
                weight[rows] = 1.0 / len(rows)
        n = x.shape[0]
        hit, shuffled, offset = np.zeros(n), np.zeros(n), np.zeros(n)
        prior = x if same_space else np.zeros_like(y)  # the map is prior + D x + b

        for test in grouped_folds(subs, n, folds, rng):
            train = np.setdiff1d(np.arange(n), test)
            a, b = _ridge(x[train], y[train] - prior[train], alpha)
            hit[test] = correct[test, _nearest(prior[test] + x[test] @ a.T + b, cands)]
            perm = train[_derangement(train.size, rng)] if train.size > 1 else train
            a, b = _ridge(x[train], y[perm] - prior[train], alpha)
            shuffled[test] = correct[test, _nearest(prior[test] + x[test] @ a.T + b, cands)]
            if same_space:
                shift = (y[train] - x[train]).mean(axis=0)
                offset[test] = correct[test, _nearest(x[test] + shift, cands)]
        top1 = float(np.average(hit, weights=weight))
        chance = float(np.average(correct.mean(axis=1), weights=weight))
        out[rel] = LinearityStats(
            n_pairs=n,
            n_candidates=len(first),
            top1=top1,
            chance=chance,
            shuffled=float(np.average(shuffled, weights=weight)),
            offset=float(np.average(offset, weights=weight)) if same_space else None,
            chance_corrected=(top1 - chance) / (1 - chance) if chance < 1 else float("nan"),
        )
    return out


# The membership probe's fit: converged in float64 to a gradient norm of 1e-10, so that
# its accuracy, which the theory calls invariant under the causal / whitened inner product,
# is the same number for every distribution-equivalent model (a capped float32 L-BFGS
# stopped at different points for rotated inputs and flipped held-out predictions).
PROBE_SETTINGS = LogisticSettings(max_iter=2000, tolerance_grad=1e-10, float64=True)


def _probe_accuracy(
    s: np.ndarray, o: np.ndarray, flip: np.ndarray, folds: int, c: float,
    rng: np.random.Generator, groups: Sequence[str] | None = None,
) -> float:
    """Held-out accuracy of "first or second member?" (both members of a pair, and all pairs
    of one of ``groups``, share a fold).

    The probe is :func:`convergent.probing.held_out_predictions`; ``c`` is the binary
    logistic-regression C on features scaled to unit total variance, which is the shared
    multinomial probe's C = c / (2 d) on its unit-per-dimension scale."""
    from convergent.probing import held_out_predictions

    n, d = s.shape
    first = np.where(flip[:, None], o, s)
    second = np.where(flip[:, None], s, o)
    fold_of = np.empty(n, dtype=np.int64)
    for k, test in enumerate(grouped_folds(groups, n, folds, rng)):
        fold_of[test] = k
    labels = np.r_[np.zeros(n, dtype=np.int64), np.ones(n, dtype=np.int64)]
    predicted = held_out_predictions(np.concatenate([first, second]), labels,
                                     np.r_[fold_of, fold_of],
                                     replace(PROBE_SETTINGS, C=c / (2 * d)))
    return float(np.mean(predicted == labels))


def probe_membership(
    subjects: Arrays, objects: Arrays, inner: InnerProduct, folds: int = 5, seed: int = 0,
    c: float = 1.0, flipped: bool = True, groups: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, ProbeStats]:
    """Logistic probe: is this word the object (target) or the subject (base) of the pair?

    ``flipped=False`` skips the flipped-label baseline (reported as NaN); ``groups[r]``
    (the pairs' subjects) keeps the pairs of one subject in one fold."""
    _check(subjects, objects, min_pairs=2)
    out: dict[str, ProbeStats] = {}
    for rel in subjects:
        rng = np.random.default_rng(seed)
        s, o = inner.apply(subjects[rel]), inner.apply(objects[rel])
        n = s.shape[0]
        rows = None if groups is None else groups[rel]
        acc = _probe_accuracy(s, o, np.zeros(n, dtype=bool), folds, c, rng, rows)
        flip = np.random.default_rng(seed + 1).random(n) < 0.5
        base = (_probe_accuracy(s, o, flip, folds, c, rng, rows) if flipped
                else float("nan"))
        out[rel] = ProbeStats(n_pairs=n, accuracy=acc, flipped=base)
    return out


def steering_final(
    f_subjects: Arrays, f_objects: Arrays, g_subjects: Arrays, g_objects: Arrays,
    folds: int = 5, seed: int = 0, randoms: int = 8,
    groups: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, SteeringStats]:
    """Steering on the last state f of a log-linear head: adding v to f changes
    log p(o) - log p(s) by exactly v . (g(o) - g(s)); v = mean train f(o) - f(s)."""
    _check(f_subjects, f_objects)
    names = list(f_subjects)
    full = {r: (f_objects[r] - f_subjects[r]).mean(axis=0) for r in names}
    out: dict[str, SteeringStats] = {}
    for rel in names:
        rng = np.random.default_rng(seed)
        df = f_objects[rel] - f_subjects[rel]
        dg = g_objects[rel] - g_subjects[rel]
        n = df.shape[0]
        delta, other, rand = np.zeros(n), np.zeros(n), np.zeros(n)
        rows = None if groups is None else groups[rel]
        for test in grouped_folds(rows, n, folds, rng):
            train = np.setdiff1d(np.arange(n), test)
            v = df[train].mean(axis=0) if train.size else np.zeros(df.shape[1])
            delta[test] = dg[test] @ v
            others = [full[r] for r in names if r != rel]
            other[test] = (dg[test] @ np.stack(others).T).mean(axis=1) if others else np.nan
            noise = unit_rows(rng.standard_normal((randoms, v.size))) * np.linalg.norm(v)
            rand[test] = (dg[test] @ noise.T).mean(axis=1)
        out[rel] = SteeringStats(n_pairs=n, delta=float(delta.mean()),
                                 other=float(np.mean(other)), random=float(rand.mean()))
    return out
