"""Synthetic training tasks: chunked addition (Fu et al. 2026) and its reproduction.

- :mod:`~convergent.tasks.addition`: the task format, generator and tokenizer.
- :mod:`~convergent.tasks.dataset`: train/test split by operand pairs, batch source.
- :mod:`~convergent.tasks.evaluate`: exact-match accuracy, number-token embeddings.
- :mod:`~convergent.tasks.run`: train a task run through the engine, evaluate checkpoints.
- :mod:`~convergent.tasks.experiment`: the four-setting reproduction.
"""

from __future__ import annotations

from typing import Any

__all__ = ["AdditionBatches", "AdditionSplit", "AdditionTask", "SplitConfig"]


def __getattr__(name: str) -> Any:
    """Lazy exports: ``convergent.tasks.cli_support`` must not pull torch into CLI start-up."""
    if name == "AdditionTask":
        from convergent.tasks.addition import AdditionTask

        return AdditionTask
    if name in ("AdditionBatches", "AdditionSplit", "SplitConfig"):
        from convergent.tasks import dataset

        return getattr(dataset, name)
    raise AttributeError(f"module 'convergent.tasks' has no attribute {name!r}")
