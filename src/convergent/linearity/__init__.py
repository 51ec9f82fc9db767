"""Linear properties of relations and their identifiability (Park et al. 2024; Marconato et
al. 2025).

``analyze_linearity(space)`` measures, per relation, parallelism of pair differences,
relational linearity, probing and steering under the Euclidean, causal and a random inner
product; ``identify(predictor, pairs)`` checks which of those statistics every
distribution-equivalent next-token predictor shares. Build a space with
``static_space(source, pairs)`` (word vectors) or ``predictor_space(predictor, pairs)``.
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "analyze_linearity": "convergent.linearity.analyze",
    "effective_complexity": "convergent.linearity.identify",
    "load_pairs": "convergent.linearity.pairs",
    "google_analogy": "convergent.linearity.pairs",
    "read_pairs_file": "convergent.linearity.pairs",
    "read_pairs": "convergent.linearity.readers",
    "detect_format": "convergent.linearity.readers",
    "PairSet": "convergent.linearity.pairs",
    "static_space": "convergent.linearity.space",
    "predictor_space": "convergent.linearity.space",
    "LogLinearPredictor": "convergent.linearity.predictors",
    "Reparameterization": "convergent.linearity.predictors",
    "predictor_from": "convergent.linearity.predictors",
    "HFPredictor": "convergent.linearity.hf",
    "planted_predictor": "convergent.linearity.synthetic",
    "LinearityResult": "convergent.linearity.results",
    "IdentifyResult": "convergent.linearity.results",
}

# ``identify`` is both a submodule and its main function: bind the function eagerly, or the
# submodule import would shadow it (numpy and tqdm only; no scipy or torch).
from convergent.linearity.identify import identify as identify  # noqa: E402

__all__ = sorted([*_EXPORTS, "identify"])


def __getattr__(name: str) -> Any:
    """Lazy exports: importing the package does not import scipy or torch."""
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'convergent.linearity' has no attribute {name!r}")
