"""Autocast for our hand-written ``autograd.Function``s, decided per call from the device.

``torch.amp.custom_fwd(device_type=...)`` fixes the device at import time; these helpers
read the autocast state of the inputs' device instead, so one Function serves CPU and CUDA.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch


def autocast_dtype(x: torch.Tensor) -> torch.dtype | None:
    """The autocast dtype active on ``x``'s device, or None when autocast is off there."""
    kind = x.device.type
    return torch.get_autocast_dtype(kind) if torch.is_autocast_enabled(kind) else None


def without_autocast(method: Callable[..., Any]) -> Callable[..., Any]:
    """Run a Function's ``forward``/``backward`` with autocast off on its tensors' device.

    The body then controls its dtypes with explicit casts (autocast would otherwise turn its
    matmuls into bf16 and mix dtypes with its float32 state); a no-op when autocast is off.
    """

    @functools.wraps(method)
    def run(ctx: Any, *args: Any) -> Any:
        kind = next(a.device.type for a in args if isinstance(a, torch.Tensor))
        if not torch.is_autocast_enabled(kind):
            return method(ctx, *args)
        with torch.autocast(kind, enabled=False):
            return method(ctx, *args)

    return run
