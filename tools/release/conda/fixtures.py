"""TEST FIXTURES, never published: stand-ins for conda-forge's packages, in a local channel, for verifying offline.

The channel stands in for conda-forge when verifying cyfes's conda packages on a machine that cannot reach one.

Fixtures carry real libraries where the loader trace must show them coming from $PREFIX/lib:
  cuda-cudart  libcudart.so.12/.13 from NVIDIA's PyPI wheel nvidia-cuda-runtime[-cu12] (the same binary
               conda-forge ships), for the CUDA >= 12 variants
  cudatoolkit  libcudart.so.11.0 from NVIDIA's nvidia-cuda-runtime-cu11 wheel, for the CUDA 11.8 variant (the
               real cudatoolkit holds the whole toolkit's libraries; cyfes needs only the runtime)
  libgomp      the build host's own libgomp.so.1 (the one the extension was linked against)
Everything else the solver needs (python, python_abi, numpy, libgcc, libstdcxx, cuda-version, _openmp_mutex) is
a metadata-only stand-in: verify runs the host's interpreter and numpy. Every fixture says so in its summary and
carries the build string `fixture_*`; they live in their own channel, never in dist/conda.
"""
from __future__ import annotations

import re
import subprocess
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from ..archive import Member
from ..errors import Problem, ReleaseError
from .archive import write_conda
from .channel import index_channel
from .meta import PackageInfo, info_entries

HOST_PROVIDED = ("libstdc++.so.6", "libgcc_s.so.1")
"""Libraries the metadata-only libstdcxx and libgcc stand-ins leave to the host: verify accepts them from outside."""
FIXTURE_LICENSE = b"Test fixture for cyfes's release verification; not a redistributable package.\n"
FIXTURE_HOME = "https://github.com/cyfes/cyfes/tree/main/tools/release/conda/fixtures.py"
# conda-forge's build string of python_abi marks the ABI (cp312); the solver matches `*_cp312` against it.


@dataclass(frozen=True)
class Fixture:
    name: str
    version: str
    build: str
    summary: str
    depends: list[str] = field(default_factory=list)
    files: list[Member] = field(default_factory=list)


def stand_in(name: str, version: str, what: str, build: str = "fixture_0", depends: list[str] | None = None) -> Fixture:
    return Fixture(name, version, build, f"TEST FIXTURE (metadata only, not for publication): {what}", depends or [])


def cudart_fixture(wheel: Path) -> Fixture:
    """The CUDA runtime package with the real libcudart.so.N from NVIDIA's nvidia-cuda-runtime wheel, in
    $PREFIX/lib: cuda-cudart (pinned to its cuda-version) from CUDA 12 on, cudatoolkit for CUDA 11."""
    version = wheel.name.split("-")[1]
    with zipfile.ZipFile(wheel) as zf:
        libs = [n for n in zf.namelist() if re.search(r"/lib/libcudart\.so\.\d+(\.\d+)?$", n)]
        if not libs:
            raise ReleaseError([Problem(str(wheel), "", "no lib/libcudart.so.N inside: not an nvidia-cuda-runtime wheel")])
        data = zf.read(libs[0])
    soname = libs[0].rsplit("/", 1)[1]
    major, minor = version.split(".")[:2]
    files = [Member(f"lib/{soname}", data, executable=True)]
    if int(major) < 12:
        return Fixture("cudatoolkit", version, "fixture_0", f"TEST FIXTURE (not for publication): stands in for "
                       f"cudatoolkit {major}.{minor}, holding only {soname} from NVIDIA's {wheel.name}", [], files)
    return Fixture("cuda-cudart", version, "fixture_0",
                   f"TEST FIXTURE (not for publication): {soname} from NVIDIA's {wheel.name}",
                   [f"cuda-version >={major}.{minor},<{major}.{int(minor) + 1}.0a0"], files)


def host_libgomp() -> tuple[Path, str]:
    """The build host's libgomp.so.1 (as the compiler driver finds it) and GCC's version."""
    path = subprocess.run(["gcc", "-print-file-name=libgomp.so.1"], capture_output=True, text=True,
                          check=True).stdout.strip()
    version = subprocess.run(["gcc", "-dumpfullversion"], capture_output=True, text=True, check=True).stdout.strip()
    if not Path(path).is_file():
        raise ReleaseError([f"gcc does not find libgomp.so.1 (got {path!r}); install libgomp1"])
    return Path(path).resolve(), version


def libgomp_fixture() -> Fixture:
    path, version = host_libgomp()
    return Fixture("libgomp", version, "fixture_0",
                   f"TEST FIXTURE (not for publication): the build host's {path.name} as libgomp.so.1",
                   [], [Member("lib/libgomp.so.1", path.read_bytes(), executable=True)])


def python_fixtures(python: str, full_version: str) -> list[Fixture]:
    tag = "cp" + python.replace(".", "")
    return [stand_in("python", full_version, f"the host's CPython {full_version} is used", f"fixture_{tag}"),
            stand_in("python_abi", python, f"ABI tag {tag}", f"fixture_{tag}")]


def fixtures(cudart_wheel: Path | dict[str, Path] | None, pythons: dict[str, str], cuda_versions: list[str],
             numpy_version: str = "2.0.0") -> list[Fixture]:
    """Every fixture for Pythons {"3.12": "3.12.1"} and CUDA "major.minor" versions; `cudart_wheel` is NVIDIA's
    runtime wheel per CUDA version ({"11.8": cu11 wheel, "13.0": ...}), or one wheel for a single version."""
    gomp = libgomp_fixture()
    out = [gomp, stand_in("_openmp_mutex", "4.5", "selects GNU OpenMP (libgomp)", "fixture_gnu", ["libgomp"]),
           stand_in("libgcc", gomp.version, "the host's libgcc_s.so.1 is used"),
           stand_in("libstdcxx", gomp.version, "the host's libstdc++.so.6 is used"),
           stand_in("numpy", numpy_version, "numpy comes from the host Python's path")]
    for py, full in sorted(pythons.items()):
        out += python_fixtures(py, full)
    wheels = cudart_wheel if isinstance(cudart_wheel, dict) else {c: cudart_wheel for c in cuda_versions}
    for cuda in sorted(cuda_versions):
        if int(cuda.split(".")[0]) >= 12:
            out.append(stand_in("cuda-version", cuda, f"pins CUDA {cuda} packages"))
        if wheels.get(cuda) is None:
            raise ReleaseError([f"CUDA {cuda} packages need NVIDIA's nvidia-cuda-runtime wheel of that CUDA for "
                                "the runtime fixture"])
        out.append(cudart_fixture(wheels[cuda]))
    return out


def write_fixture(fx: Fixture, channel: Path, mtime: int) -> Path:
    info = PackageInfo(fx.name, fx.version, fx.build, 0, sorted(fx.depends), [], "LicenseRef-test-fixture",
                       fx.summary, FIXTURE_HOME, mtime * 1000)
    meta = info_entries(info, fx.files, {}, FIXTURE_LICENSE)
    return write_conda(channel / "linux-64" / f"{info.dist}.conda", info.dist, fx.files, meta, mtime)


def build_fixture_channel(channel: Path, fxs: list[Fixture], mtime: int = 0) -> list[Path]:
    """Write every fixture into `channel` (its own directory, never dist/conda) and index it."""
    written = [write_fixture(fx, channel, mtime) for fx in fxs]
    index_channel(channel)
    return written
