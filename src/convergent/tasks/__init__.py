"""Synthetic training tasks: chunked addition (Fu et al. 2026) and its reproduction.

- :mod:`~convergent.tasks.addition`: the task format, generator and tokenizer.
- :mod:`~convergent.tasks.dataset`: train/test split by operand pairs, batch source.
- :mod:`~convergent.tasks.evaluate`: exact-match accuracy, number-token embeddings.
- :mod:`~convergent.tasks.run`: train a task run through the engine, evaluate checkpoints.
- :mod:`~convergent.tasks.experiment`: the four-setting reproduction.
"""

from convergent.tasks.addition import AdditionTask
from convergent.tasks.dataset import AdditionBatches, AdditionSplit, SplitConfig

__all__ = ["AdditionBatches", "AdditionSplit", "AdditionTask", "SplitConfig"]
