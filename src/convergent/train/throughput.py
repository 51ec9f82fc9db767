"""Tokens per second, model FLOPs utilisation and device memory for the progress line.

MFU is the model's training FLOPs per token (:func:`convergent.train.flops.flops_per_token`)
times the measured tokens per second, over the summed peak of the devices in use (the
device table of :mod:`convergent.train.flops`, bf16 or fp32/TF32 by the run's precision).
It is left out where the device's peak is unknown (CPUs, unlisted GPUs).
"""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import nn

from convergent.train.config import TrainConfig
from convergent.train.engine import Engine
from convergent.train.flops import flops_per_token, mfu, peak_flops

GIB = 2**30


class Throughput:
    """Rates over the steps since the previous tick (the first tick includes start-up)."""

    def __init__(self, config: TrainConfig, engine: Engine, model: nn.Module) -> None:
        self.engine = engine
        self.started = time.perf_counter()
        self.flops = _flops_per_token(config, model)
        self.peak = _peak(engine)

    def tick(self, tokens: int) -> dict[str, Any]:
        """Rates of the step that just ended (``tokens`` trained by all ranks together)."""
        now = time.perf_counter()
        seconds, self.started = max(1e-9, now - self.started), now
        rate = tokens / seconds
        out: dict[str, Any] = {"tokens_per_s": round(rate, 1)}
        if self.flops and self.peak:
            out["mfu"] = round(mfu(rate / self.engine.world, self.flops, self.peak), 4)
        if self.engine.device.type == "cuda":
            out["memory_gib"] = round(torch.cuda.max_memory_allocated(self.engine.device) / GIB,
                                      2)
        return out

    @staticmethod
    def postfix(rates: dict[str, Any]) -> dict[str, str]:
        shown = {"tok_s": f"{rates['tokens_per_s']:,.0f}"}
        if "mfu" in rates:
            shown["mfu"] = f"{100 * rates['mfu']:.0f}%"
        if "memory_gib" in rates:
            shown["mem"] = f"{rates['memory_gib']:.1f}G"
        return shown


def _flops_per_token(config: TrainConfig, model: nn.Module) -> float | None:
    embed = getattr(model, "embed", None)
    if embed is None:
        return None
    return flops_per_token(config.arch, config.model, embed.num_embeddings, config.seq_len)


def _peak(engine: Engine) -> float | None:
    if engine.device.type != "cuda":
        return None
    return peak_flops(torch.cuda.get_device_name(engine.device), engine.precision)
