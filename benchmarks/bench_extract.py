"""Benchmark the extraction engine against a plain forward pass, and its peak memory.

1. Speed (wall-clock and process CPU time; on a shared machine CPU time is the steadier
   of the two): the engine capturing every layer (tokenize, right-pad, hook every block, pool at
   the number's last token, move off the device, average templates) versus a plain forward
   pass of ``model.base_model`` over the same, already tokenized batches, and versus the
   naive ``model(..., output_hidden_states=True)`` (LM head included). Target: <= 1.10.
2. Memory: peak resident memory of a full ``convergent extract`` run (every layer, to disk)
   for 1,000 versus 10,000 contexts, each in a fresh process. Target: flat.

    python benchmarks/bench_extract.py                 # smollm2-135m, 1 thread
    python benchmarks/bench_extract.py --model minilm-l6 --threads 2
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _source(spec: str):
    from convergent.sources import open_source

    return open_source(spec)


def speed(spec: str, numbers: int, repeats: int) -> dict[str, float]:
    import torch

    source = _source(spec)
    model, _ = source.load_model()
    engine = source.engine(source.sites(["layer:all"]), "numbers")
    items = [str(n) for n in range(numbers)]
    contexts = engine.contexts(items)
    order = sorted(range(len(contexts)), key=lambda k: -len(contexts[k][1].ids))
    size = engine.config.batch_size
    batches = [engine._batch([contexts[k] for k in order[i:i + size]])[:2]
               for i in range(0, len(order), size)]

    def plain() -> None:
        with torch.inference_mode():
            for ids, mask in batches:
                model.base_model(input_ids=ids, attention_mask=mask, **engine.extra)

    def naive() -> None:
        with torch.inference_mode():
            for ids, mask in batches:
                model(input_ids=ids, attention_mask=mask, output_hidden_states=True,
                      **engine.extra)

    def capture() -> None:
        engine.contextual_rows(items)

    runs = {"plain forward (base model)": plain, "capture every layer (engine)": capture}
    if hasattr(model, "lm_head"):
        runs["naive output_hidden_states (with LM head)"] = naive
    plain()  # warm up
    best = {name: (float("inf"), float("inf")) for name in runs}
    for _ in range(repeats):  # interleaved, so a busy neighbour slows all alike
        for name, fn in runs.items():
            wall, cpu = time.perf_counter(), time.process_time()
            fn()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            best[name] = (min(best[name][0], wall), min(best[name][1], cpu))
    return {"runs": best, "contexts": len(contexts), "layers": source.n_layers}


def _rss_mb() -> float:
    """Current resident memory (Linux /proc; ru_maxrss elsewhere)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def memory_child(spec: str, contexts: int, out: str) -> None:
    import threading

    from convergent.extract.templates import DEFAULT_NUMBER_TEMPLATES

    source = _source(spec)
    source.load_model()
    # one small forward first: it touches every (memory-mapped) weight page and fills
    # torch's allocator, a fixed cost that is not what "flat in the inputs" is about
    source.engine(source.sites(["layer:all"]), "numbers").contextual_rows(["1", "22"])
    import gc

    gc.collect()
    before = _rss_mb()
    peak = [before]
    done = threading.Event()

    def watch() -> None:  # peak of the current RSS while extracting, every 20 ms
        while not done.wait(0.02):
            peak[0] = max(peak[0], _rss_mb())

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    numbers = list(range(contexts // len(DEFAULT_NUMBER_TEMPLATES)))
    source.extract(numbers, "numbers", ["layer:all"], out=out, progress=False)
    done.set()
    watcher.join()
    peak[0] = max(peak[0], _rss_mb())
    print(json.dumps({"loaded_mb": before, "peak_mb": peak[0]}))


def memory(spec: str, contexts: int, threads: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, __file__, "--child-memory", str(contexts), "--model", spec,
               "--threads", str(threads), "--out", str(Path(tmp) / "cache")]
        done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--numbers", type=int, default=100, help="numbers for the speed test "
                        "(x 4 default templates = contexts)")
    parser.add_argument("--repeats", type=int, default=3, help="speed runs (0 skips)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--contexts", default="1000,10000",
                        help="memory test sizes ('' skips the memory test)")
    parser.add_argument("--child-memory", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    if args.child_memory:
        memory_child(args.model, args.child_memory, args.out)
        return
    if args.repeats > 0:
        times = speed(args.model, args.numbers, args.repeats)
        wall0, cpu0 = times["runs"]["plain forward (base model)"]
        print(f"# {args.model}: {times['contexts']} contexts, {times['layers']} layers, "
              f"{args.threads} thread(s), best of {args.repeats}")
        print("| run | wall s | ratio | CPU s | CPU ratio |\n|---|---|---|---|---|")
        for name, (wall, cpu) in times["runs"].items():
            print(f"| {name} | {wall:.2f} | {wall / wall0:.3f} | {cpu:.2f} | {cpu / cpu0:.3f} |",
                  flush=True)
    sizes = [int(x) for x in args.contexts.split(",") if x.strip()]
    if not sizes:
        return
    print("\n| contexts | RSS with the model loaded (MB) | peak RSS while extracting (MB) "
          "| growth (MB) |\n|---|---|---|---|")
    peaks = []
    for n in sizes:
        result = memory(args.model, n, args.threads)
        peaks.append(result["peak_mb"])
        grow = result["peak_mb"] - result["loaded_mb"]
        print(f"| {n} | {result['loaded_mb']:.0f} | {result['peak_mb']:.0f} | {grow:.0f} |",
              flush=True)
    print(f"\npeak ratio {sizes[-1]} / {sizes[0]} contexts: {peaks[-1] / peaks[0]:.3f}")


if __name__ == "__main__":
    main()
