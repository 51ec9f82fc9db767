"""Train a next-token model on the simulator and measure its geometry at checkpoints.

Data: by default the exact population distribution P(x) P(y | x); with ``samples`` = N,
N simulator draws aggregated to next-token counts per distinct context. Full batch ("gd",
and the default for "adam"/"muon") minimizes the exact mean cross-entropy; minibatch runs
("sgd", or any optimizer with ``batch_size``) draw from the N samples (or fresh from the
simulator on the exact distribution) with a generator seeded by (seed, step), so a resumed
run takes the same batches. Checkpoints are log-spaced from step 0 to ``steps``.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from convergent.errors import ConvergentError
from convergent.origins.metrics import ConceptGeometry, concept_geometry
from convergent.origins.results import (
    OriginsRun,
    as_checkpoint,
    checkpoint_from_dict,
    plain_checkpoint,
)
from convergent.origins.simulator import (
    MAX_MODEL_CONCEPTS,
    REVEALED_0,
    REVEALED_1,
    Samples,
    Simulator,
    aggregate,
)

OPTIMIZERS = ("gd", "sgd", "adam", "muon")
# Per-model, per-optimizer defaults, measured so that each reaches the entropy floor on the
# default simulation (6 independent concepts, d = 32, 1000 steps) without diverging; the
# neural encoder diverges under GD with lr 5 (docs/origins.md).
DEFAULT_LR = {
    "loglinear": {"gd": 20.0, "sgd": 10.0, "adam": 0.01, "muon": 0.01},
    "neural": {"gd": 1.0, "sgd": 1.0, "adam": 0.01, "muon": 0.01},
}
LOGLINEAR_STEP_SCALE = 1.25  # default GD/SGD lr <= this / max P(x) (see resolve)
DEFAULT_SGD_BATCH = 512
MAX_FULL_BATCH_CELLS = 50_000_000  # seen contexts x tokens in one full-batch logit matrix


@dataclass(frozen=True)
class TrainConfig:
    """How to train: model kind, dimension, optimizer and its settings, data size, seed.

    ``lr`` / ``batch_size`` of None take the defaults (DEFAULT_LR per model; full batch
    except for "sgd", which uses DEFAULT_SGD_BATCH). ``samples`` of None trains on the exact
    population distribution P(x) P(y | x) (minibatches then draw fresh samples each step).
    """

    model: str = "loglinear"
    dim: int = 32
    optimizer: str = "gd"
    lr: float | None = None
    steps: int = 1000
    batch_size: int | None = None
    samples: int | None = None
    init_scale: float = 0.01
    hidden: int = 64
    weight_decay: float = 0.0
    checkpoints: int = 30
    seed: int = 0

    def resolved(self) -> TrainConfig:
        """The configuration with defaults filled in and every value checked."""
        if self.optimizer not in OPTIMIZERS:
            raise ConvergentError(
                f"unknown optimizer {self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}"
            )
        if self.model not in DEFAULT_LR:
            raise ConvergentError(
                f"unknown model {self.model!r}; choose one of {', '.join(DEFAULT_LR)}"
            )
        if self.optimizer == "gd" and self.batch_size is not None:
            raise ConvergentError("optimizer 'gd' is full-batch; use 'sgd' for minibatches")
        batch = self.batch_size
        if batch is None and self.optimizer == "sgd":
            batch = DEFAULT_SGD_BATCH
        lr = DEFAULT_LR[self.model][self.optimizer] if self.lr is None else self.lr
        for name, value in (("steps", self.steps), ("samples", self.samples or 1)):
            if value < 1:
                raise ConvergentError(f"{name} must be positive, got {value}")
        if lr <= 0 or (batch is not None and batch < 1) or self.checkpoints < 2:
            raise ConvergentError("lr and batch size must be positive and checkpoints >= 2")
        return replace(self, lr=float(lr), batch_size=batch)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def resolve(config: TrainConfig, sim: Simulator) -> TrainConfig:
    """``config.resolved()``, with the log-linear model's default GD/SGD step size capped for
    small simulations.

    A context's f(x) sees a gradient proportional to P(x), so the stable step size of the
    free-table model scales like 1 / max P(x). We cap the default at
    LOGLINEAR_STEP_SCALE / bound, with bound = prod_i max(reveal_i, 1 - reveal_i) >= max P(x).
    Measured divergence thresholds: 2 concepts at most lr 5-10, 3 concepts at most 10-20,
    4 or more concepts stable at 40 (reveal 0.5, noise 0.1, 600 steps).
    """
    if config.lr is None and config.model == "loglinear" and config.optimizer in ("gd", "sgd"):
        bound = float(np.prod([max(r, 1.0 - r) for r in sim.reveal]))
        base = DEFAULT_LR["loglinear"][config.optimizer]
        config = replace(config, lr=min(base, LOGLINEAR_STEP_SCALE / bound))
    return config.resolved()


def checkpoint_steps(steps: int, count: int) -> list[int]:
    """Step 0 and about ``count - 1`` log-spaced steps up to ``steps`` (distinct, sorted)."""
    if count <= 2:
        return [0, steps]
    grid = np.round(np.geomspace(1, steps, count - 1)).astype(int)
    return [0, *(int(s) for s in np.unique(np.append(grid, steps)))]


def simulation_geometry(
    sim: Simulator,
    unembedding: np.ndarray,
    context_embedding: np.ndarray,
    seen: np.ndarray,
    seed: int = 0,
) -> ConceptGeometry:
    """Measure a trained simulation model: token pairs, context pairs and probes per concept."""
    m = sim.m
    tokens = np.arange(sim.n_tokens)
    token_pairs = []
    for i in range(m):
        base = tokens[(tokens >> i) & 1 == 0]
        token_pairs.append((base, base + 2**i))
    states = sim.context_states(seen)
    context_pairs, probe_sets = [], []
    for i in range(m):
        base_rows = np.flatnonzero(states[:, i] == REVEALED_0)
        partner = seen[base_rows] + 3**i
        pos = np.clip(np.searchsorted(seen, partner), 0, seen.size - 1)
        found = seen[pos] == partner
        context_pairs.append((base_rows[found], pos[found]))
        rows = np.flatnonzero(states[:, i] != 0)
        probe_sets.append((rows, states[rows, i] == REVEALED_1))
    return concept_geometry(
        unembedding,
        token_pairs,
        sim.structure.names,
        context_embedding=context_embedding,
        context_pairs=context_pairs,
        probe_sets=probe_sets,
        seed=seed,
    )


def fingerprint(sim: Simulator, config: TrainConfig) -> str:
    text = json.dumps({"sim": sim.describe(), "config": config.to_dict()}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def train(
    sim: Simulator,
    config: TrainConfig,
    *,
    state_dir: str | Path | None = None,
    progress: bool = True,
) -> OriginsRun:
    """Train ``config.model`` on ``config.samples`` simulator samples; measure at checkpoints.

    With ``state_dir`` the run saves its state at every checkpoint and resumes from it.
    """
    import torch

    config = resolve(config, sim)
    # The matrices are small: one thread is fastest. On a busy 2-core machine torch ran 14x
    # and the numpy (OpenBLAS) probe 200x slower with their default thread pools.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with _single_threaded_blas():
            return _train(sim, config, state_dir, progress)
    finally:
        torch.set_num_threads(threads)


def _single_threaded_blas() -> Any:
    """Limit numpy's BLAS to one thread (threadpoolctl, when installed)."""
    try:
        from threadpoolctl import threadpool_limits
    except ModuleNotFoundError:
        from contextlib import nullcontext

        return nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _train(
    sim: Simulator, config: TrainConfig, state_dir: str | Path | None, progress: bool
) -> OriginsRun:
    import torch
    from tqdm.auto import tqdm

    from convergent.origins.models import build_model
    from convergent.origins.state import load_state, save_state
    from convergent.provenance import array_hash

    if not 2 <= sim.m <= MAX_MODEL_CONCEPTS:
        raise ConvergentError(
            f"training needs 2 to {MAX_MODEL_CONCEPTS} concepts (two for a within-concept "
            f"cosine, 2^m tokens), got {sim.m}"
        )
    started = time.perf_counter()
    samples: Samples | None = None
    if config.samples is None and sim.n_contexts * sim.n_tokens * sim.m > MAX_FULL_BATCH_CELLS:
        raise ConvergentError(
            f"the exact distribution over {sim.n_contexts} contexts x {sim.n_tokens} tokens is "
            "too large; train on samples (--samples N) or use fewer concepts"
        )
    if config.samples is None:
        p_x = sim.context_distribution()
        seen = np.flatnonzero(p_x > 0)
        counts = p_x[seen, None] * sim.next_token_distribution(seen)
    else:
        samples = sim.sample(config.samples, seed=config.seed)
        seen, counts = aggregate(samples, sim.n_tokens)
    full_batch = config.batch_size is None
    if seen.size * sim.n_tokens > MAX_FULL_BATCH_CELLS:
        raise ConvergentError(
            f"{seen.size} contexts x {sim.n_tokens} tokens is too large to evaluate in one "
            f"batch; use fewer concepts or fewer samples"
        )
    entropy = _conditional_entropy(counts)
    model = build_model(
        config.model,
        sim.m,
        config.dim,
        init_scale=config.init_scale,
        hidden=config.hidden,
        seed=config.seed,
    )
    optimizers = _optimizers(model, config)
    seen_t = torch.from_numpy(seen)
    counts_t = torch.from_numpy(counts).float()
    total = float(counts.sum())

    def batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
        if samples is None:
            fresh = sim.sample(int(config.batch_size), seed=[config.seed, step])
            return torch.from_numpy(fresh.contexts), torch.from_numpy(fresh.tokens)
        rng = np.random.default_rng([config.seed, step])
        idx = rng.integers(0, len(samples), int(config.batch_size))
        return torch.from_numpy(samples.contexts[idx]), torch.from_numpy(samples.tokens[idx])

    def full_loss() -> torch.Tensor:
        logp = torch.log_softmax(model.logits(seen_t), dim=1)
        return -(counts_t * logp).sum() / total

    def measure(step: int) -> dict[str, Any]:
        with torch.no_grad():
            loss = float(full_loss())
            g = model.unembeddings().detach().double().numpy()
            f = model.embed(seen_t).detach().double().numpy()
        geometry = simulation_geometry(sim, g, f, seen, seed=config.seed)
        return {"step": step, "loss": loss, "excess_loss": loss - entropy, "geometry": geometry}

    key = fingerprint(sim, config)
    directory = Path(state_dir) if state_dir is not None else None
    start, history = 0, []
    if directory is not None and (restored := load_state(directory, key, model, optimizers)):
        start, saved = restored
        history = [checkpoint_from_dict(h) for h in saved]
    marks = set(checkpoint_steps(config.steps, config.checkpoints))
    if start == 0 and not history:
        history.append(measure(0))
    bar = tqdm(total=config.steps, initial=start, disable=not progress, desc="origins")
    for step in range(start + 1, config.steps + 1):
        if full_batch:
            loss = full_loss()
        else:
            contexts, tokens = batch(step)
            loss = torch.nn.functional.cross_entropy(model.logits(contexts), tokens)
        for opt in optimizers:
            opt.zero_grad(set_to_none=True)
        loss.backward()
        for opt in optimizers:
            opt.step()
        bar.update(1)
        if not np.isfinite(loss.item()):
            bar.close()
            raise ConvergentError(
                f"training diverged at step {step} (loss {loss.item()}); lower the lr "
                f"(now {config.lr})"
            )
        if step in marks:
            history.append(measure(step))
            bar.set_postfix(loss=f"{history[-1]['loss']:.4f}")
            if directory is not None:
                plain = [plain_checkpoint(h) for h in history]
                save_state(directory, key, step, model, optimizers, plain)
    bar.close()
    with torch.no_grad():
        g = model.unembeddings().detach().double().numpy()
        f = model.embed(seen_t).detach().double().numpy()
    data = {
        "samples": None if samples is None else len(samples),
        "exact": samples is None,
        "seen_contexts": int(seen.size),
        "conditional_entropy": entropy,
        "data_hash": array_hash(
            counts if samples is None else np.stack([samples.contexts, samples.tokens])
        ),
    }
    return OriginsRun(
        config=config,
        simulator=sim,
        data=data,
        history=tuple(as_checkpoint(h) for h in history),
        unembedding=g,
        context_embedding=f,
        seen_contexts=seen,
        seconds=time.perf_counter() - started,
    )


def _optimizers(model: Any, config: TrainConfig) -> list[Any]:
    import torch

    params = list(model.parameters())
    lr, wd = config.lr, config.weight_decay
    if config.optimizer in ("gd", "sgd"):
        return [torch.optim.SGD(params, lr=lr, weight_decay=wd)]
    if config.optimizer == "adam":
        return [torch.optim.Adam(params, lr=lr, weight_decay=wd)]
    # Muon orthogonalizes updates of 2-D weights only; the neural encoder's biases use Adam.
    matrices = [p for p in params if p.ndim == 2]
    rest = [p for p in params if p.ndim != 2]
    opts: list[Any] = [
        torch.optim.Muon(matrices, lr=lr, weight_decay=wd, adjust_lr_fn="match_rms_adamw")
    ]
    if rest:
        opts.append(torch.optim.Adam(rest, lr=lr, weight_decay=wd))
    return opts


def _conditional_entropy(counts: np.ndarray) -> float:
    """Empirical H(Y | X) in nats: the lowest mean cross-entropy any model can reach."""
    rows = counts.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(counts > 0, counts * np.log(counts / rows), 0.0)
    return float(-terms.sum() / counts.sum())
