"""Fixtures of the release tool's tests: seed-style wheels built with gcc and repaired by the real auditwheel."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(__file__))  # wheelfactory
ROOT = Path(__file__).resolve().parents[2]

import wheelfactory as wf  # noqa: E402


@pytest.fixture(scope="session")
def seed(tmp_path_factory) -> dict[str, Path]:
    """raw: as a backend builds it; repaired: after `auditwheel repair` (the broken one); libdir: libgraft."""
    tmp = tmp_path_factory.mktemp("seed")
    raw, libdir = wf.build_seed(tmp)
    repaired = wf.auditwheel_repair(raw, libdir, tmp / "wheelhouse")
    return {"raw": raw, "repaired": repaired, "libdir": libdir, "dir": tmp}


def release(*args: str, cwd: Path = ROOT, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run the tool as a user does: python -m tools.release ..., from the repository root."""
    return subprocess.run([sys.executable, "-m", "tools.release", *args], cwd=cwd, capture_output=True, text=True,
                          env=env, timeout=600)


@pytest.fixture
def run_release():
    return release
