"""``convergent linearity``: parallelism, relational linearity, probing and steering of
concept pairs under the Euclidean, causal and a random inner product."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from convergent.cli._checks import at_least, non_negative_float, positive
from convergent.linearity.pairs import MIN_PAIRS
from convergent.linearity.readers import FORMATS


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "linearity",
        help="linear properties of relations (parallel differences, relation maps, probes, "
        "steering) under Euclidean, causal and random inner products",
        description="Writes linearity.json, linearity_relations.png/.svg and "
        "linearity_directions.png/.svg to --out.",
    )
    p.add_argument("source", metavar="SOURCE",
                   help="glove-6b-50d, smollm2-135m, a word-vector file, hf:ID_OR_DIR, "
                   "run:DIR, a model folder")
    p.add_argument("--pairs", default="google-analogy",
                   help="google-analogy (default), or a pairs file or folder: TSV/JSONL of "
                   "subject, object, relation; Park-style word_pairs (two columns, relation = "
                   "file name); a BATS folder; LRE relation JSON; Park's paired-contexts JSONL")
    p.add_argument("--pairs-format", choices=list(FORMATS), default=None,
                   help="the format of --pairs (detected from the file when not given)")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--site", default="final",
                   help="models: subject representation f, 'final' (input of the "
                   "unembedding, default), 'unembed' (its unembedding row) or layer.K")
    p.add_argument("--tokens", choices=["single", "last", "mean"], default="single",
                   help="models: keep single-token words (default) or use the last token / "
                   "mean of tokens")
    p.add_argument("--steer-layer", type=at_least(0), default=None,
                   help="models: also steer at the residual stream after block K")
    p.add_argument("--prompt", choices=["relation"], default=None,
                   help="models, with --site layer.K: read each subject inside its relation's "
                   "own prompt_templates (LRE files) at its last token, as LRE does")
    p.add_argument("--template", action="append", default=None,
                   help="models, with --site layer.K: read subjects inside this template "
                   "('{}' = the subject; repeat for several, states are averaged)")
    p.add_argument("--max-pairs", type=positive, default=None,
                   help="keep at most this many pairs per relation (file order)")
    p.add_argument("--min-pairs", type=int, default=MIN_PAIRS,
                   help=f"drop relations with fewer pairs after filtering (default and "
                   f"least {MIN_PAIRS})")
    p.add_argument("--alpha", type=non_negative_float, default=0.1,
                   help="relative ridge penalty (0.1)")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from convergent.errors import ConvergentError
    from convergent.linearity.pairs import check_min_pairs, load_pairs
    from convergent.locking import folder_lock

    if args.folds < 2:
        raise ConvergentError(f"--folds {args.folds}: need at least 2")
    check_min_pairs(args.min_pairs)
    if args.max_pairs is not None and args.max_pairs < args.min_pairs:
        raise ConvergentError(f"--max-pairs {args.max_pairs}: below --min-pairs "
                              f"{args.min_pairs}, no relation could be kept")
    pairs = load_pairs(args.pairs, fmt=args.pairs_format)
    contextual = args.prompt is not None or args.template is not None
    if contextual:
        from convergent.linearity.contexts import relation_templates

        if not args.site.replace(":", ".").startswith("layer."):
            raise ConvergentError("--prompt/--template read subjects at a layer: give "
                                  "--site layer.K")
        relation_templates(pairs, args.template)  # checked before the model loads
    with folder_lock(args.out, what="convergent linearity"):
        return _run(args, pairs, contextual)


def _run(args: argparse.Namespace, pairs: Any, contextual: bool) -> int:
    from convergent.errors import ConvergentError
    from convergent.io import staged_folder, write_json_atomic
    from convergent.linearity.analyze import analyze_linearity
    from convergent.linearity.figures import plot_directions, plot_relations
    from convergent.linearity.open import is_word_vectors, open_target
    from convergent.linearity.space import parse_site, predictor_space, static_space

    target = open_target(args.source)
    steering = None
    if is_word_vectors(target):
        if (args.site != "final" or args.steer_layer is not None or args.tokens != "single"
                or contextual):
            raise ConvergentError(
                f"{args.source}: word vectors have no sites, tokens, templates or layers "
                "to steer"
            )
        space, report = static_space(target, pairs, args.min_pairs, args.max_pairs)
    else:
        if contextual:
            from convergent.linearity.contexts import context_space

            space, report = context_space(target, pairs, parse_site(args.site, target),
                                          args.template, args.min_pairs, args.max_pairs)
        else:
            space, report = predictor_space(target, pairs, args.site, args.tokens,
                                            args.min_pairs, args.max_pairs)
        if args.steer_layer is not None:
            from convergent.linearity.steer import neutral_contexts, steering_layer

            steering = steering_layer(target, space.pairs, args.steer_layer,
                                      neutral_contexts(target), args.seed)
    print(f"{args.source}: {report.summary()}")
    result = analyze_linearity(space, report, args.seed, args.alpha, args.folds, steering)
    with staged_folder(args.out) as out:
        write_json_atomic(out / "linearity.json",
                          {**result.to_dict(), "summary": result.summary()})
        plot_relations(result, [out / "linearity_relations.png",
                                out / "linearity_relations.svg"])
        plot_directions(result, [out / "linearity_directions.png",
                                 out / "linearity_directions.svg"])
    for key, vals in result.summary().items():
        print(f"  {key:10s} " + "  ".join(f"{k}={v:.3f}" for k, v in vals.items()))
    for note in result.identifiability:
        print(f"  identifiability: {note}")
    print(f"wrote {args.out / 'linearity.json'}")
    return 0
