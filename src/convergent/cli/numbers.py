"""``convergent numbers``: Fourier spectrum, mod-T probes and Fisher for number embeddings."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from convergent.cli._checks import at_least, non_negative, positive

MODEL_OPTIONS = (
    "templates",
    "pooling",
    "batch_size",
    "dtype",
    "model_dtype",
    "device",
    "revision",
    "trust_remote_code",
)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "numbers",
        help="Fourier spikes, mod-T separability and Fisher diagnostics of number embeddings",
        description="Analyse e(n) for n in --numbers from each SOURCE; writes results.json, "
        "numbers.png and numbers.svg to --out.",
    )
    p.add_argument(
        "sources",
        nargs="+",
        metavar="SOURCE",
        help="bundled name (glove-6b-50d, smollm2-135m, minilm-l6), word-vector "
        "file, matrix:PATH, run:DIR[@step], cache:DIR, Hugging Face folder or id, "
        "tokens:X or cooc:X (the number-token counts or co-occurrence rows of a run's, a "
        "prepared folder's or a corpus's token stream)",
    )
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument(
        "--numbers",
        default=None,
        help="half-open range A:B of numbers (default: a matrix's rows, or its --labels; "
        "0:1000, i.e. 0..999, for other sources)",
    )
    p.add_argument(
        "--labels",
        help="matrix sources: the number of each row, as a range A:B "
        "or a file of integers (default 0..rows-1)",
    )
    p.add_argument(
        "--contiguous",
        action="store_true",
        help="if numbers are missing, use the longest contiguous range present",
    )
    p.add_argument("--moduli", default="2:11", help="half-open range of moduli (default 2:11)")
    p.add_argument("--folds", type=at_least(2), default=5,
                   help="cross-validation folds (default 5)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--permutations",
        type=non_negative,
        default=200,
        help="random orderings for the spike p-value (default 200; 0 skips)",
    )
    p.add_argument(
        "--site",
        action="append",
        default=None,
        help="embed (default), unembed, final_norm, layer:7 or layer:all; repeatable",
    )
    p.add_argument(
        "--template",
        dest="templates",
        action="append",
        default=None,
        help="model sources: a context template containing {n}; repeatable",
    )
    p.add_argument(
        "--pooling",
        choices=["last", "mean"],
        default=None,
        help="model sources: state at the number's last token (default) or mean",
    )
    p.add_argument("--batch-size", type=positive, default=None)
    p.add_argument("--dtype", default=None, help="model sources: float32 (default) or bfloat16")
    p.add_argument("--model-dtype", default=None,
                   choices=["auto", "float32", "bfloat16", "float16"],
                   help="model sources: the weights' dtype (default float32 on CPU, the "
                   "checkpoint's on GPUs)")
    p.add_argument("--device", default=None,
                   help="model sources: cpu (default), cuda, cuda:1, mps, or auto "
                   "(device_map='auto' over all GPUs)")
    p.add_argument("--revision", default=None, help="hub sources: a revision or commit")
    p.add_argument("--trust-remote-code", action="store_true", default=None)
    p.add_argument(
        "--dynamics",
        action="store_true",
        help="run sources: analyse every checkpoint; writes dynamics.png and .svg (one "
        "per run and site when there are several)",
    )
    p.set_defaults(func=run)


def _source_options(spec: str, args: argparse.Namespace) -> dict[str, Any]:
    from convergent.sources.resolve import MATRIX_SUFFIXES

    options = {name: getattr(args, name) for name in MODEL_OPTIONS}
    if spec.startswith("matrix:") or Path(spec).suffix.lower() in MATRIX_SUFFIXES:
        options["labels"] = args.labels
    return options


def run(args: argparse.Namespace) -> int:
    import shutil

    from convergent.cli._checks import check_site_names
    from convergent.errors import ConvergentError
    from convergent.locking import folder_lock
    from convergent.sources import open_source, parse_range

    given = parse_range(args.numbers) if args.numbers is not None else None
    moduli = list(parse_range(args.moduli, what="--moduli"))
    if moduli[0] < 2:
        raise ConvergentError(f"--moduli {args.moduli!r}: periods start at 2")
    sites = args.site or ["embed"]
    check_site_names(sites)
    settings = {
        "moduli": moduli,
        "folds": args.folds,
        "seed": args.seed,
        "permutations": args.permutations,
    }
    if args.labels and not any(
        s.startswith("matrix:") or Path(s).suffix in (".npy", ".csv", ".safetensors")
        for s in args.sources
    ):
        raise ConvergentError("--labels applies only to matrix sources (matrix:PATH)")
    entries: list[dict[str, Any]] = []
    dynamics: list[dict[str, Any]] = []
    # one finished analysis per file, in a sibling of --out: a rerun resumes, success removes it
    where = args.out.resolve()  # "--out ." too has a sibling
    memo = where.parent / f"{where.name}.partial"
    with folder_lock(args.out, what="convergent numbers"), _kept_if_used(memo):
        for spec in args.sources:
            source = open_source(spec, **_source_options(spec, args))
            numbers = given if given is not None else _default_numbers(source)
            if args.dynamics:
                dynamics.extend(
                    _dynamics(spec, source, numbers, sites, args.contiguous, settings, memo)
                )
            found = _analyse(source, numbers, sites, args.contiguous, settings, memo)
            entries.extend(_with_paper(spec, source, entry) for entry in found)
        _write(args.out, entries, dynamics)
        shutil.rmtree(memo, ignore_errors=True)
    _print_table(entries)
    print(f"wrote {args.out / 'results.json'}, {args.out / 'numbers.png'}")
    return 0


@contextlib.contextmanager
def _kept_if_used(memo: Path) -> Iterator[None]:
    """On failure keep the memo of finished analyses (a rerun resumes), unless it is empty."""
    try:
        yield
    except BaseException:
        if memo.is_dir() and not any(memo.iterdir()):
            memo.rmdir()
        raise


def _default_numbers(source: Any) -> range:
    """A matrix's own labels (its rows, or --labels); 0..999 for every other source."""
    labels = getattr(source, "labels", None)
    if isinstance(labels, list) and labels:
        return range(min(labels), max(labels) + 1)
    return range(0, 1000)


