"""Origins of linear representations: the latent-concept model of next-token prediction
(Jiang et al., ICML 2024), next-token models trained on it, and their concept geometry.

``Simulator`` draws (context, next token) pairs; ``train`` fits a log-linear or small neural
model with gd / sgd / adam / muon and measures, at checkpoints, within-concept parallelism,
between-concept orthogonality (Euclidean and causal inner product), context/unembedding
alignment and concept probes; ``lm_concept_geometry`` measures the same on a real LM's
unembedding with concept word pairs; ``embedding_alignment`` the alignment of matched
concepts' embedding and unembedding directions on an untied model. See docs/origins.md.
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "ConceptStructure": "convergent.origins.structure",
    "independent": "convergent.origins.structure",
    "chain": "convergent.origins.structure",
    "load_structure": "convergent.origins.structure",
    "Simulator": "convergent.origins.simulator",
    "TrainConfig": "convergent.origins.training",
    "OriginsRun": "convergent.origins.results",
    "train": "convergent.origins.training",
    "ConceptGeometry": "convergent.origins.metrics",
    "concept_geometry": "convergent.origins.metrics",
    "lm_concept_geometry": "convergent.origins.real_lm",
    "LMConceptResult": "convergent.origins.real_lm",
    "run_sweep": "convergent.origins.sweep",
    "embedding_alignment": "convergent.origins.alignment",
    "AlignmentResult": "convergent.origins.alignment",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Lazy exports: torch and matplotlib load only when a function needs them."""
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'convergent.origins' has no attribute {name!r}")
