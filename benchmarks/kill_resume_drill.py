"""Drill: kill -9 a verb at a random point, resume it, compare with an uninterrupted run.

For each verb (``train``, ``extract``, ``run``, ``reproduce``): run the command once
uninterrupted (the reference), run it again into a fresh folder and send SIGKILL to the
main process at a random point of its progress (once the folder holds a random number of
the reference's files, plus up to 1 s; its workers are left to die by themselves, as
after the OOM killer or a cluster time limit), count the processes still alive 10 s
later (orphans), rerun the same command to completion (refused if the folder were still
held) and compare its outputs with the
reference: every ``*.safetensors`` file (weights, optimizer state, extracted shards)
bit for bit, and the results table's values (timings and hosts aside).

    .venv/bin/python benchmarks/kill_resume_drill.py [--verbs train,extract,run]
        [--rounds 1] [--seed 0] [--work /tmp/drill] [--json out.json]

``reproduce`` runs the whole quick preset twice and more (about 15 minutes each on two
idle cores); give it in ``--verbs`` when there is time.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from convergent.experiments.lifetime import alive, descendants

BIN = str(Path(sys.executable).parent / "convergent")
VOLATILE = ("seconds", "cpu_seconds", "host", "started", "finished", "pid", "error")

SPEC = """
[experiment]
name = "drill"
[numbers]
numbers = "0:100"
permutations = 10
[train.g]
preset = "quick"
set.corpus = "lee"
set.tokens = {tokens}
set.checkpoint_every = {every}
set."model.d_model" = 64
set."model.n_layers" = 2
grid = {{ seed = [0, 1] }}
[analyses.a]
sources = ["g"]
checkpoints = "all"
"""


def commands(verb: str, out: Path, work: Path) -> list[str]:
    """The command line of ``verb`` writing into ``out``."""
    if verb == "train":
        return [BIN, "train", "--preset", "quick", "--arch", "transformer", "--corpus", "lee",
                "--tokens", "120000", "--set", "checkpoint_every=20000", "--set",
                "model.d_model=64", "--set", "model.n_layers=2", "--threads", "1",
                "--out", str(out), "--no-progress"]
    if verb == "extract":
        return [BIN, "extract", "minilm-l6", "--site", "layer:all", "--numbers", "0:600",
                "--shard-size", "50", "--batch-size", "16", "--out", str(out)]
    if verb == "run":
        spec = work / "drill.toml"
        spec.write_text(SPEC.format(tokens=60_000, every=15_000))
        return [BIN, "run", str(spec), "--out", str(out), "--workers", "2", "--no-progress"]
    if verb == "reproduce":
        return [BIN, "reproduce", "--preset", "quick", "--out", str(out)]
    raise SystemExit(f"unknown verb {verb!r}")


def run_to_end(command: list[str]) -> tuple[int, float, str]:
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True)
    return done.returncode, time.monotonic() - started, done.stderr.strip()[-300:]


def files_in(folder: Path) -> int:
    return sum(1 for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else 0


def killed_at(command: list[str], out: Path, files: int, delay: float) -> dict[str, object]:
    """Start ``command``; once ``out`` holds ``files`` files, wait ``delay`` s and SIGKILL
    its main process. Returns when and what was seen: children and orphans left 10 s on."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    started = time.monotonic()
    children: set[int] = set()
    deadline = None
    while process.poll() is None:
        children |= descendants(process.pid)  # workers come and go: keep every one seen
        if deadline is None and files_in(out) >= files:
            deadline = time.monotonic() + delay
        if deadline is not None and time.monotonic() >= deadline:
            break
        time.sleep(0.1)
    seen = {"killed_after_s": round(time.monotonic() - started, 1), "files_then": files_in(out)}
    try:
        os.kill(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        return {**seen, "killed": False, "children_seen": len(children), "orphans": 0}
    process.wait()
    time.sleep(10.0)
    orphans = [p for p in children if alive(p)]
    for pid in orphans:  # clean up what the drill found, then report it
        os.kill(pid, signal.SIGKILL)
    return {**seen, "killed": True, "children_seen": len(children), "orphans": len(orphans)}


def tensors_equal(reference: Path, resumed: Path) -> tuple[int, list[str]]:
    """(files compared, files that differ or are missing) over every ``*.safetensors``."""
    from safetensors.numpy import load_file

    files = sorted(reference.rglob("*.safetensors"))
    differ = []
    for file in files:
        other = resumed / file.relative_to(reference)
        if not other.is_file():
            differ.append(f"{file.relative_to(reference)} (missing)")
            continue
        a, b = load_file(file), load_file(other)
        if a.keys() != b.keys() or any(a[k].tobytes() != b[k].tobytes() for k in a):
            differ.append(str(file.relative_to(reference)))
    return len(files), differ


def tables_equal(reference: Path, resumed: Path) -> bool | None:
    """Whether the results tables hold the same values (None: no table)."""
    if not (reference / "results.parquet").is_file():
        return None
    import pandas as pd

    def stable(folder: Path) -> pd.DataFrame:
        table = pd.read_parquet(folder / "results.parquet")
        table = table.drop(columns=[c for c in VOLATILE if c in table.columns])
        return table.sort_values([c for c in ("job", "site", "step") if c in table.columns],
                                 na_position="first").reset_index(drop=True)

    try:
        pd.testing.assert_frame_equal(stable(reference), stable(resumed))
    except AssertionError:
        return False
    return True


def drill(verb: str, work: Path, rng: random.Random) -> dict[str, object]:
    folder = work / verb
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    reference, resumed = folder / "reference", folder / "resumed"
    code, seconds, err = run_to_end(commands(verb, reference, folder))
    if code:
        return {"verb": verb, "error": f"reference run failed ({code}): {err}"}
    total = files_in(reference)
    target = rng.randint(1, max(1, total - 1))  # a random point of the run's progress
    kill = killed_at(commands(verb, resumed, folder), resumed, target, rng.uniform(0, 1))
    code, resume_seconds, err = run_to_end(commands(verb, resumed, folder))
    compared, differ = tensors_equal(reference, resumed)
    table = tables_equal(reference, resumed)
    return {"verb": verb, "reference_s": round(seconds, 1), "reference_files": total,
            "kill_at_files": target, **kill, "resume_exit": code,
            "resume_s": round(resume_seconds, 1), "resume_error": err if code else "",
            "safetensors_compared": compared, "differ": differ, "table_equal": table,
            "identical": code == 0 and not differ and compared > 0 and table is not False}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--verbs", default="train,extract,run")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=Path("/tmp/kill_resume_drill"))
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    rows = []
    for _ in range(args.rounds):
        for verb in args.verbs.split(","):
            row = drill(verb.strip(), args.work, rng)
            rows.append(row)
            print(json.dumps(row), flush=True)
    print("\n| verb | killed after (files) | children | orphans | resume exit | identical |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['verb']} | {row.get('killed_after_s')} s ({row.get('files_then')} of "
              f"{row.get('reference_files')}) | {row.get('children_seen')} | "
              f"{row.get('orphans')} | {row.get('resume_exit')} | "
              f"{row.get('identical', row.get('error'))} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