def _memo_path(memo: Path, rep: Any, settings: dict[str, Any]) -> Path:
    """Where the analysis of exactly this matrix (and tokens) with these settings is kept."""
    import hashlib
    import json

    from convergent import __version__
    from convergent.numbers.analysis import ANALYSIS_VERSION
    from convergent.provenance import array_hash

    key = json.dumps(
        [
            __version__,
            ANALYSIS_VERSION,
            rep.source,
            rep.site,
            list(rep.labels[:1]) + list(rep.labels[-1:]),
            array_hash(rep.values),
            repr(rep.token_ids),
            settings,
        ],
        sort_keys=True,
        default=str,
    )
    return memo / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.json"


def _analyse(
    source: Any,
    numbers: range,
    sites: list[str],
    contiguous: bool,
    settings: dict[str, Any],
    memo: Path,
) -> list[dict[str, Any]]:
    import json
    import warnings

    from tqdm import tqdm

    from convergent.io import write_json_atomic
    from convergent.numbers.analysis import analyze_representation
    from convergent.sources import require_numbers

    entries = []
    reps = source.number_representations(list(numbers), sites)
    for rep in tqdm(reps, desc="sites", unit="site", disable=len(reps) < 2, leave=False):
        chosen = require_numbers(rep, numbers, contiguous=contiguous)
        if len(chosen.labels) < len(numbers):
            print(
                f"{rep.name}: using numbers {chosen.labels[0]}..{chosen.labels[-1]} "
                "(the longest contiguous range present)"
            )
        kept = _memo_path(memo, chosen, settings)
        if kept.is_file():
            entries.append(json.loads(kept.read_text()))
            continue
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = analyze_representation(chosen, **settings)
        for warning in caught:
            print(f"warning: {warning.message}")
        entry = result.to_dict()
        write_json_atomic(kept, entry)
        entries.append(json.loads(kept.read_text()))  # the same values a resumed run reads
    return entries


