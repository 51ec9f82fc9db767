"""``convergent origins``: watch linear concept representations emerge in next-token training."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from convergent.cli._checks import non_negative_float, positive
from convergent.errors import ConvergentError

DEFAULT_LM = "smollm2-135m"


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "origins",
        help="simulate the latent-concept model and train next-token models on it",
        description=(
            "Train a next-token model on the latent-concept model of Jiang et al. (2024) and "
            "measure, over training, within-concept parallelism, between-concept orthogonality "
            "(Euclidean and causal inner product), embedding/unembedding alignment and concept "
            "probes. Writes results.json, weights.safetensors and evolution/cosines figures (PNG "
            "and SVG) to --out; --sweep writes sweep.json and sweep.png/.svg. See "
            "docs/origins.md."
        ),
    )
    sim = p.add_argument_group("simulation")
    sim.add_argument("--concepts", type=positive, default=None, help="number m of concepts (6)")
    sim.add_argument(
        "--structure",
        default="independent",
        help="independent, chain, or a JSON/TOML file describing a DAG (default independent)",
    )
    sim.add_argument(
        "--coupling",
        type=float,
        default=0.8,
        help="correlation of neighbours in a chain (default 0.8)",
    )
    sim.add_argument(
        "--reveal",
        default="0.5",
        help="probability a context reveals a concept: one number or one per "
        "concept, comma-separated (default 0.5)",
    )
    sim.add_argument(
        "--noise",
        type=non_negative_float,
        default=0.1,
        help="probability a revealed value is shown flipped (default 0.1; 0 = "
        "contradicting tokens have probability 0)",
    )
    sim.add_argument(
        "--samples",
        type=positive,
        default=None,
        help="train on N simulated samples (default: the exact distribution)",
    )
    train = p.add_argument_group("training")
    train.add_argument("--model", choices=("loglinear", "neural"), default="loglinear")
    train.add_argument("--dim", type=positive, default=32, help="representation dimension d")
    train.add_argument("--hidden", type=positive, default=64, help="hidden width of --model neural")
    train.add_argument("--optimizer", choices=("gd", "sgd", "adam", "muon"), default="gd")
    train.add_argument(
        "--lr", type=float, default=None, help="learning rate (per-optimizer default)"
    )
    train.add_argument(
        "--batch-size",
        type=positive,
        default=None,
        help="minibatch size (default full batch; 512 for sgd)",
    )
    train.add_argument("--steps", type=positive, default=1000)
    train.add_argument("--init-scale", type=float, default=0.01)
    train.add_argument("--weight-decay", type=float, default=0.0)
    train.add_argument("--checkpoints", type=positive, default=30, help="number of measurements")
    train.add_argument("--seed", type=int, default=0)
    sweep = p.add_argument_group("sweep")
    sweep.add_argument(
        "--sweep",
        action="store_true",
        help="run every optimizer x dimension and draw one comparison figure",
    )
    sweep.add_argument("--optimizers", default="gd,sgd,adam,muon")
    sweep.add_argument("--dims", default="2,4,8,16,32")
    lm = p.add_argument_group("real LM")
    lm.add_argument(
        "--compare-lm",
        nargs="?",
        const=DEFAULT_LM,
        default=None,
        metavar="SPEC",
        help=f"measure the same concept metrics on an LM's unembedding (default {DEFAULT_LM}; "
        "without this flag the bundled model is used when installed, and skipped with a note "
        "when not)",
    )
    lm.add_argument("--no-compare-lm", action="store_true", help="skip the real-LM comparison")
    lm.add_argument(
        "--pairs",
        default="google-analogy",
        help="concept pairs for --compare-lm: google-analogy (gensim's questions-words.txt, "
        "the default) or a TSV/JSONL pairs file",
    )
    lm.add_argument(
        "--alignment",
        action="store_true",
        help="also measure the alignment of each concept's input-embedding and unembedding "
        "directions in the --compare-lm model (Jiang et al.; an untied model: a run folder, "
        "word2vec/PPMI word vs context vectors, or an HF LM; a tied model is reported as "
        "degenerate, not scored)",
    )
    lm.add_argument(
        "--null-pool",
        choices=("vocabulary", "concept-words"),
        default="vocabulary",
        help="random token pairs of --alignment's null: the whole vocabulary (default) or "
        "the concept pairs' own words",
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from convergent.locking import folder_lock
    from convergent.origins.simulator import Simulator
    from convergent.origins.training import TrainConfig, resolve

    out = Path(args.out)
    sim = Simulator.make(_structure(args), _floats(args.reveal, "--reveal"), args.noise)
    config = TrainConfig(
        model=args.model,
        dim=args.dim,
        optimizer=args.optimizer,
        lr=args.lr,
        steps=args.steps,
        batch_size=args.batch_size,
        samples=args.samples,
        init_scale=args.init_scale,
        hidden=args.hidden,
        weight_decay=args.weight_decay,
        checkpoints=args.checkpoints,
        seed=args.seed,
    )
    # every input is checked before the (slow) LM comparison and training start
    if args.alignment and args.no_compare_lm:
        raise ConvergentError("--alignment measures the --compare-lm model: drop --no-compare-lm")
    if args.sweep:
        if args.lr is not None:
            raise ConvergentError("--lr does not apply to --sweep: each optimizer uses its default")
        dims = [int(d) for d in _floats(args.dims, "--dims")]
    else:
        dims = []
        resolve(config, sim)
    with folder_lock(out, what="convergent origins"):
        return _run(args, out, sim, config, dims)


def _run(args: argparse.Namespace, out: Path, sim: Any, config: Any, dims: list[int]) -> int:
    from dataclasses import replace

    from convergent.io import staged_folder, write_json_atomic
    from convergent.origins import figures

    progress = not args.no_progress
    lm, alignment = _compare_lm(args)
    if args.sweep:
        from convergent.origins.sweep import run_sweep

        result = run_sweep(
            sim,
            replace(config, optimizer="gd"),
            args.optimizers.split(","),
            dims,
            out,
            progress=progress,
        )
        data = {**result.to_dict(), **_lm_records(lm, alignment)}
        with staged_folder(out) as stage:
            write_json_atomic(stage / "sweep.json", data)
            _save_figure(figures.sweep_figure(result.records, lm), stage / "sweep.png")
        print(_sweep_table(result.records))
        _print_alignment(alignment)
        print(f"wrote {out / 'sweep.json'} and {out / 'sweep.png'}")
        return 0
    from convergent.origins.state import clear_state
    from convergent.origins.training import train

    result_run = train(sim, config, state_dir=out, progress=progress)
    data = {**result_run.to_dict(), **_lm_records(lm, alignment)}
    with staged_folder(out) as stage:
        _save_weights(result_run, stage / "weights.safetensors")
        write_json_atomic(stage / "results.json", data)
        _save_figure(figures.evolution_figure(result_run), stage / "evolution.png")
        _save_figure(figures.cosine_figure(result_run, lm), stage / "cosines.png")
    clear_state(out)
    print(_run_line("simulation", data["final"]["summary"]))
    if lm is not None:
        print(_run_line(lm.source, data["lm"]["summary"]))
    _print_alignment(alignment)
    print(f"wrote {out / 'results.json'}, {out / 'evolution.png'} and {out / 'cosines.png'}")
    return 0


def _save_figure(figure: Any, png: Path) -> None:
    """``png`` and the same figure as SVG beside it."""
    from convergent.io import write_bytes_atomic
    from convergent.origins.figures import save_figure

    save_figure(figure, png)
    write_bytes_atomic(png.with_suffix(".svg"), lambda h: figure.savefig(h, format="svg"))


def _structure(args: argparse.Namespace) -> Any:
    from convergent.origins import structure as st

    m = 6 if args.concepts is None else args.concepts
    if args.structure == "independent":
        return st.independent(m)
    if args.structure == "chain":
        return st.chain(m, coupling=args.coupling)
    loaded = st.load_structure(args.structure)
    if args.concepts is not None and args.concepts != loaded.m:
        raise ConvergentError(
            f"--concepts {args.concepts} disagrees with {args.structure} ({loaded.m} concepts)"
        )
    return loaded


def _floats(text: str, flag: str) -> float | list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConvergentError(f"{flag}: expected comma-separated numbers, got {text!r}") from None
    if not values:
        raise ConvergentError(f"{flag}: no values given")
    return values[0] if len(values) == 1 and flag == "--reveal" else values


def _compare_lm(args: argparse.Namespace) -> tuple[Any, Any]:
    """The LM comparison and, with --alignment, the LM's embedding-unembedding alignment
    (each None when not measured): explicit --compare-lm fails loudly, the implicit default
    skips with a note."""
    import sys

    from convergent.origins.real_lm import concept_pairs, lm_concept_geometry, open_unembedding

    if args.no_compare_lm:
        if args.compare_lm:
            raise ConvergentError("--compare-lm and --no-compare-lm contradict each other")
        return None, None
    spec = args.compare_lm or DEFAULT_LM
    try:
        pairs = concept_pairs(args.pairs)
        if args.alignment:  # both matrices, read once: the unembedding serves both measures
            embedding, values, tokens, name, tied = _open_embeddings(spec)
        else:
            values, tokens, name = open_unembedding(spec)
    except ConvergentError as err:
        if args.compare_lm or args.alignment:
            raise
        print(f"convergent: note: no real-LM comparison ({err})", file=sys.stderr)
        return None, None
    meta = {"pairs": args.pairs}
    result = lm_concept_geometry(values, tokens, pairs, source=name, seed=args.seed, meta=meta)
    total_kept, total_dropped = sum(result.kept.values()), sum(result.dropped.values())
    print(f"{name}: kept {total_kept} single-token pairs, dropped {total_dropped}")
    if not args.alignment:
        return result, None
    from convergent.origins.alignment import embedding_alignment

    alignment = embedding_alignment(
        embedding,
        values,
        tokens,
        pairs,
        source=name,
        tied=tied,
        seed=args.seed,
        null_pool=args.null_pool,
        meta=meta,
    )
    return result, alignment


def _open_embeddings(spec: str) -> tuple[Any, Any, list[str], str, bool]:
    from convergent.origins.alignment import open_embeddings

    try:
        return open_embeddings(spec)
    except ConvergentError as err:
        raise ConvergentError(f"--alignment {spec}: {err}") from None


def _lm_records(lm: Any, alignment: Any) -> dict[str, Any]:
    """results.json's ``lm`` and ``lm_alignment`` entries (each only when measured)."""
    records = {} if lm is None else {"lm": lm.to_dict()}
    return records if alignment is None else {**records, "lm_alignment": alignment.to_dict()}


