"""The conda packages `make dist` wrote (release marker: runs after the release): one per Python and per variant
this machine can build, each with its variant's CUDA requirements, read from the real ELF files inside it, and
a glibc floor conda-forge's users have (__glibc <= 2.28: RHEL 8 and newer)."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.tools.test_conda_package import assert_check_cli_on_conda, members, readelf_glibc
from tools.release.artifact import open_conda
from tools.release.check import analyze
from tools.release.conda.variants import availability
from tools.release.config import load_config

pytestmark = pytest.mark.release

ROOT = Path(__file__).resolve().parents[2]
CONFIG = load_config(ROOT / "release.yaml")
PACKAGES = sorted((ROOT / CONFIG.conda.channel / "linux-64").glob("cyfes-*.conda"))
GLIBC_FLOOR = (2, 28)


def index_of(path: Path) -> dict:
    return json.loads(members(path)["info/index.json"])


def test_every_buildable_variant_was_released() -> None:
    tags = {index_of(p)["build"].split("_")[0] for p in PACKAGES}
    wanted = {a.variant.tag for a in availability(CONFIG.conda.variants) if a.buildable
              and (CONFIG.cuda.enabled or a.variant.cuda is None)}
    assert PACKAGES, f"no packages in {CONFIG.conda.channel}: run `make dist` first"
    assert wanted <= tags


@pytest.mark.parametrize("pkg", PACKAGES, ids=[p.name for p in PACKAGES])
def test_variant_requirements_match_the_elf_files(pkg: Path) -> None:
    index = index_of(pkg)
    tag = index["build"].split("_")[0]
    got = members(pkg)
    needed = set()
    for name, data in got.items():
        if isinstance(data, bytes) and data[:4] == b"\x7fELF":
            needed |= set(re.findall(rb"libcudart\.so\.[\d.]+", data))
    cuda = sorted(d.split()[0] for d in index["depends"] if d.startswith(("cuda", "cudatoolkit")))
    if tag == "cpu":
        assert not needed and cuda == [] and not [c for c in index["constrains"] if "cuda" in c]
    elif tag == "cuda118":
        assert b"libcudart.so.11.0" in needed and cuda == ["cudatoolkit"]
        assert "__cuda >=11" in index["constrains"]
    else:
        major = tag[4:-1]
        assert f"libcudart.so.{major}".encode() in needed and cuda == ["cuda-cudart", "cuda-version"]
        assert f"__cuda >={major}" in index["constrains"]
    assert f"__glibc >={readelf_glibc(pkg)}" in index["constrains"]
    assert analyze(open_conda(pkg)).ok


@pytest.mark.parametrize("pkg", PACKAGES, ids=[p.name for p in PACKAGES])
def test_glibc_floor_reaches_rhel8(pkg: Path) -> None:
    (glibc,) = [c.split(">=")[1] for c in index_of(pkg)["constrains"] if c.startswith("__glibc")]
    assert tuple(int(x) for x in glibc.split(".")) <= GLIBC_FLOOR, f"{pkg.name} needs glibc {glibc}"


# build strings as conda-forge spells them: cyfes-1.0.0-cuda130_py312h<hash>_200.conda
CUDA_PACKAGES = [p for p in PACKAGES if "-cuda" in p.name]


@pytest.mark.parametrize("pkg", CUDA_PACKAGES, ids=[p.name for p in CUDA_PACKAGES])
def test_check_command_on_the_released_package(pkg: Path, tmp_path: Path) -> None:
    """`python -m tools.release check` on the released package: 0 with its table; 1 naming libcudart once libcufes
    lost its RPATH; 2 on a truncated copy."""
    python = re.search(r"_py3(\d+)h", pkg.name).group(1)
    needs = next(d for d in analyze(open_conda(pkg)).libraries if d.needed.startswith("libcudart.so")).needed
    assert_check_cli_on_conda(pkg, f"lib/python3.{python}/site-packages/cyfes/engine/libcufes.so", needs, tmp_path)
