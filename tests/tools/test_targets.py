"""tools/release/targets.py is the one table of supported Pythons: pyproject.toml, release.yaml and the tool's
defaults must say the same."""
from __future__ import annotations

import re
from pathlib import Path

from tools.release.config import load_config
from tools.release.targets import ABI3_FROM, PYTHONS, REQUIRES_PYTHON, abi3_pythons, build_pythons, python_versions
from tools.release.toolchain.pythons import default_pythons
from tools.release.wheel.archive import Wheel
from tools.release.wheel.declared import wheel_pythons

ROOT = Path(__file__).resolve().parents[2]

try:
    import tomllib
except ImportError:  # Python < 3.11
    tomllib = None


def pyproject() -> dict:
    text = (ROOT / "pyproject.toml").read_text()
    if tomllib is not None:
        return tomllib.loads(text)
    import pytest
    pytest.skip("needs tomllib (Python >= 3.11)")


def test_table_shape():
    assert python_versions() == ["3.9", "3.10", "3.11", "3.12", "3.13", "3.14"]
    assert build_pythons() == ["3.9", "3.10", "3.11"] and abi3_pythons() == ["3.11", "3.12", "3.13", "3.14"]
    assert [p.wheel_tag for p in PYTHONS[:3]] == ["cp39-cp39", "cp310-cp310", "cp311-abi3"]


def test_pyproject_agrees():
    data = pyproject()
    assert data["project"]["requires-python"] == REQUIRES_PYTHON == ">=3.9"
    assert data["tool"]["scikit-build"]["wheel"]["py-api"] == "cp" + ABI3_FROM.replace(".", "")
    listed = [c.rsplit(" ", 1)[1] for c in data["project"]["classifiers"]
              if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)]
    assert listed == python_versions()


def test_release_yaml_and_defaults_agree():
    cfg = load_config(ROOT / "release.yaml")
    assert list(cfg.python) == build_pythons()
    found = {v: f"/x/python{v}" for v in ["3.8", *python_versions()]}
    assert default_pythons(found) == build_pythons()


def test_check_covers_every_python_an_abi3_wheel_serves():
    abi3 = Wheel("w.whl", "cyfes", "1.0.0", "cp311-abi3-manylinux_2_17_x86_64", {})
    assert wheel_pythons(abi3) == abi3_pythons()
    assert wheel_pythons(abi3, ("3.9", "3.11")) == abi3_pythons()
    own = Wheel("w.whl", "cyfes", "1.0.0", "cp39-cp39-manylinux_2_17_x86_64", {})
    assert wheel_pythons(own) == ["3.9"]
