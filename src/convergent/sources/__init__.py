"""Sources of representations: bundled names, word-vector files, matrices, models, runs.

``open_source(spec, **options)`` resolves a spec string to a :class:`Source`; every source
returns :class:`~convergent.representation.Representation` objects.
"""

from convergent.sources.base import Source, reject_options
from convergent.sources.resolve import open_source
from convergent.sources.selection import parse_range, require_numbers

__all__ = ["Source", "open_source", "parse_range", "reject_options", "require_numbers"]
