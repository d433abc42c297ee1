"""Facts about the installed build, read from its ELF files (pyelftools): the seam the release tool ships.

- _cpu links OpenMP (libgomp) and not libmvec (its vector exp is its own), and needs nothing from glibc newer
  than 2.17, whatever glibc built it (exp/log bound to their first symbol versions).
- With CUDA: libcufes.so sits in the package; _gpu needs it with an $ORIGIN RPATH/RUNPATH; libcufes needs
  libcudart.so.13 with the shared runtime and no libcudart at all with CYFES_CUDA_RUNTIME=Static; its fatbinary
  holds SASS for sm_75..sm_90 and PTX for sm_90 (checked with cuobjdump where it exists).
"""
from __future__ import annotations

import glob
import importlib.util
import os
import shutil
import subprocess
import sys
import zipfile
from typing import Dict, List

import pytest

from cyfes import _build_info

elftools = pytest.importorskip("elftools")
from elftools.elf.dynamic import DynamicSection  # noqa: E402
from elftools.elf.elffile import ELFFile  # noqa: E402

needs_cuda = pytest.mark.skipif(not _build_info.CUDA, reason="cyfes was built without CUDA")


def dynamic(path: str) -> Dict[str, List[str]]:
    """DT_NEEDED, DT_RPATH and DT_RUNPATH entries of an ELF file."""
    found: Dict[str, List[str]] = {"needed": [], "rpath": [], "runpath": []}
    with open(path, "rb") as fh:
        for section in ELFFile(fh).iter_sections():
            if not isinstance(section, DynamicSection):
                continue
            for tag in section.iter_tags():
                if tag.entry.d_tag == "DT_NEEDED":
                    found["needed"].append(tag.needed)
                elif tag.entry.d_tag == "DT_RPATH":
                    found["rpath"].extend(tag.rpath.split(":"))
                elif tag.entry.d_tag == "DT_RUNPATH":
                    found["runpath"].extend(tag.runpath.split(":"))
    return found


def one(pattern: str) -> str:
    """The one file of the installed engine matching `pattern`, found where Python loads cyfes.engine._cpu from
    (site-packages, or an editable install's build folder)."""
    where = os.path.dirname(importlib.util.find_spec("cyfes.engine._cpu").origin)
    paths = glob.glob(os.path.join(where, pattern))
    assert len(paths) == 1, f"expected one {pattern} in {where}, found {paths}"
    return paths[0]


def test_cpu_extension_links_openmp_and_no_vector_math_library() -> None:
    needed = dynamic(one("_cpu*.so"))["needed"]
    assert "libgomp.so.1" in needed
    assert "libmvec.so.1" not in needed


def test_cpu_extension_needs_glibc_2_17_at_most() -> None:
    from tools.release.elf.glibc import file_floor, required_versions
    path = one("_cpu*.so")
    assert file_floor(path).version <= (2, 17), file_floor(path)
    glibc = {(r.symbol, r.version) for r in required_versions(path) if r.version.startswith("GLIBC_")}
    assert not {s for s, _ in glibc} & {"_ZGVdN4v_exp", "_ZGVeN8v_exp", "expf"}
    assert {("exp", "GLIBC_2.2.5"), ("log", "GLIBC_2.2.5")} <= glibc


@needs_cuda
def test_gpu_extension_needs_libcufes_through_origin() -> None:
    info = dynamic(one("_gpu*.so"))
    assert "libcufes.so" in info["needed"]
    assert "$ORIGIN" in info["rpath"] + info["runpath"]
    assert os.path.isfile(os.path.join(os.path.dirname(one("_gpu*.so")), "libcufes.so"))  # beside it


@needs_cuda
def test_libcufes_cuda_runtime_linkage() -> None:
    needed = dynamic(one("libcufes.so"))["needed"]
    cudart = [n for n in needed if n.startswith("libcudart")]
    if _build_info.CUDA_RUNTIME == "Static":
        assert cudart == []
    else:
        assert cudart == ["libcudart.so.13"] if _build_info.CUDA_VERSION.startswith("13") else len(cudart) == 1


