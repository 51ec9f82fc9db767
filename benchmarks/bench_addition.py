"""Benchmark: the cost of `convergent reproduce addition` per optimizer step and checkpoint.

Measures, with one torch thread, the CPU time (``time.process_time``, which a shared
machine inflates far less than wall time) of a training step of each of the four settings
at the quick preset's scale, Muon's Newton-Schulz in torch's bfloat16 versus the float32 of
``convergent.train.muon.Muon`` (the ratio is the speed-up), and one checkpoint evaluation
(2000 test problems plus the number analysis of 1000 embedding rows), and the same Muon
comparison for the engine's quick text preset. Prints the
extrapolated wall time of the quick preset on 2 idle cores: total CPU / 2 (two runs at a
time, one thread each).

    .venv/bin/python benchmarks/bench_addition.py [--steps 20]
"""

from __future__ import annotations

import argparse
import time

import torch


def step_cost(setting, config, steps: int, float32_ns: bool) -> tuple[float, float]:
    """(CPU ms, wall ms) per optimizer step of ``setting`` after a short warm-up."""
    from convergent.tasks.dataset import AdditionBatches, AdditionSplit
    from convergent.tasks.run import task_config
    from convergent.train.models import build_model
    from convergent.train.optim import build_optimizers

    spec = config.run_spec(setting, 0)
    train_config = task_config(spec.task, spec.config)
    torch.manual_seed(0)
    model = build_model("transformer", train_config.model, spec.task.vocab_size)
    optimizers = build_optimizers(model, train_config)
    if "muon" in optimizers.parts:
        optimizers.parts["muon"].float32 = float32_ns  # False: torch's bfloat16 iteration
    batches = AdditionBatches(AdditionSplit(spec.task, spec.split), config.batch_size, 0)
    for i in range(steps + 5):
        if i == 5:
            wall, cpu = time.perf_counter(), time.process_time()
        batch = batches.batch(i)
        loss = model.loss(batch.tokens, batch.mask)
        optimizers.zero_grad()
        loss.backward()
        optimizers.step()
    return (1000 * (time.process_time() - cpu) / steps,
            1000 * (time.perf_counter() - wall) / steps)


def text_muon_cost(steps: int, float32_ns: bool) -> float:
    """CPU ms per step of ``convergent train --preset quick --arch transformer --optimizer
    muon`` on a fixed random batch (the engine's text runs, for issue 4's comparison)."""
    from convergent.train.models import build_model
    from convergent.train.optim import build_optimizers
    from convergent.train.presets import preset

    config = preset("quick", "transformer", optimizer="muon")
    torch.manual_seed(0)
    model = build_model("transformer", config.model, config.vocab_size)
    optimizers = build_optimizers(model, config)
    optimizers.parts["muon"].float32 = float32_ns
    tokens = torch.randint(0, config.vocab_size, (config.batch_size, config.seq_len + 1))
    mask = torch.ones(config.batch_size, config.seq_len, dtype=torch.bool)
    for i in range(steps + 3):
        if i == 3:
            cpu = time.process_time()
        loss = model.loss(tokens, mask)
        optimizers.zero_grad()
        loss.backward()
        optimizers.step()
    return 1000 * (time.process_time() - cpu) / steps


def eval_cost(config) -> float:
    """CPU seconds of one checkpoint evaluation (accuracy + number analysis)."""
    from convergent.numbers import analyze_numbers
    from convergent.tasks.dataset import AdditionSplit
    from convergent.tasks.evaluate import accuracy, number_embeddings
    from convergent.train.models import build_model

    spec = config.run_spec(config.settings[0], 0)
    model = build_model("transformer", config.model, spec.task.vocab_size)
    split = AdditionSplit(spec.task, spec.split)
    cpu = time.process_time()
    accuracy(model, spec.task, *split.test)
    analyze_numbers(number_embeddings(model, spec.task), range(1000),
                    permutations=config.permutations)
    return time.process_time() - cpu


def main() -> None:
    from convergent.tasks.experiment import ReproConfig

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = ReproConfig()
    total_cpu = 0.0
    print(f"quick preset: {config.steps} steps, batch {config.batch_size}, d_model "
          f"{config.model.d_model}, {config.model.n_layers} layers, 1 thread")
    for setting in config.settings:
        cpu, wall = step_cost(setting, config, args.steps, float32_ns=True)
        line = f"{setting.label:<14} {cpu:7.1f} ms CPU/step ({wall:7.1f} ms wall)"
        if setting.optimizer == "muon":
            bf16, _ = step_cost(setting, config, args.steps, float32_ns=False)
            line += f"; torch bf16 Newton-Schulz {bf16:7.1f} ms ({bf16 / cpu:.1f}x slower)"
        print(line)
        total_cpu += cpu * config.steps / 1000
    evaluation = eval_cost(config)
    n_evals = len(config.settings) * (config.checkpoints + 1)
    print(f"one checkpoint evaluation: {evaluation:.1f} s CPU ({n_evals} in the preset)")
    total_cpu += evaluation * n_evals
    print(f"quick preset, one seed: {total_cpu / 60:.1f} CPU-minutes -> about "
          f"{total_cpu / 2 / 60:.1f} min on 2 idle cores")
    fast, slow = text_muon_cost(10, True), text_muon_cost(10, False)
    print(f"train --preset quick --arch transformer --optimizer muon: {fast:.0f} ms CPU/step "
          f"(torch bf16 Newton-Schulz {slow:.0f} ms, {slow / fast:.1f}x slower)")


if __name__ == "__main__":
    main()
