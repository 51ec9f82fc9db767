"""Shared pytest setup: tests marked ``gpu`` are skipped where no CUDA GPU is present."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    del config
    try:
        import torch

        has_gpu = torch.cuda.is_available()
    except ModuleNotFoundError:
        has_gpu = False
    if has_gpu:
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
