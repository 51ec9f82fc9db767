"""``convergent extract``: write the raw representations of a model to a cache folder."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from convergent.cli._checks import check_out, check_site_names, positive
from convergent.errors import ConvergentError


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "extract",
        help="extract a model's representations of numbers or words to a cache folder",
        description="Extract sites of a Hugging Face model (folder, .gguf, hub id, or a "
        "bundled name) for numbers or words into DIR (safetensors shards + manifest.json). "
        "Interrupted runs resume. Read the cache back as the source cache:DIR.",
    )
    parser.add_argument("source", help="smollm2-135m, minilm-l6, hf:ID_OR_DIR, a folder, .gguf")
    parser.add_argument("--site", action="append", required=True,
                        help="embed, unembed, final_norm, layer:N or layer:all (repeatable)")
    items = parser.add_mutually_exclusive_group(required=True)
    items.add_argument("--numbers", help="half-open range A:B, e.g. 0:1000")
    items.add_argument("--words", help="a text file with one word per line")
    parser.add_argument("--out", required=True, help="cache folder to write (or resume)")
    parser.add_argument("--template", action="append", dest="templates",
                        help="context with {n} (numbers) or {w} (words); repeatable; "
                        "default: a documented set")
    parser.add_argument("--pooling", choices=["last", "mean"],
                        help="state at the item's last token (default) or mean over its tokens")
    parser.add_argument("--batch-size", type=positive,
                        help="contexts per forward pass (default 32)")
    parser.add_argument("--dtype", choices=["float32", "float16", "bfloat16"],
                        help="storage dtype of the captured states (default float32)")
    parser.add_argument("--model-dtype", choices=["auto", "float32", "bfloat16", "float16"],
                        help="the weights' dtype (default float32 on CPU, the checkpoint's "
                        "on GPUs)")
    parser.add_argument("--device", help="cpu (default), cuda, cuda:1, mps, or auto "
                        "(device_map='auto' over all GPUs)")
    parser.add_argument("--revision", help="hub revision (branch, tag or commit)")
    parser.add_argument("--gguf-file", help="GGUF file name inside a model folder")
    parser.add_argument("--trust-remote-code", action="store_true", default=None,
                        help="allow the model's own Python code (off by default)")
    parser.add_argument("--shard-size", type=positive, default=256, help="items per shard file")
    parser.set_defaults(func=run)


def read_words(path: str) -> list[str]:
    """Non-empty lines of a text file, stripped, in order, duplicates dropped."""
    file = Path(path)
    if not file.is_file():
        raise ConvergentError(f"--words {path}: no such file")
    words = list(dict.fromkeys(w.strip() for w in file.read_text().splitlines() if w.strip()))
    if not words:
        raise ConvergentError(f"--words {path}: the file holds no words")
    return words


def run(args: argparse.Namespace) -> int:
    from convergent.sources import open_source, parse_range

    check_site_names(args.site)
    check_out(args.out)
    if args.numbers is not None:  # items are checked before the model loads
        kind, labels = "numbers", list(parse_range(args.numbers))
    else:
        kind, labels = "words", read_words(args.words)
    options = {
        "templates": args.templates, "pooling": args.pooling, "batch_size": args.batch_size,
        "dtype": args.dtype, "device": args.device, "revision": args.revision,
        "gguf_file": args.gguf_file, "trust_remote_code": args.trust_remote_code,
        "model_dtype": args.model_dtype,
    }
    source = open_source(args.source, **options)
    if not hasattr(source, "extract"):
        raise ConvergentError(f"{args.source}: extraction needs a Hugging Face model "
                              "(a folder, a .gguf file, a hub id, smollm2-135m or minilm-l6)")
    from convergent.locking import folder_lock

    with folder_lock(args.out, what="convergent extract"):
        folder, manifest = source.extract(labels, kind, args.site, out=args.out,
                                          shard_size=args.shard_size)
    plan = manifest["plan"]
    print(f"{len(plan['labels'])} {kind} x {len(plan['sites'])} site(s) "
          f"({plan['sites'][0]}..{plan['sites'][-1]}) in {folder}")
    single = manifest.get("meta", {}).get("single_token")
    if single:
        print(f"single-token numbers: {single['single_token_bare']} of {single['checked']} "
              f"bare ({single['bare_ranges']}), {single['single_token_space']} after a space")
    if manifest.get("dropped"):
        print(f"left out (need the unknown token): {len(manifest['dropped'])}")
    print(f"read it with: convergent numbers cache:{folder}" if kind == "numbers"
          else f"read it as the source cache:{folder}")
    return 0
