"""Our small fitters against scikit-learn, in the same run (one BLAS thread, as analyses use).

    .venv/bin/python benchmarks/bench_linearity.py

Prints times and the ratio sklearn / ours (> 1: ours faster). Ridge: one fit, and the
largest coefficient difference (same objective). Probe: the whole cross-validated
"subject or object?" probe of ``probe_test`` (5 folds; ours is the shared
``convergent.probing`` solver) against scikit-learn's LogisticRegression on the same folds
and scaling, and the difference in held-out accuracy.
"""

from __future__ import annotations

import time

import numpy as np


def _time(fn, repeat: int) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat


def main() -> None:
    from sklearn.linear_model import LogisticRegression, Ridge

    from convergent.linearity.properties import _folds, _probe_accuracy, _ridge, small_blas

    def sklearn_probe(s, o, folds, c, rng):
        n = s.shape[0]
        correct = 0
        for test in _folds(n, folds, rng):
            train = np.setdiff1d(np.arange(n), test)
            x = np.concatenate([s[train], o[train]])
            mean = np.concatenate([s, o]).mean(0)
            scale = float(np.sqrt(np.mean(np.sum((np.concatenate([s, o]) - mean) ** 2, 1))))
            y = np.r_[np.zeros(train.size), np.ones(train.size)]
            fit = LogisticRegression(C=c, max_iter=2000).fit((x - mean) / scale, y)
            pred = fit.predict((np.concatenate([s[test], o[test]]) - mean) / scale)
            correct += int(np.sum(pred == np.r_[np.zeros(test.size), np.ones(test.size)]))
        return correct / (2 * n)

    rng = np.random.default_rng(0)
    print(f"{'fit':10s} {'n x d':>10s} {'ours ms':>9s} {'sklearn ms':>11s} {'ratio':>6s} "
          f"{'max |coef diff|':>16s}")
    with small_blas():
        for n, d in ((24, 6), (60, 50), (180, 50), (180, 576)):
            subjects = rng.standard_normal((n, d))
            objects = subjects + 0.3 * rng.standard_normal(d) + rng.standard_normal((n, d))
            no_flip = np.zeros(n, dtype=bool)

            def ours_fn(a=subjects, b=objects, f=no_flip):
                return _probe_accuracy(a, b, f, 5, 1.0, np.random.default_rng(0))

            def ref_fn(a=subjects, b=objects):
                return sklearn_probe(a, b, 5, 1.0, np.random.default_rng(0))

            ours, ref = _time(ours_fn, 3), _time(ref_fn, 3)
            diff = abs(ours_fn() - ref_fn())
            print(f"{'probe':10s} {f'{n}x{d}':>10s} {1e3 * ours:9.2f} {1e3 * ref:11.2f} "
                  f"{ref / ours:6.2f} {diff:16.2e}  (|accuracy diff|)")
            x = subjects
            t = rng.standard_normal((n, d))
            lam = 0.1 * float(np.mean(np.sum((x - x.mean(0)) ** 2, axis=1)))
            ours = _time(lambda x=x, t=t: _ridge(x, t, 0.1), 20)
            ref = _time(lambda x=x, t=t, lam=lam: Ridge(alpha=lam).fit(x, t), 20)
            a, _ = _ridge(x, t, 0.1)
            diff = np.abs(Ridge(alpha=lam).fit(x, t).coef_ - a).max()
            print(f"{'ridge':10s} {f'{n}x{d}':>10s} {1e3 * ours:9.2f} {1e3 * ref:11.2f} "
                  f"{ref / ours:6.2f} {diff:16.2e}")


if __name__ == "__main__":
    main()
