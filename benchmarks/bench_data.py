"""Benchmark: `convergent data prepare` throughput and the packing of isolate-K / context-L.

Prepares the bundled corpus (~3M words) with the bpe tokenizer once per worker count into
a temporary folder, and prints tokens/s of the whole step (tokenizer training on the
sample included) and of encoding alone; then the fraction of trained (non-padding)
targets of isolate-K as packed segments against the former padded windows.

    .venv/bin/python benchmarks/bench_data.py [--workers 1 2] [--seq-len 1024]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def prepare_throughput(workers: list[int], folder: Path) -> Path:
    from convergent.data import prepare_corpus

    first = None
    for count in workers:
        out = folder / f"w{count}"
        begin = time.perf_counter()
        data = prepare_corpus("bundled", out, "bpe", 32768, workers=count)
        seconds = time.perf_counter() - begin
        print(f"workers {count}: {data.tokens:,} tokens, {data.documents:,} documents, "
              f"{seconds:.1f} s, {data.tokens / seconds:,.0f} tokens/s (tokenizer training "
              "included)")
        first = first or out
        if count == workers[0]:  # encoding alone: a named tokenizer (no training)
            named = folder / "tok.json"
            named.write_bytes((out / "tokenizer.json").read_bytes())
            begin = time.perf_counter()
            again = prepare_corpus("bundled", folder / f"named{count}", str(named), workers=count)
            seconds = time.perf_counter() - begin
            print(f"workers {count}, encoding only: {again.tokens / seconds:,.0f} tokens/s")
    return first


def packing(folder: Path, seq_len: int) -> None:
    from convergent.data import open_prepared
    from convergent.data.packing import PackedBatches
    from convergent.data.perturbed import number_mask, packed_segments
    from convergent.train.perturb import Perturbation, isolate_segments, split_segments

    data = open_prepared(folder)
    tok, ids = data.tokenizer(), np.asarray(data.stream())
    table = number_mask(tok)
    print(f"number tokens: {table[ids].mean():.1%} of the stream")
    for k in (1, 2, 5):
        starts, lengths, _ = packed_segments(data, Perturbation("isolate", k), tok)
        packed = PackedBatches(ids, starts, lengths, seq_len + 1, 1, 0).efficiency
        _, old = split_segments(*isolate_segments(table[ids], k), seq_len + 1)
        padded = float((old - 1).sum() / (len(old) * seq_len))
        print(f"isolate-{k} at seq_len {seq_len}: packed {packed:.1%} of targets trained, "
              f"padded windows {padded:.1%}")
    starts, lengths, _ = packed_segments(data, Perturbation("context", 64), tok)
    print(f"context-64: packed {PackedBatches(ids, starts, lengths, 65, 1, 0).efficiency:.1%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--seq-len", type=int, default=1024)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        packing(prepare_throughput(args.workers, Path(tmp)), args.seq_len)


if __name__ == "__main__":
    main()
