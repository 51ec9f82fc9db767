"""The dry run: what a plan would run, where, and at what cost, without running or writing.

:func:`estimate_plan` gives each job its devices, token budget, parameter count, memory per
device and training FLOPs; :func:`format_estimate` prints them with a total. Parameter
counts and FLOPs come from :mod:`convergent.train.flops` and memory from
:mod:`convergent.train.memory`; word2vec and PPMI have none ("n/a"). GPU-hours assume
:data:`MFU` of :data:`PEAK_FLOPS` (an H100's dense bf16 peak in the device table of
:mod:`convergent.train.flops`) and are device-hours: a job on 8 GPUs takes an eighth of them
in wall-clock time.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from convergent.experiments.plan import Job, Plan, make_plan
from convergent.experiments.spec import ExperimentSpec
from convergent.train.flops import peak_flops as device_peak

MFU = 0.4
PEAK_FLOPS = device_peak("NVIDIA H100 80GB HBM3", "bf16")  # dense bf16, FLOP/s
PEAK_NAME = "an H100's bf16 peak"


@dataclass(frozen=True)
class JobEstimate:
    """One job of a dry run; None where the value is unknown or does not apply."""

    key: str
    kind: str
    label: str
    gpus: int
    cpus: int
    tokens: int | None = None
    parameters: int | None = None
    memory_bytes: int | None = None  # peak per device
    flops: float | None = None  # training FLOPs of the whole run

    @property
    def devices(self) -> str:
        return f"{self.gpus} x GPU" if self.gpus else f"{self.cpus} CPU"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "devices": self.devices}


@dataclass(frozen=True)
class PlanEstimate:
    """Every job of a plan with its estimates, and the plan's GPU-hours at ``mfu``."""

    name: str
    jobs: tuple[JobEstimate, ...]
    visible_gpus: int
    mfu: float = MFU
    peak_flops: float = PEAK_FLOPS

    @property
    def gpu_flops(self) -> float | None:
        """Training FLOPs of the GPU jobs (None when any of them is unknown)."""
        values = [j.flops for j in self.jobs if j.gpus]
        return None if None in values else float(sum(v for v in values if v is not None))

    @property
    def gpu_hours(self) -> float | None:
        flops = self.gpu_flops
        return None if flops is None else flops / (self.peak_flops * self.mfu) / 3600

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "jobs": [j.to_dict() for j in self.jobs],
                "visible_gpus": self.visible_gpus, "mfu": self.mfu,
                "peak_flops": self.peak_flops, "gpu_flops": self.gpu_flops,
                "gpu_hours": self.gpu_hours}


def estimate_job(job: Job) -> JobEstimate:
    """``job``'s devices, tokens and (for neural runs) parameters, memory and FLOPs."""
    base = JobEstimate(job.key, job.kind, job.label, job.gpus, job.cpus)
    if job.kind == "numbers":
        return base
    import torch

    from convergent.train.config import TrainConfig
    from convergent.train.engine import resolve_precision
    from convergent.train.flops import flops_per_token, parameter_count
    from convergent.train.memory import estimate_memory

    config = TrainConfig.from_dict(job.config["train"])
    if not config.neural:
        return JobEstimate(**{**asdict(base), "tokens": config.tokens})
    parameters = int(parameter_count(config.arch, config.model, config.vocab_size)["total"])
    per_token = float(flops_per_token(config.arch, config.model, config.vocab_size,
                                      config.seq_len))
    # memory at the precision the engine picks on the planned device (auto: bf16 on GPUs)
    device = torch.device("cuda" if job.gpus > 0 else "cpu")
    estimate = estimate_memory(config, config.vocab_size, config.engine.nproc,
                               precision=resolve_precision(config.engine.precision, device))
    return JobEstimate(job.key, job.kind, job.label, job.gpus, job.cpus, config.tokens,
                       parameters, int(estimate.total), per_token * config.tokens)


def estimate_plan(the_plan: Plan, visible_gpus: int, mfu: float = MFU,
                  peak_flops: float = PEAK_FLOPS) -> PlanEstimate:
    """Estimates of every job of ``the_plan`` (already placed for ``visible_gpus``)."""
    return PlanEstimate(the_plan.name, tuple(estimate_job(j) for j in the_plan.jobs.values()),
                        visible_gpus, mfu, peak_flops)


def dry_run(spec: ExperimentSpec, gpus: int | None = None) -> tuple[Plan, PlanEstimate]:
    """``spec``'s plan placed for ``gpus`` GPUs (default: the visible ones), and its estimate.

    Starts no backend and writes nothing.
    """
    from convergent.experiments.backends.local import visible_gpus

    count = len(visible_gpus()) if gpus is None else gpus
    the_plan = make_plan(spec, cuda=count > 0)
    return the_plan, estimate_plan(the_plan, count)


def _count(value: float | None) -> str:
    if value is None:
        return "n/a"
    for size, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:.1f}{suffix}"
    return f"{value:.0f}"


def _bytes(value: int | None) -> str:
    return "n/a" if value is None else f"{value / 2**30:.2f} GiB"


def format_estimate(estimate: PlanEstimate) -> str:
    """The dry run's text: one line per job, then the totals."""
    rows = [("kind", "label", "devices", "tokens", "params", "memory/device")]
    for job in estimate.jobs:
        trains = job.kind != "numbers"
        rows.append((job.kind, job.label, job.devices,
                     _count(job.tokens) if trains else "-",
                     _count(job.parameters) if trains else "-",
                     _bytes(job.memory_bytes) if trains else "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [f"plan {estimate.name}: {len(estimate.jobs)} jobs, placed for "
             f"{estimate.visible_gpus or 'no'} visible GPU(s); nothing is run or written"]
    lines += ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
              for r in rows]
    gpu_jobs = [j for j in estimate.jobs if j.gpus]
    cpu_jobs = len(estimate.jobs) - len(gpu_jobs)
    total = (f"total: {len(gpu_jobs)} GPU job(s) ({sum(j.gpus for j in gpu_jobs)} GPUs "
             f"asked for), {cpu_jobs} CPU job(s)")
    hours = estimate.gpu_hours
    if gpu_jobs and hours is None:
        total += "; GPU-hours n/a (no FLOPs estimate)"
    elif gpu_jobs:
        total += (f"; {estimate.gpu_flops:.2e} FLOPs of training = {hours:.1f} GPU-hours "
                  f"at {estimate.mfu:.0%} MFU of {PEAK_NAME} "
                  f"({estimate.peak_flops / 1e12:.0f} TFLOP/s)")
    lines.append(total)
    return "\n".join(lines)
