"""Results of a training run: measurements at each checkpoint, and the finished run."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from convergent.origins.metrics import ConceptGeometry

if TYPE_CHECKING:
    from convergent.origins.simulator import Simulator
    from convergent.origins.training import TrainConfig

_GEOMETRY_ARRAYS = (
    "within",
    "between_euclid",
    "between_causal",
    "alignment_euclid",
    "alignment_causal",
    "probe",
)


@dataclass(frozen=True, eq=False)
class Checkpoint:
    """Measurements at one step: loss, loss minus the data's entropy floor, geometry."""

    step: int
    loss: float
    excess_loss: float
    geometry: ConceptGeometry

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "loss": self.loss,
            "excess_loss": self.excess_loss,
            **self.geometry.to_dict(),
        }


@dataclass(frozen=True, eq=False)
class OriginsRun:
    """A finished run: configuration, simulator, data summary, history and final weights.

    ``unembedding`` [2^m, d] and ``context_embedding`` [n_seen, d] (rows of
    ``seen_contexts``) are the final weights; they are not part of ``to_dict``.
    """

    config: TrainConfig
    simulator: Simulator
    data: dict[str, Any]
    history: tuple[Checkpoint, ...]
    unembedding: np.ndarray
    context_embedding: np.ndarray
    seen_contexts: np.ndarray
    seconds: float

    @property
    def final(self) -> ConceptGeometry:
        return self.history[-1].geometry

    def to_dict(self) -> dict[str, Any]:
        from convergent.provenance import versions

        return {
            "kind": "origins-run",
            "config": self.config.to_dict(),
            "simulator": self.simulator.describe(),
            "data": self.data,
            "final": self.history[-1].to_dict(),
            "history": [c.to_dict() for c in self.history],
            "seconds": self.seconds,
            "versions": versions(),
        }


def plain_checkpoint(entry: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint entry with its geometry as plain data (for the resumable state)."""
    return {**entry, "geometry": entry["geometry"].to_dict()}


def checkpoint_from_dict(entry: dict[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`plain_checkpoint` (JSON nulls become NaN)."""
    geo = entry["geometry"]
    arrays = {k: np.asarray(geo[k], dtype=np.float64) for k in _GEOMETRY_ARRAYS}
    geometry = ConceptGeometry(
        names=tuple(geo["concepts"]), causal_rank=int(geo["causal_rank"]), **arrays
    )
    return {**entry, "geometry": geometry}


def as_checkpoint(entry: dict[str, Any]) -> Checkpoint:
    return Checkpoint(
        step=int(entry["step"]),
        loss=float(entry["loss"]),
        excess_loss=float(entry["excess_loss"]),
        geometry=entry["geometry"],
    )
