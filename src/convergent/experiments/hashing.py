"""Content hashes of job configs: equal configs give equal hashes, on any machine.

A job's identity is the sha256 of its canonical JSON (sorted keys, no whitespace, floats
in ``repr`` form, tuples as lists) together with :data:`FORMAT`. Finished work is found by
this hash, so changing any field of a job's config makes it a new job, and renaming an
experiment or reordering a spec does not.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

from convergent.errors import ConvergentError

FORMAT = 1  # bump when the meaning of a job config changes, so old results are not reused
LENGTH = 16


def canonical(value: Any) -> Any:
    """``value`` as plain JSON data with a single spelling (raises on what JSON cannot hold)."""
    if isinstance(value, dict):
        return {str(k): canonical(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, list | tuple):
        return [canonical(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ConvergentError(f"job config value {value!r}: not a finite number")
        return float(value)
    if hasattr(value, "item") and callable(value.item):  # numpy scalar
        return canonical(value.item())
    raise ConvergentError(f"job config value {value!r}: type {type(value).__name__} has no "
                          "canonical JSON form")


def canonical_json(value: Any) -> str:
    return json.dumps(canonical(value), sort_keys=True, separators=(",", ":"), allow_nan=False)


def content_hash(value: Any) -> str:
    """First :data:`LENGTH` hex digits of sha256 over the canonical JSON of ``value``."""
    text = canonical_json({"format": FORMAT, "job": value})
    return hashlib.sha256(text.encode()).hexdigest()[:LENGTH]
