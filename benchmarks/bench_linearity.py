"""Our small fitters against scikit-learn, in the same run (one BLAS thread, as analyses use).

    .venv/bin/python benchmarks/bench_linearity.py

Prints per-fit times and the ratio sklearn / ours (> 1: ours faster), and the largest
coefficient difference (the two must agree: same objective).
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

    from convergent.linearity.properties import _logistic_fit, _ridge, small_blas

    rng = np.random.default_rng(0)
    print(f"{'fit':10s} {'n x d':>10s} {'ours ms':>9s} {'sklearn ms':>11s} {'ratio':>6s} "
          f"{'max |coef diff|':>16s}")
    with small_blas():
        for n, d in ((24, 6), (60, 50), (180, 50), (180, 576)):
            x = rng.standard_normal((n, d)) + 0.2
            y = (x[:, 0] + rng.standard_normal(n) > 0).astype(float)
            ours = _time(lambda x=x, y=y: _logistic_fit(x, y, 1.0), 10)
            ref = _time(lambda x=x, y=y: LogisticRegression(C=1.0, max_iter=2000).fit(x, y), 10)
            w, _ = _logistic_fit(x, y, 1.0)
            sk = LogisticRegression(C=1.0, max_iter=10000, tol=1e-10).fit(x, y)
            diff = np.abs(sk.coef_[0] - w).max()
            print(f"{'logistic':10s} {f'{n}x{d}':>10s} {1e3 * ours:9.2f} {1e3 * ref:11.2f} "
                  f"{ref / ours:6.2f} {diff:16.2e}")
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
