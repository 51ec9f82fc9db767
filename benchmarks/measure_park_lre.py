"""Park's and LRE's experiments on SmolLM2-135M with the peers' published data.

    .venv/bin/python benchmarks/measure_park_lre.py --peer ../shared/peer-data --out /tmp/park_lre

Writes park_lre.json and prints: causal orthogonality of Park's 27 concepts (mean off-diagonal
|cos| under Euclidean, causal, our random and Park's random metric), the random-token-pair
baseline, the steering comparison (Park's dual direction vs ours at f(x)), the measurement
experiment on the four paired-context files, and LRE's relations read in their prompt
templates after a middle block (top-1 against chance).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

#: paired-context file -> Park concept (lang0 -> lang1; es-de runs against German -> Spanish)
MATCH = {"en-fr": ("[English - French]", 1), "fr-de": ("[French - German]", 1),
         "fr-es": ("[French - Spanish]", 1), "es-de": ("[German - Spanish]", -1)}


def park(pred, peer: Path, n_contexts: int, seed: int) -> dict:
    from convergent.linearity.controls import (
        compare_steering,
        orthogonality,
        random_pair_baseline,
        summarize,
    )
    from convergent.linearity.inner import euclidean, park_random_inner, random_inner, whitening
    from convergent.linearity.measurement import context_sets, measure
    from convergent.linearity.properties import concept_directions
    from convergent.linearity.readers import read_pairs
    from convergent.linearity.space import predictor_space
    from convergent.linearity.steer import neutral_contexts

    root = peer / "park-linear-rep-geometry"
    space, report = predictor_space(pred, read_pairs(root / "word_pairs"), "final", "single")
    print(f"park: {report.summary()}")
    g = pred.g()
    d = g.shape[1]
    causal = whitening(g)
    inners = {"euclidean": euclidean(d), "causal": causal, "random": random_inner(d, seed),
              "park_random": park_random_inner(d, seed)}
    out: dict = {"concepts": len(space.pairs.relations)}
    out["orthogonality"] = {k: orthogonality(concept_directions(space.g_sub, space.g_obj, ip))
                            for k, ip in inners.items()}
    out["random_pairs"] = {k: summarize(random_pair_baseline(g, space.g_sub, space.g_obj, ip,
                                                             seed=seed))
                           for k, ip in inners.items() if k in ("euclidean", "causal")}
    t = time.perf_counter()
    steer = compare_steering(pred, space, causal, neutral_contexts(pred), seed)
    out["steering"] = {"mean": summarize(steer), "per_concept": {r: s.to_dict()
                                                                 for r, s in steer.items()}}
    print(f"steering: {time.perf_counter() - t:.0f} s")
    diffs = {r: (space.g_obj[r] - space.g_sub[r]).mean(axis=0) for r in space.pairs.relations}
    contexts = read_pairs(root / "paired_contexts")
    rng = np.random.default_rng(seed)
    out["measurement"] = {}
    for rel, (concept, sign) in MATCH.items():
        if concept not in diffs:  # too few single-token pairs in SmolLM2's vocabulary
            out["measurement"][rel] = {"concept": concept, "dropped": True}
            continue
        c0, c1 = context_sets(contexts, rel)
        c0 = [c0[i] for i in sorted(rng.permutation(len(c0))[:n_contexts])]
        c1 = [c1[i] for i in sorted(rng.permutation(len(c1))[:n_contexts])]
        t = time.perf_counter()
        res = measure(pred, diffs, causal, c0, c1, rel)
        match = res.concepts[concept]
        others = [abs(s.separation) for r, s in res.concepts.items() if r != concept]
        out["measurement"][rel] = {
            "concept": concept, "sign": sign, "n": [res.n0, res.n1],
            "separation": match.separation, "auc": match.auc,
            "others_abs_separation_mean": float(np.mean(others)),
            "others_abs_separation_max": float(np.max(others)),
            "others_max_concept": max((r for r in res.concepts if r != concept),
                                      key=lambda r: abs(res.concepts[r].separation)),
        }
        print(f"measurement {rel}: {time.perf_counter() - t:.0f} s")
    return out


def lre(pred, peer: Path, layer: int, max_pairs: int, seed: int) -> dict:
    from convergent.linearity.analyze import analyze_linearity
    from convergent.linearity.contexts import context_space
    from convergent.linearity.readers import read_pairs

    t = time.perf_counter()
    pairs = read_pairs(peer / "lre-relations" / "data")
    space, report = context_space(pred, pairs, layer, min_pairs=5, max_pairs=max_pairs)
    print(f"lre: {report.summary()} ({time.perf_counter() - t:.0f} s)")
    result = analyze_linearity(space, report, seed=seed, folds=5)
    rows = {}
    for rel in result.relations:
        lin = rel.linearity["causal"]
        rows[rel.relation] = {"n_pairs": rel.n_pairs, "top1": lin.top1, "chance": lin.chance,
                              "euclidean_top1": rel.linearity["euclidean"].top1}
    above = sum(r["top1"] > 2 * r["chance"] for r in rows.values())
    return {"layer": layer, "max_pairs": max_pairs, "relations": len(rows),
            "mean_top1": float(np.mean([r["top1"] for r in rows.values()])),
            "mean_chance": float(np.mean([r["chance"] for r in rows.values()])),
            "above_twice_chance": above, "per_relation": rows,
            "filter": report.to_dict()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--peer", type=Path, default=Path("../shared/peer-data"))
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--source", default="smollm2-135m")
    ap.add_argument("--layer", type=int, default=15)
    ap.add_argument("--max-pairs", type=int, default=60)
    ap.add_argument("--contexts", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", choices=["park", "lre"], default=None)
    args = ap.parse_args()
    from convergent.io import write_json_atomic
    from convergent.linearity.open import open_target

    t = time.perf_counter()
    pred = open_target(args.source)
    print(f"loaded {args.source}: {time.perf_counter() - t:.0f} s")
    out: dict = {"source": args.source, "seed": args.seed}
    if args.only in (None, "park"):
        out["park"] = park(pred, args.peer, args.contexts, args.seed)
    if args.only in (None, "lre"):
        out["lre"] = lre(pred, args.peer, args.layer, args.max_pairs, args.seed)
    write_json_atomic(args.out / "park_lre.json", out)
    for key in ("park", "lre"):
        if key in out:
            shown = {k: v for k, v in out[key].items() if k not in ("per_relation", "filter")}
            if "steering" in shown:
                shown["steering"] = shown["steering"]["mean"]
            print(key, shown)


if __name__ == "__main__":
    main()
