"""Benchmark: analyze_numbers versus the scikit-learn probe reference, measured in one run.

Times the whole analysis (spectrum, Phi_T with 200 permutations, 9 moduli x 5 folds of
probes, Fisher) on a 1000 x 4096 matrix and on GloVe 50-d, and scikit-learn's
LogisticRegression(C=1) cross-validation over the same features and folds; prints both, their
ratio and the largest kappa difference. Absolute times vary with the machine's load; the
ratio is what to compare.

    .venv/bin/python benchmarks/bench_numbers.py [--repeats 3] [--skip-glove]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from convergent import analyze_numbers
from convergent.numbers.probe import fold_assignments, probe_features
from convergent.probing.folds import cohen_kappa

MODULI = list(range(2, 11))


def wide_matrix(n: int = 1000, dim: int = 4096, seed: int = 0) -> np.ndarray:
    """Planted periodic features (T = 2, 5, 10) in a 4096-d space with decaying noise."""
    rng = np.random.default_rng(seed)
    numbers = np.arange(n)
    scales = 1.0 / np.sqrt(1 + np.arange(dim) / 64)
    values = rng.standard_normal((n, dim)) * scales
    for period, amplitude in ((2, 2.0), (5, 1.5), (10, 1.5)):
        for harmonic in range(1, period // 2 + 1):
            angle = 2 * np.pi * harmonic * numbers / period
            for wave in (np.cos(angle), np.sin(angle)):
                direction = rng.standard_normal(dim)
                values += amplitude * np.outer(wave, direction / np.linalg.norm(direction))
    return values


def sklearn_cv(values: np.ndarray, numbers: np.ndarray) -> dict[int, float]:
    from sklearn.linear_model import LogisticRegression

    features = probe_features(values)
    assignments = fold_assignments(numbers, MODULI, 5, 0)
    kappas = {}
    for t in MODULI:
        truth = numbers % t
        predicted = np.empty_like(truth)
        for fold in range(5):
            train = assignments[t] != fold
            model = LogisticRegression(C=1.0, max_iter=1000).fit(features[train], truth[train])
            predicted[~train] = model.predict(features[~train])
        kappas[t] = 100 * cohen_kappa(truth, predicted, t)
    return kappas


def measure(name: str, values: np.ndarray, repeats: int) -> dict[str, object]:
    numbers = np.arange(values.shape[0])
    analyze_numbers(values, numbers, MODULI)  # warm-up (imports, thread pools)
    ours = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = analyze_numbers(values, numbers, MODULI)
        ours.append(time.perf_counter() - start)
    start = time.perf_counter()
    reference = sklearn_cv(values, numbers)
    ref_time = time.perf_counter() - start
    gap = max(abs(result.periods[t].kappa - reference[t]) for t in MODULI)
    return {"name": name, "shape": values.shape, "ours": min(ours), "sklearn": ref_time,
            "ratio": ref_time / min(ours), "gap": gap}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-glove", action="store_true")
    args = parser.parse_args()
    rows = [measure("planted 1000x4096", wide_matrix(), args.repeats)]
    if not args.skip_glove:
        from convergent.sources import open_source, require_numbers

        rep = open_source("glove-6b-50d").number_representations(range(1000), ["embed"])[0]
        rows.append(measure("GloVe 6B 50-d", require_numbers(rep, range(1000)).values,
                            args.repeats))
    print("| matrix | analyze_numbers (all) | sklearn probes only | speed-up | max kappa gap |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['name']} | {r['ours']:.2f} s | {r['sklearn']:.2f} s | {r['ratio']:.1f}x | "
              f"{r['gap']:.2f} |")


if __name__ == "__main__":
    main()
