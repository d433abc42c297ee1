"""Fixtures of the release tool's tests: seed-style wheels built with gcc and repaired by the real auditwheel."""
from __future__ import annotations

import os
import shutil
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


@pytest.fixture(scope="session")
def cyfes_release(tmp_path_factory) -> Path:
    """The `cyfes-release` console script of `pip install './tools[conda]'` in a fresh venv (no system
    site-packages, no checkout on its path): what a user runs, so the tests of hostile input exercise the installed
    package (cyfes_release), its entry point and its declared dependencies, not `python -m tools.release`."""
    tmp = tmp_path_factory.mktemp("installed-tool")
    # from a copy: setuptools writes build/ and *.egg-info next to the sources it builds
    src = shutil.copytree(ROOT / "tools", tmp / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info",
                                                                                    "build"))
    venv = tmp / "venv"
    subprocess.run([wf.base_python(), "-m", "venv", str(venv)], check=True, capture_output=True, timeout=300)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    inst = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                           f"{src}[conda]"], capture_output=True, text=True, env=env, timeout=600)
    if inst.returncode != 0:  # offline without the dependencies in pip's cache or a local index
        pytest.skip(f"cannot pip install ./tools[conda] into a fresh venv: {wf.pip_error(inst.stderr)}")
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import cyfes_release; print(cyfes_release.__file__)"],
                           capture_output=True, text=True, cwd=tmp, env=env, timeout=60)
    assert where.stdout.startswith(str(venv)), where.stdout + where.stderr  # the installed copy, not the checkout
    return venv / "bin" / "cyfes-release"


def release(*args: str, cwd: Path = ROOT, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run the tool as a user does: python -m tools.release ..., from the repository root."""
    return subprocess.run([sys.executable, "-m", "tools.release", *args], cwd=cwd, capture_output=True, text=True,
                          env=env, timeout=600)


@pytest.fixture
def run_release():
    return release
