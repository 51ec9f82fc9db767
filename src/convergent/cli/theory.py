"""``convergent theory``: Theorem 1's construction, same Phi_T and opposite separability."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from convergent.cli._checks import at_least, non_negative_float, positive


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "theory",
        help="Theorem 1: Fourier sparsity is necessary but not sufficient",
        description="e(n) = A (n mod T) + B floor(n/T): two choices of B with the same Phi_T, "
        "one perfectly separable, one at chance. Writes theory.json, theory.png, theory.svg.",
    )
    p.add_argument("--period", type=at_least(2), default=10)
    p.add_argument("--n", type=positive, default=1000, help="numbers 0..n-1 (default 1000)")
    p.add_argument("--a", type=float, default=5.0)
    p.add_argument("--b-small", type=float, default=0.03)
    p.add_argument("--b-large", type=float, default=31.0)
    p.add_argument("--dim", type=positive, default=1, help="embed the line in this many dimensions")
    p.add_argument("--noise", type=non_negative_float, default=0.0,
                   help="isotropic noise when --dim > 1")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, type=Path)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from convergent.io import staged_folder, write_json_atomic
    from convergent.locking import folder_lock
    from convergent.numbers.theory import demonstrate
    from convergent.report.theory import plot_theory

    with folder_lock(args.out, what="convergent theory"):
        demo = demonstrate(
            period=args.period,
            n=args.n,
            a=args.a,
            b_small=args.b_small,
            b_large=args.b_large,
            dim=args.dim,
            noise=args.noise,
            seed=args.seed,
        )
        spectra = [a.spectrum.to_dict() for a in demo.analyses]
        with staged_folder(args.out) as stage:
            plot_theory(demo.to_dict(), spectra, [stage / "theory.png", stage / "theory.svg"])
            write_json_atomic(stage / "theory.json", demo.to_dict())
    t = demo.period
    print(f"Theorem 1 construction, N={demo.n}, T={t}, dim={demo.dim}, noise={demo.noise:g}")
    print(
        f"{'case':<18} {'Phi_T':>12} {'best linear':>12} {'probe acc':>10} {'kappa':>7} "
        f"{'lambda_max':>11}"
    )
    for case in (demo.separable, demo.inseparable):
        print(
            f"A={case.a:g}, B={case.b:<10g} {case.phi:>12.6g} {case.best_linear_accuracy:>11.1f}%"
            f" {case.probe_accuracy:>9.1f}% {case.probe_kappa:>7.1f} {case.lambda_max:>11.4g}"
        )
    print(f"chance: {100 / t:.1f}%   wrote {args.out / 'theory.png'}")
    return 0
