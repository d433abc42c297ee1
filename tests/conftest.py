"""Shared fixtures: fresh random generators (seed printed, so a failure can be replayed) and the `gpu` marker.

Tests that need a CUDA GPU carry `@pytest.mark.gpu`; they are skipped, with the reason, when this build or
machine cannot run the GPU backend (no CUDA build, no driver, no device).
"""
from __future__ import annotations

import os
import sys
from typing import List

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))  # `import reference` from any test module


def gpu_ids() -> List[int]:
    """Ids of the usable CUDA devices; [] without a CUDA build, driver or GPU."""
    try:
        from cyfes.engine import backends as _backends
    except ImportError:
        return []
    return [d["id"] for d in _backends.gpu_devices()]


def _gpu_skip_reason() -> str:
    try:
        from cyfes import _build_info
    except ImportError:
        return "cyfes is not importable"
    if not _build_info.CUDA:
        return "cyfes was built without CUDA"
    return "no usable CUDA device (no GPU or no NVIDIA driver)"


def pytest_collection_modifyitems(config: pytest.Config, items: List[pytest.Item]) -> None:
    if gpu_ids():
        return
    skip = pytest.mark.skip(reason=_gpu_skip_reason())
    for item in items:
        if item.get_closest_marker("gpu") is not None:
            item.add_marker(skip)


@pytest.fixture
def rng() -> np.random.Generator:
    """A generator with a fresh seed per test; the seed is printed (pytest shows it on failure)."""
    seed = int(os.environ.get("CYFES_TEST_SEED") or int.from_bytes(os.urandom(4), "little"))
    print(f"random seed: {seed} (replay with CYFES_TEST_SEED={seed})")
    return np.random.default_rng(seed)