def _dynamics(
    spec: str,
    source: Any,
    numbers: range,
    sites: list[str],
    contiguous: bool,
    settings: dict[str, Any],
    memo: Path,
) -> list[dict[str, Any]]:
    from convergent.errors import ConvergentError

    if not hasattr(source, "checkpoints"):
        raise ConvergentError(f"{spec}: --dynamics needs a training run (run:DIR)")
    points = []
    for step, tokens, checkpoint in source.checkpoints():
        for entry in _analyse(checkpoint, numbers, sites, contiguous, settings, memo):
            points.append(
                {
                    "source": spec,
                    "step": step,
                    "tokens": tokens,
                    "site": entry["site"],
                    "periods": {
                        t: {"phi": p["phi"], "kappa": p["kappa"], "spike": p["spike"],
                            "accuracy": p["accuracy"]}
                        for t, p in entry["periods"].items()
                    },
                }
            )
    return points


def _write(out: Path, entries: list[dict[str, Any]], dynamics: list[dict[str, Any]]) -> None:
    from convergent.io import staged_folder

    with staged_folder(out) as stage:
        _write_files(stage, entries, dynamics)


def _write_files(out: Path, entries: list[dict[str, Any]],
                 dynamics: list[dict[str, Any]]) -> None:
    from convergent.io import write_json_atomic
    from convergent.report.numbers import plot_numbers

    payload: dict[str, Any] = {"sources": entries}
    if dynamics:
        payload["dynamics"] = dynamics
    plot_numbers(entries, [out / "numbers.png", out / "numbers.svg"])
    if any(e["site"].startswith("layer.") for e in entries):
        from convergent.report.layers import plot_layers

        plot_layers(entries, [out / "layers.png", out / "layers.svg"])
    if dynamics:
        from convergent.report.dynamics import plot_dynamics

        by_run: dict[str, list[dict[str, Any]]] = {}
        for point in dynamics:
            by_run.setdefault(f"{point['source']} ({point['site']})", []).append(point)
        for index, (label, points) in enumerate(by_run.items()):
            stem = "dynamics" if len(by_run) == 1 else f"dynamics-{index + 1}"
            plot_dynamics(points, [out / f"{stem}.png", out / f"{stem}.svg"], title=label)
    write_json_atomic(out / "results.json", payload)


def _print_table(entries: list[dict[str, Any]]) -> None:
    shown = [t for t in ("2", "5", "10") if entries and t in entries[0]["periods"]]
    header = f"{'source':<28} {'numbers':>9} {'dim':>5} " + " ".join(
        f"{'Phi_' + t:>9} {'spike':>8} {'kappa_' + t + ' [95% CI]':>17}" for t in shown
    )
    print(header)
    for e in entries:
        label = e["name"] if e["site"] == "embed" else f"{e['name']}:{e['site']}"
        cells = []
        for t in shown:
            p = e["periods"][t]
            spike = f"{p['spike']:.1f}{_stars(p.get('p_value'))}"
            low, high = p.get("kappa_ci") or (float("nan"), float("nan"))
            kappa = f"{p['kappa']:.1f} [{low:.0f},{high:.0f}]" + (
                "+" if p.get("explained_by_tokens") else "")
            cells.append(f"{p['phi']:>9.3g} {spike:>8} {kappa:>17}")
        span = f"{e['numbers'][0]}..{e['numbers'][1]}"
        print(f"{label[:28]:<28} {span:>9} {e['dim']:>5} " + " ".join(cells))
    print("spike: Phi_T over its trend-preserving shuffled null; * p < 0.05, ** p < 0.01 "
          "(one-sided permutation test)")
    if any(p.get("explained_by_tokens") for e in entries for p in e["periods"].values()):
        print("+ separable, and explained by the token-identity control "
              "(baseline_kappa within 5 points)")
    from convergent.report.numbers import peak_lines

    print("strongest spectral peaks:")
    print("\n".join(peak_lines(entries)))


def _stars(p_value: float | None) -> str:
    if p_value is None:
        return ""
    return "**" if p_value < 0.01 else "*" if p_value < 0.05 else ""


def _with_paper(spec: str, source: Any, entry: dict[str, Any]) -> dict[str, Any]:
    """``entry`` with the paper's published values for the same setting, where one exists."""
    from convergent.reference.paper import compare, source_setting, train_setting

    config = getattr(source, "config", None)
    setting = train_setting(config) if isinstance(config, dict) and "arch" in config \
        else source_setting(spec)
    return {**entry, "paper": compare(entry["name"], setting, entry).to_dict()}
