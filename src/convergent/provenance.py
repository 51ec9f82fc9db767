"""What a result needs to be reproduced: library versions and a hash of the exact inputs."""

from __future__ import annotations

import hashlib
import platform
from importlib import metadata

import numpy as np

_TRACKED = ("convergent", "numpy", "scipy", "torch", "transformers", "gensim", "scikit-learn")


def versions() -> dict[str, str]:
    """Versions of Python and of the installed libraries that can change a number."""
    found = {"python": platform.python_version()}
    for name in _TRACKED:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def array_hash(values: np.ndarray) -> str:
    """sha256 (first 16 hex digits) of the array's dtype, shape and bytes."""
    arr = np.ascontiguousarray(values)
    digest = hashlib.sha256(f"{arr.dtype}{arr.shape}".encode())
    digest.update(arr.tobytes())
    return digest.hexdigest()[:16]
