"""Experiments at scale: TOML specs, content-hashed jobs, local/Ray backends, a results table.

``load_spec(path)`` -> :class:`ExperimentSpec`; ``run_experiment(spec, out, backend)``
runs every unfinished job and writes ``out/results.parquet``; ``load_table(out)`` reads it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from convergent.experiments.spec import ExperimentSpec, load_spec, parse_spec

if TYPE_CHECKING:
    from convergent.experiments.plan import Plan, make_plan
    from convergent.experiments.runner import RunSummary, run_experiment
    from convergent.experiments.store import filter_table, load_table

__all__ = ["ExperimentSpec", "Plan", "RunSummary", "filter_table", "load_spec", "load_table",
           "make_plan", "parse_spec", "run_experiment"]

_LAZY = {"make_plan": "plan", "Plan": "plan", "run_experiment": "runner", "RunSummary": "runner",
         "load_table": "store", "filter_table": "store"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"convergent.experiments.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'convergent.experiments' has no attribute {name!r}")
