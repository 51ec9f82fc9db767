"""Prepared training data: corpora tokenized once into memmapped shards with a manifest.

``prepare_corpus(...)`` makes (or resumes) a prepared folder, ``open_prepared(folder)``
reads one; see ``docs/data.md``.
"""

from convergent.data.prepare import PreparedData, open_prepared, prepare_corpus
from convergent.data.shards import ShardedStream

__all__ = ["PreparedData", "ShardedStream", "open_prepared", "prepare_corpus"]
