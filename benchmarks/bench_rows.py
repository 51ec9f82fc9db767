"""Benchmark ``--site embed`` read as rows of the checkpoint versus loading the whole model.

Writes a random-weight Llama (float32, a few hundred MB, untied) as a sharded safetensors
folder with ``model.safetensors.index.json`` and a 32,000-word fast tokenizer, then runs
``number_representations(range(N), ["embed"])`` in fresh processes, interleaved:

* ``rows``: the default for static sites, reading only the needed rows of the embedding
  tensor from its shard (``convergent.sources.rows``);
* ``model``: the model loaded first (``HFSource.load_model()``, as every extraction did
  before), then the same call.

Each run reports wall-clock seconds (after the imports) and peak resident memory
(``VmHWM``) of the whole process, and the same above what the imports alone (torch,
transformers, convergent) take. Linux only (``/proc/self/status``).

    python benchmarks/bench_rows.py                      # 333 MiB float32, best of 3
    python benchmarks/bench_rows.py --checkpoint-dtype bfloat16 --layers 32
    python benchmarks/bench_rows.py --hidden 768 --layers 24 --repeats 5
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = """
import json, sys, time
import torch, transformers
from transformers import AutoTokenizer, PreTrainedTokenizerFast  # both runs need them
torch.set_num_threads(1)
from convergent.sources.hf import open_hf
def hwm():  # peak resident set of this process (kB); unlike ru_maxrss not inherited
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
base = hwm()
folder, mode, cache, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
start = time.perf_counter()
source = open_hf(folder, cache_dir=cache)
if mode == "model":
    source.load_model()
rep = source.number_representations(range(n), ["embed"])[0]
seconds = time.perf_counter() - start
peak = hwm()
print(json.dumps({"seconds": seconds, "peak_kb": peak, "imports_kb": base,
                  "rows": len(rep.labels), "loaded": source._loaded is not None,
                  "checksum": float(abs(rep.values).sum())}))
"""


def write_checkpoint(folder: Path, vocab: int, hidden: int, layers: int, shard: str,
                     dtype: str) -> int:
    """A random-weight untied Llama with a word-level tokenizer (0..999 single tokens)."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    words = ["[PAD]", "[UNK]", *[str(n) for n in range(1000)]]
    words += [f"w{i}" for i in range(vocab - len(words))]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]",
                                        pad_token="[PAD]")
    config = LlamaConfig(vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers,
                         intermediate_size=3 * hidden, num_attention_heads=8,
                         num_key_value_heads=8, tie_word_embeddings=False, pad_token_id=0,
                         bos_token_id=None, eos_token_id=None)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    model.to(getattr(torch, dtype)).save_pretrained(folder, max_shard_size=shard)
    tokenizer.save_pretrained(folder)
    return sum(p.numel() for p in model.parameters())


def run_child(folder: Path, mode: str, numbers: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as cache:
        out = subprocess.run([sys.executable, "-c", CHILD, str(folder), mode, cache,
                              str(numbers)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab", type=int, default=32000)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--layers", type=int, default=16)
    parser.add_argument("--shard", default="50MB", help="max shard size")
    parser.add_argument("--numbers", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--checkpoint-dtype", default="float32",
                        choices=["float32", "bfloat16"],
                        help="weights as stored (bfloat16 is what released checkpoints hold; "
                        "the model path then upcasts every weight to float32 on the CPU)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "ckpt"
        started = time.perf_counter()
        params = write_checkpoint(folder, args.vocab, args.hidden, args.layers, args.shard,
                                  args.checkpoint_dtype)
        files = sorted(folder.glob("*.safetensors"))
        width = 4 if args.checkpoint_dtype == "float32" else 2
        size = sum(f.stat().st_size for f in files)
        print(f"checkpoint: {params / 1e6:.1f}M parameters, {size / 2**20:.0f} MiB in "
              f"{len(files)} shards (written in {time.perf_counter() - started:.0f} s); "
              f"embedding {args.vocab} x {args.hidden} = "
              f"{args.vocab * args.hidden * width / 2**20:.0f} MiB ({args.checkpoint_dtype})")
        runs: dict[str, list[dict[str, float]]] = {"rows": [], "model": []}
        for _ in range(args.repeats):
            for mode in ("rows", "model"):
                runs[mode].append(run_child(folder, mode, args.numbers))
        assert not any(r["loaded"] for r in runs["rows"])
        assert runs["rows"][0]["checksum"] == runs["model"][0]["checksum"]
    best = {mode: {"seconds": min(r["seconds"] for r in rs),
                   "peak_mib": min(r["peak_kb"] for r in rs) / 1024,
                   "above_imports_mib": min(r["peak_kb"] - r["imports_kb"] for r in rs) / 1024}
            for mode, rs in runs.items()}
    print(f"--site embed, {args.numbers} numbers, best of {args.repeats} (fresh process each)")
    print(f"{'run':<8}{'wall s':>9}{'peak RSS MiB':>15}{'above imports MiB':>20}")
    for mode, b in best.items():
        print(f"{mode:<8}{b['seconds']:>9.2f}{b['peak_mib']:>15.0f}{b['above_imports_mib']:>20.0f}")
    r, m = best["rows"], best["model"]
    print(f"ratio rows/model: time {r['seconds'] / m['seconds']:.3f}, peak RSS "
          f"{r['peak_mib'] / m['peak_mib']:.3f}, above imports "
          f"{r['above_imports_mib'] / max(m['above_imports_mib'], 1e-9):.3f}")
    print(json.dumps({"best": best, "runs": runs}))


if __name__ == "__main__":
    main()