def _print_alignment(alignment: Any) -> None:
    if alignment is None:
        return
    if alignment.degenerate:
        print(f"{alignment.source}: alignment not scored ({alignment.degenerate})")
        return
    s = alignment.summary()
    print(
        f"{alignment.source}: embedding-unembedding alignment of matched concepts "
        f"{s['matched_euclid_mean']:.3f} (causal {s['matched_causal_mean']:.3f}), "
        f"unmatched |cos| {s['unmatched_euclid_mean_abs']:.3f}, random-pair null "
        f"{s['null_euclid_mean']:.3f}, p = {s['p_value_euclid']:.3f}; within-concept "
        f"cos e {s['within_embed_mean']:.3f} / g {s['within_unembed_mean']:.3f}"
    )


def _save_weights(run: Any, path: Path) -> None:
    import numpy as np
    from safetensors.numpy import save_file

    from convergent.io import atomic_path

    tensors = {
        "unembedding": np.ascontiguousarray(run.unembedding, dtype=np.float32),
        "context_embedding": np.ascontiguousarray(run.context_embedding, dtype=np.float32),
        "context_ids": np.ascontiguousarray(run.seen_contexts, dtype=np.int64),
    }
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp))


def _run_line(label: str, summary: dict[str, Any]) -> str:
    return (
        f"{label}: within-concept cos {summary['within_mean']:.3f}, between |cos| Euclidean "
        f"{summary['between_euclid_mean_abs']:.3f}, causal {summary['between_causal_mean_abs']:.3f}"
    )


def _sweep_table(records: Any) -> str:
    lines = [f"{'optimizer':<9} {'d':>4} {'within':>7} {'euclid':>7} {'causal':>7} {'excess':>9}"]
    for r in records:
        lines.append(
            f"{r['optimizer']:<9} {r['dim']:>4} {r['within_mean']:>7.3f} "
            f"{r['between_euclid_mean_abs']:>7.3f} {r['between_causal_mean_abs']:>7.3f} "
            f"{r['excess_loss']:>9.2e}"
        )
    return "\n".join(lines)
