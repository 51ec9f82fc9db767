"""Simulator throughput (samples per minute), against references measured in the same run.

References: (1) a per-sample Python loop drawing the same model (what a straightforward
implementation does), (2) numpy drawing only the uniform numbers the simulator consumes (a
lower bound on any sampler using numpy's generator).
Run: .venv/bin/python benchmarks/bench_origins.py
"""

from __future__ import annotations

import time

import numpy as np

from convergent.origins.simulator import Simulator
from convergent.origins.structure import ConceptStructure, chain, independent


def _loop_sampler(sim: Simulator, n: int, seed: int) -> None:
    """The same model, one sample at a time in Python."""
    rng = np.random.default_rng(seed)
    st = sim.structure
    for _ in range(n):
        c = [0] * st.m
        for i in st.order:
            idx = 0
            for p in st.parents[i]:
                idx = idx * 2 + c[p]
            c[i] = int(rng.random() < st.p_one[i][idx])
        ctx, tok = 0, 0
        for i in range(st.m):
            tok += c[i] << i
            if rng.random() < sim.reveal[i]:
                shown = c[i] ^ int(rng.random() < sim.noise)
                ctx += (1 + shown) * 3**i


def _best(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def _dag(m: int) -> ConceptStructure:
    """Each concept depends on the two before it."""
    rng = np.random.default_rng(0)
    parents = tuple(tuple(range(max(0, i - 2), i)) for i in range(m))
    tables = tuple(rng.uniform(0.1, 0.9, size=2 ** len(p)) for p in parents)
    return ConceptStructure(tuple(f"c{i}" for i in range(m)), parents, tables)


def main() -> None:
    n, n_loop = 2_000_000, 20_000
    print(f"{'structure':<22} {'samples/min':>14} {'vs loop':>9} {'vs raw rng':>11}")
    for label, structure in (
        ("independent m=6", independent(6)),
        ("chain m=6", chain(6)),
        ("dag m=6 (2 parents)", _dag(6)),
        ("independent m=20", independent(20)),
    ):
        sim = Simulator.make(structure, reveal=0.5, noise=0.1)
        t_sim = _best(lambda sim=sim: sim.sample(n, seed=0))
        t_loop = _best(lambda sim=sim: _loop_sampler(sim, n_loop, 0), repeats=1) * n / n_loop
        rng = np.random.default_rng(0)
        t_raw = _best(lambda s=structure, rng=rng: rng.random((n, 3 * s.m)))
        print(
            f"{label:<22} {n / t_sim * 60:>14,.0f} {t_loop / t_sim:>8.0f}x {t_raw / t_sim:>10.2f}x"
        )


if __name__ == "__main__":
    main()