@needs_cuda
def test_no_build_tree_path_leaks_into_rpaths() -> None:
    for path in (one("_gpu*.so"), one("libcufes.so")):
        info = dynamic(path)
        for entry in info["rpath"] + info["runpath"]:
            assert entry.startswith("$ORIGIN"), f"{path}: RPATH entry {entry!r}"


CUOBJDUMP = shutil.which("cuobjdump") or shutil.which("cuobjdump", path="/usr/local/cuda/bin")


@needs_cuda
@pytest.mark.skipif(CUOBJDUMP is None, reason="cuobjdump not on PATH or in /usr/local/cuda/bin")
def test_fatbinary_has_sass_sm75_to_sm90_and_ptx_sm90() -> None:
    lib = one("libcufes.so")
    text = subprocess.run([CUOBJDUMP, "--list-elf", "--list-ptx", lib], capture_output=True, text=True,
                          check=True).stdout
    for arch in ("sm_75", "sm_80", "sm_86", "sm_89", "sm_90"):
        assert f"{arch}" in text and any(arch in line and "ELF" in line for line in text.splitlines()), arch
    assert any("sm_90" in line and "PTX" in line for line in text.splitlines())


@pytest.mark.slow
def test_static_cuda_runtime_has_no_libcudart_needed(tmp_path) -> None:
    """CYFES_CUDA_RUNTIME=Static links the CUDA runtime into libcufes: no libcudart DT_NEEDED (the Shared case
    is the installed build, checked above). Builds cuda/ on its own (as the release tool does) for one
    architecture, ~20 s on 2 cores."""
    runtime = "Static"
    cmake, nvcc = shutil.which("cmake"), shutil.which("nvcc") or (
        "/usr/local/cuda/bin/nvcc" if os.path.exists("/usr/local/cuda/bin/nvcc") else None)
    if not cmake or not nvcc:
        pytest.skip("needs cmake and nvcc")
    source = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "cuda")
    build = tmp_path / "build"
    subprocess.run([cmake, "-S", source, "-B", str(build), f"-DCYFES_CUDA_RUNTIME={runtime}",
                    f"-DCMAKE_CUDA_COMPILER={nvcc}", "-DCMAKE_CUDA_ARCHITECTURES=75-real",
                    "-DCMAKE_BUILD_TYPE=Release"], check=True, capture_output=True)
    subprocess.run([cmake, "--build", str(build), "-j", "2"], check=True, capture_output=True)
    cudart = [n for n in dynamic(str(build / "libcufes.so"))["needed"] if n.startswith("libcudart")]
    assert cudart == []


@pytest.mark.slow
def test_pypi_cuda_compiler_builds_the_gpu_backend(tmp_path) -> None:
    """CYFES_NVCC_WHEELS=1: pyproject's override adds NVIDIA's CUDA 13 compiler wheels to the isolated build
    environment and cmake/CyfesCudaCompiler.cmake picks their nvcc over the system toolkit. Needs PyPI (about
    250 MB of wheels, cached by pip); one architecture to keep it near a minute on 2 cores."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, CYFES_NVCC_WHEELS="1")
    build = tmp_path / "build"
    run = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", root, "-w", str(tmp_path), f"-Cbuild-dir={build}",
         "-Ccmake.define.CMAKE_CUDA_ARCHITECTURES=75-real"], env=env, capture_output=True, text=True)
    if run.returncode != 0 and "Could not find a version" in run.stderr + run.stdout:
        pytest.skip("PyPI not reachable for NVIDIA's compiler wheels")
    assert run.returncode == 0, run.stderr[-3000:]
    cache = (build / "CMakeCache.txt").read_text()
    compiler = next(line.split("=", 1)[1] for line in cache.splitlines() if line.startswith("CMAKE_CUDA_COMPILER:"))
    assert compiler.endswith("nvidia/cu13/bin/nvcc"), compiler
    wheel = next(tmp_path.glob("cyfes-*.whl"))
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(tmp_path / "unpacked")
        info = zf.read("cyfes/_build_info.py").decode()
    lib = dynamic(str(tmp_path / "unpacked" / "cyfes" / "engine" / "libcufes.so"))
    assert "libcudart.so.13" in lib["needed"]
    assert lib["runpath"] + lib["rpath"] == ["$ORIGIN"]  # nothing from the temporary build environment
    assert 'CUDA = "ON" == "ON"' in info and '"13.0' in info
