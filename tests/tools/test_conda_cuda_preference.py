"""conda-forge's CUDA conventions on real packages: the cpu and cuda13x packages of one TEST FIXTURE wheel
(`cuda_sum`, built here with gcc; the CUDA one links a libcudart.so.13 stub), read back from info/index.json
with the tool's own .conda reader, and py-rattler's real solver over a local channel choosing between them:
the CUDA build where `__cuda` is present, the CPU build where it is absent or too old for CUDA 13."""
from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest
import rattler
from rattler import BuildString, GenericVirtualPackage, PackageName, Version

from tests.tools.test_conda_variants import variant_wheel
from tests.tools.wheelfactory import PY
from tools.release.conda.archive import read_conda
from tools.release.conda.channel import channel_of, virtual_packages
from tools.release.conda.fixtures import build_fixture_channel, python_fixtures, stand_in
from tools.release.conda.meta import SUBDIR
from tools.release.conda.package import make_channel
from tools.release.conda.variants import DEFAULT_VARIANTS, VARIANTS, conda_name, variant

ROOT = Path(__file__).resolve().parents[2]
PYTAG = PY.replace(".", "")
DIST = "cuda_sum"  # an underscore, so the conda name must come out hyphenated


@pytest.fixture(scope="module")
def channels(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, dict]]:
    tmp = tmp_path_factory.mktemp("cudapref")
    wheels = [variant_wheel(tmp / "cpu", None, "", DIST), variant_wheel(tmp / "cu13", "libcudart.so.13", "13.0", DIST)]
    pkgs = make_channel(wheels, tmp / "channel", root=ROOT, variants=[variant("cpu"), variant("cuda13x")])
    indexes = {v: json.loads(read_conda(p.path)["info/index.json"].data) for v, p in zip(("cpu", "cuda13x"), pkgs)}
    gcc = subprocess.run(["gcc", "-dumpfullversion"], capture_output=True, text=True, check=True).stdout.strip()
    full = ".".join(map(str, sys.version_info[:3]))
    # TEST FIXTURES (metadata only): what the two packages depend on, so the solver has a complete channel
    stand_ins = [stand_in("libgomp", gcc, "GNU OpenMP"), stand_in("_openmp_mutex", "4.5", "GNU OpenMP", "fixture_gnu",
                                                                     ["libgomp"]),
                 stand_in("numpy", "2.0.0", "numpy"), stand_in("cuda-version", "13.0", "pins CUDA 13.0"),
                 stand_in("cuda-cudart", "13.0.96", "the CUDA 13 runtime", depends=["cuda-version >=13.0,<13.1.0a0"])]
    build_fixture_channel(tmp / "fixtures", stand_ins + python_fixtures(PY, full))
    return tmp / "channel", tmp / "fixtures", indexes


def test_variant_names_and_default_set() -> None:
    assert [v.name for v in VARIANTS] == ["cpu", "cuda118", "cuda12x", "cuda13x"]
    assert [v.tag for v in VARIANTS] == ["cpu", "cuda118", "cuda129", "cuda130"]
    assert [v.name for v in DEFAULT_VARIANTS] == ["cpu", "cuda12x", "cuda13x"]  # cuda118 only when asked for


@pytest.mark.parametrize("dist, name", [("cuda_sum", "cuda-sum"), ("cyfes", "cyfes"), ("My.Pkg__x", "my-pkg-x")])
def test_conda_name(dist: str, name: str) -> None:
    assert conda_name(dist) == name


def test_index_json_of_each_variant(channels) -> None:
    _, _, idx = channels
    cpu, cuda = idx["cpu"], idx["cuda13x"]
    assert (cpu["name"], cpu["build"], cpu["build_number"]) == ("cuda-sum", variant("cpu").build_string(PY, 0), 0)
    assert (cuda["name"], cuda["build"], cuda["build_number"]) == \
        ("cuda-sum", variant("cuda13x").build_string(PY, 200), 200)
    assert not [d for d in cpu["depends"] if "cuda" in d] and not [c for c in cpu["constrains"] if "cuda" in c]
    assert {"__cuda", "cuda-version >=13.0,<14", "cuda-cudart >=13.0,<14.0a0"} <= set(cuda["depends"])
    assert "__cuda >=13" in cuda["constrains"]
    # apart from CUDA, the two builds need the same things
    assert sorted(set(cuda["depends"]) - {"__cuda", "cuda-version >=13.0,<14", "cuda-cudart >=13.0,<14.0a0"}) \
        == cpu["depends"]


def solved_build(channels, cuda: str | None) -> str:
    channel, fixtures, _ = channels
    host = [v for v in virtual_packages() if v.name.normalized != "__cuda"]
    if cuda:
        host.append(GenericVirtualPackage(PackageName("__cuda"), Version(cuda), BuildString("0")))
    records = asyncio.run(rattler.solve([channel_of(channel), channel_of(fixtures)], ["cuda-sum"],
                                        platforms=[SUBDIR, "noarch"], virtual_packages=host))
    return next(str(r.build) for r in records if r.name.normalized == "cuda-sum")


@pytest.mark.parametrize("cuda, build", [("13.0", ("cuda13x", 200)), (None, ("cpu", 0)), ("12.9", ("cpu", 0))],
                         ids=["driver-cuda13", "no-driver", "driver-cuda12"])
def test_solver_prefers_cuda_only_where_the_driver_runs_it(channels, cuda: str | None, build: tuple) -> None:
    name, number = build
    assert solved_build(channels, cuda) == variant(name).build_string(PY, number)
