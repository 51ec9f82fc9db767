"""Extraction of representations from Hugging Face models.

- :mod:`~convergent.extract.sites`: standard site names and the per-architecture table.
- :mod:`~convergent.extract.templates`: placing numbers and words in context.
- :mod:`~convergent.extract.engine`: batched forward passes with pooling hooks.
- :mod:`~convergent.extract.runner`: sharded, resumable extraction into a cache folder.
- :mod:`~convergent.extract.manifest`, :mod:`~convergent.extract.shards`: the cache format.

Read a cache with :func:`convergent.sources.cache.open_cache` (or ``cache:DIR``).
"""
