"""A grid of runs over optimizers and dimensions on one simulator, resumable run by run.

Each run writes ``runs/<optimizer>-d<dim>/results.json`` under the output folder; a run whose
results already exist for the same configuration is read back instead of trained again, and
an interrupted run resumes from its last checkpoint (see :mod:`convergent.origins.state`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from convergent.errors import ConvergentError
from convergent.io import write_json_atomic
from convergent.origins.simulator import Simulator
from convergent.origins.training import OPTIMIZERS, TrainConfig, fingerprint, resolve, train


@dataclass(frozen=True)
class SweepResult:
    """One record per run: optimizer, dim, final summary, excess loss, seconds."""

    base: TrainConfig
    simulator: Simulator
    records: tuple[dict[str, Any], ...]

    def to_dict(self) -> dict[str, Any]:
        from convergent.provenance import versions

        return {
            "kind": "origins-sweep",
            "base_config": self.base.to_dict(),
            "simulator": self.simulator.describe(),
            "records": list(self.records),
            "versions": versions(),
        }


def run_sweep(
    sim: Simulator,
    base: TrainConfig,
    optimizers: Sequence[str],
    dims: Sequence[int],
    out: str | Path,
    *,
    progress: bool = True,
) -> SweepResult:
    """Train every (optimizer, dim) pair (``lr`` and ``batch_size`` from each optimizer's
    defaults unless ``base`` sets them) and collect the final metrics."""
    from tqdm.auto import tqdm

    bad = [o for o in optimizers if o not in OPTIMIZERS]
    if bad or not optimizers:
        raise ConvergentError(f"--optimizers: choose from {', '.join(OPTIMIZERS)}, got {bad}")
    if not dims or any(d < 1 for d in dims):
        raise ConvergentError(f"--dims: positive integers needed, got {list(dims)}")
    grid = [(o, d) for o in optimizers for d in dims]
    records = []
    for optimizer, dim in tqdm(grid, desc="sweep", disable=not progress):
        batch = None if optimizer == "gd" else base.batch_size
        config = resolve(replace(base, optimizer=optimizer, dim=dim, batch_size=batch), sim)
        folder = Path(out) / "runs" / f"{optimizer}-d{dim}"
        record = _load_record(folder, sim, config)
        if record is None:
            run = train(sim, config, state_dir=folder, progress=False)
            write_json_atomic(folder / "results.json", run.to_dict())
            _clear_state(folder)
            record = _record(run.to_dict(), fingerprint(sim, config))
            write_json_atomic(folder / "record.json", record)
        records.append(record)
    return SweepResult(base=base, simulator=sim, records=tuple(records))


def _record(result: dict[str, Any], key: str) -> dict[str, Any]:
    final = result["final"]
    return {
        "optimizer": result["config"]["optimizer"],
        "dim": result["config"]["dim"],
        "lr": result["config"]["lr"],
        "batch_size": result["config"]["batch_size"],
        "concepts": len(final["concepts"]),
        "excess_loss": final["excess_loss"],
        **final["summary"],
        "seconds": result["seconds"],
        "fingerprint": key,
    }


def _load_record(folder: Path, sim: Simulator, config: TrainConfig) -> dict[str, Any] | None:
    path = folder / "record.json"
    if not path.is_file():
        return None
    record = json.loads(path.read_text())
    return record if record.get("fingerprint") == fingerprint(sim, config) else None


def _clear_state(folder: Path) -> None:
    from convergent.origins.state import clear_state

    clear_state(folder)
