"""Builds do not depend on where the source tree lies: libcufes and a wheel built from two copies of the tree at
different paths, with SOURCE_DATE_EPOCH set, are identical file for file and byte for byte.

The cause this guards against: nvcc names kernels in an anonymous namespace after a hash of the source file's
path, and compilers embed source paths (Cython's file table, __FILE__) into objects.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EPOCH = "1790000000"
pytestmark = pytest.mark.slow


def nvcc() -> str | None:
    found = shutil.which("nvcc") or "/usr/local/cuda/bin/nvcc"
    return found if os.access(found, os.X_OK) else None


def copy_tree(dest: Path) -> Path:
    """The working tree as git sees it (tracked and untracked, not ignored): what a clone would hold."""
    names = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True,
                           capture_output=True).stdout.decode().split("\0")
    for name in filter(None, names):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


def build_env() -> dict[str, str]:
    return dict(os.environ, SOURCE_DATE_EPOCH=EPOCH, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")


def digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def two_copies(tmp_path: Path) -> list[Path]:
    return [copy_tree(tmp_path / "a" / "cyfes"), copy_tree(tmp_path / "somewhere" / "much" / "deeper" / "cyfes")]


@pytest.mark.skipif(nvcc() is None, reason="needs nvcc")
def test_libcufes_is_the_same_from_two_directories(tmp_path):
    installs = []
    for tree in two_copies(tmp_path):
        # one architecture keeps the test to a minute; every architecture is compiled by the same rules
        for cmd in (["cmake", "-S", "cuda", "-B", "build", "-G", "Ninja", "-DCMAKE_BUILD_TYPE=Release",
                     "-DCMAKE_CUDA_ARCHITECTURES=75-real", f"-DCMAKE_CUDA_COMPILER={nvcc()}"],
                    ["cmake", "--build", "build"], ["cmake", "--install", "build", "--prefix", "inst", "--strip"]):
            subprocess.run(cmd, cwd=tree, env=build_env(), check=True, capture_output=True)
        installs.append(tree / "inst")
    a, b = (digests(i) for i in installs)
    assert "lib/libcufes.so" in a
    assert a == b
    lib = (installs[0] / "lib/libcufes.so").read_bytes()
    assert b"_GLOBAL__N_" not in lib  # no anonymous-namespace symbol whose name carries a path hash
    assert str(tmp_path).encode() not in lib


def test_cpu_wheel_is_the_same_from_two_directories(tmp_path):
    wheels = []
    for tree in two_copies(tmp_path):
        subprocess.run([sys.executable, "-m", "pip", "wheel", ".", "--no-build-isolation", "--no-deps", "-w", "out",
                        "-Cbuild-dir=build/repro", "-Ccmake.define.CYFES_CUDA=OFF"],
                       cwd=tree, env=build_env(), check=True, capture_output=True)
        (wheel,) = (tree / "out").glob("*.whl")
        wheels.append(wheel)
    members = []
    for w in wheels:
        with zipfile.ZipFile(w) as zf:
            members.append({i.filename: hashlib.sha256(zf.read(i)).hexdigest() for i in zf.infolist()})
    assert members[0] == members[1]  # names the member that differs, if one does
    assert wheels[0].name == wheels[1].name and wheels[0].read_bytes() == wheels[1].read_bytes()
    with zipfile.ZipFile(wheels[0]) as zf:
        assert not any(str(tmp_path).encode() in zf.read(i) for i in zf.infolist())
