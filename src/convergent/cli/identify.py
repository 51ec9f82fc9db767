"""``convergent identify``: which linear statistics every distribution-equivalent
next-token predictor shares (Marconato et al. 2025)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from convergent.cli._checks import positive


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "identify",
        help="check which linear statistics are invariant under f -> M f, g -> M^-T g + c",
        description="Writes identify.json and identify.png/.svg to --out.",
    )
    p.add_argument("source", metavar="SOURCE",
                   help="a causal LM (smollm2-135m, hf:ID_OR_DIR, a model folder) or run:DIR")
    p.add_argument("--pairs", default="google-analogy",
                   help="google-analogy (default), or a pairs file or folder in any format "
                   "`convergent linearity` reads (TSV, Park, BATS, LRE JSON)")
    p.add_argument("--pairs-format", default=None,
                   choices=["tsv", "park", "bats", "lre", "contexts"],
                   help="the pairs' format (default: detected from the file)")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--samples", type=positive, default=3, help="equivalent models (default 3)")
    p.add_argument("--condition", type=float, default=10.0,
                   help="condition number of the random M (default 10)")
    p.add_argument("--null-scale", type=float, default=1.0,
                   help="size of the null-space components when diversity fails (0: none)")
    p.add_argument("--max-pairs", type=positive, default=None,
                   help="keep at most this many pairs per relation")
    p.add_argument("--tol", type=float, default=1e-6,
                   help="a statistic is invariant when it changes by at most this")
    p.add_argument("--rank-tol", type=float, default=1e-6,
                   help="relative singular-value threshold of the numerical rank")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from convergent.errors import ConvergentError
    from convergent.io import staged_folder, write_json_atomic
    from convergent.linearity.figures import plot_identify
    from convergent.linearity.identify import identify
    from convergent.linearity.open import is_word_vectors, open_target
    from convergent.linearity.pairs import load_pairs
    from convergent.locking import folder_lock

    if not args.condition >= 1:
        raise ConvergentError(f"--condition {args.condition}: a condition number is at least 1")
    if not (args.tol >= 0 and args.rank_tol >= 0 and args.null_scale >= 0):
        raise ConvergentError("--tol, --rank-tol and --null-scale must be >= 0")
    pairs = load_pairs(args.pairs, fmt=args.pairs_format)  # small relations are dropped later
    out = args.out
    with folder_lock(out, what="convergent identify"):
        target = open_target(args.source)
        if is_word_vectors(target):
            raise ConvergentError(
                f"{args.source}: static word vectors have no unembedding or next-token "
                "distribution, so identify does not apply; run `convergent linearity` (its "
                "JSON lists which identifiability statements hold for word vectors)"
            )
        result = identify(target, pairs, samples=args.samples, seed=args.seed,
                          condition=args.condition, null_scale=args.null_scale, tol=args.tol,
                          rel_tol=args.rank_tol, max_pairs=args.max_pairs)
        with staged_folder(out) as stage:
            write_json_atomic(stage / "identify.json", result.to_dict())
            plot_identify(result, [stage / "identify.png", stage / "identify.svg"])
    c = result.complexity
    print(f"{result.source}: d={c.dim}, rank of pivoted unembedding {c.rank_unembedding}, "
          f"rank of contexts {c.rank_contexts} ({c.n_contexts} contexts); diversity "
          f"{'holds' if c.diversity else 'fails'}; max KL {max(result.max_kl):.2e}")
    for row in result.table:
        verdict = "invariant" if row.invariant else "DEPENDS"
        print(f"  {row.statistic:48s} {row.value:9.4f}  max|change| {row.max_abs_change:8.1e}"
              f"  {verdict:9s} (theory: {row.expected})")
    for note in result.notes:
        print(f"  note: {note}")
    print(f"wrote {out / 'identify.json'}")
    return 0
