"""A real public project we did not write, released by the installed `cyfes-release`: pykdtree 1.4.3 (a kd-tree,
Cython + C with OpenMP-parallel queries, setuptools build needing numpy and Cython, its own pytest suite).

Its published sdist is fetched with pip (hash-pinned), released from the unmodified source with only the
release.yaml in tests/tools/packages/pykdtree-release/: built by PEP 517, repaired (auditwheel grafts Debian 11's
libgomp), RPATHs planned and every scheme verified with a smoke command that compares the tree's neighbours with a
brute-force float64 search. The wheel is then pip-installed into a fresh venv and pykdtree's own test suite runs
against it, with the loader showing where libgomp came from. `cyfes-release conda` then packages the same raw
wheel as a cpu .conda (libgomp from the environment), verified by the tool in a fresh prefix; its index.json and
the extension's RPATH are read here with tarfile, zstd and readelf.

Needs PyPI (or an index that pip is configured with holding pykdtree's sdist and the numpy, Cython and setuptools
wheels its build and tests need): skipped, saying so, where the sdist cannot be fetched.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest

import wheelfactory as wf
from tools.release.conda.archive import zstd_module

CONFIG = Path(__file__).resolve().parent / "packages" / "pykdtree-release" / "release.yaml"
VERSION = "1.4.3"
SDIST_SHA256 = "d9187930ffb8c822c52595b64948b47346694ee2a49e2702420b58f743d786f5"  # PyPI's, see the README
EXT = f"pykdtree/kdtree{wf.EXT_SUFFIX}"
TESTS = 17  # of the 19 tests in pykdtree 1.4.3's test_tree.py; two are skipped by pykdtree ("Requires ~50G RAM")
pytestmark = pytest.mark.slow


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")} | {
        "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


def _pip(python: Path | str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(python), "-m", "pip", *args], capture_output=True, text=True, cwd=cwd, env=_env(),
                          timeout=600)


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """pykdtree's sdist from PyPI, its hash checked by pip (--require-hashes), unpacked as published."""
    tmp = tmp_path_factory.mktemp("pykdtree")
    req = tmp / "requirements.txt"
    req.write_text(f"pykdtree=={VERSION} --hash=sha256:{SDIST_SHA256}\n")
    got = _pip(wf.base_python(), "download", "--no-deps", "--no-binary", "pykdtree", "--require-hashes", "-r",
               str(req), "-d", str(tmp / "sdist"), cwd=tmp)
    assert "DO NOT MATCH THE HASHES" not in got.stderr, got.stderr  # fetched, but not the sdist the README names
    if got.returncode != 0:
        pytest.skip(f"pykdtree {VERSION}'s sdist cannot be fetched here: {wf.pip_error(got.stderr)}")
    (sdist,) = (tmp / "sdist").glob("pykdtree-*.tar.gz")
    with tarfile.open(sdist) as tar:
        tar.extractall(tmp, filter="data")
    return tmp / f"pykdtree-{VERSION}"


def test_pykdtree_released_and_its_own_tests_pass_on_the_installed_wheel(cyfes_release, source, tmp_path):
    src = Path(shutil.copytree(source, tmp_path / "src"))
    shutil.copy(CONFIG, src / "release.yaml")
    wheel = _released_wheel(cyfes_release, src, tmp_path)
    _own_tests_pass(wheel, tmp_path)
    _conda_package(cyfes_release, src)


def _released_wheel(cyfes_release: Path, src: Path, tmp_path: Path) -> Path:
    """`cyfes-release wheel`: exit 0, every scheme verified, libgomp grafted and reached by RPATH, in the SBOM."""
    proc = subprocess.run([str(cyfes_release), "wheel", "--python", wf.PY], cwd=src, capture_output=True, text=True,
                          env=_env(), timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-4000:]
    assert "OpenMP runtime to vendor" in proc.stderr
    (wheel,) = (src / "dist").glob(f"pykdtree-{VERSION}-{wf.TAG}-{wf.TAG}-manylinux*.whl")
    row = next(ln for ln in proc.stdout.splitlines() if ln.startswith(wheel.name))
    assert "venv user debian prefix target" in row and row.rstrip().endswith("ok"), row

    # binutils' readelf, not the tool's ELF reader: the extension needs the grafted libgomp and finds it by RPATH
    with zipfile.ZipFile(wheel) as zf:
        (gomp,) = [n for n in zf.namelist() if n.startswith("pykdtree.libs/libgomp-")]
        (tmp_path / "ext.so").write_bytes(zf.read(EXT))
        sbom = json.loads(zf.read(f"pykdtree-{VERSION}.dist-info/sboms/cyfes-release.cdx.json"))
        gomp_sha = hashlib.sha256(zf.read(gomp)).hexdigest()
    dyn = subprocess.run(["readelf", "-d", str(tmp_path / "ext.so")], capture_output=True, text=True).stdout
    assert f"Shared library: [{Path(gomp).name}]" in dyn and "[$ORIGIN/../pykdtree.libs]" in dyn, dyn
    (comp,) = sbom["components"][1:]  # the SBOM names the one vendored file by its hash and Debian's .deb
    assert comp["hashes"][0]["content"] == gomp_sha
    assert comp["externalReferences"][0]["url"].endswith("/libgomp1_10.2.1-6_amd64.deb")
    return wheel


def _own_tests_pass(wheel: Path, tmp_path: Path) -> None:
    """Independent of the tool: real pip into a fresh venv, pykdtree's own tests against the installed wheel, and
    the loader showing that libgomp comes from the wheel's pykdtree.libs in that venv."""
    gomp = next(n for n in zipfile.ZipFile(wheel).namelist() if n.startswith("pykdtree.libs/libgomp-"))
    venv = tmp_path / "venv"
    subprocess.run([wf.base_python(), "-m", "venv", str(venv)], check=True, capture_output=True, timeout=300)
    py = venv / "bin" / "python"
    inst = _pip(py, "install", "-q", str(wheel), "pytest", cwd=tmp_path)
    assert inst.returncode == 0, inst.stderr
    run_env = {"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "2", "HOME": str(tmp_path)}
    # test_stub.py (mypy's stubtest of the .pyi) checks typing, not the build: left out, mypy is not installed
    tests = subprocess.run([str(py), "-m", "pytest", "-q", "-p", "no:cacheprovider", "--pyargs", "pykdtree.test_tree"],
                           capture_output=True, text=True, cwd=tmp_path, env=run_env, timeout=600)
    assert tests.returncode == 0, tests.stdout[-4000:]
    assert tests.stdout.strip().splitlines()[-1].startswith(f"{TESTS} passed, 2 skipped"), tests.stdout[-2000:]

    # the loader: the extension and its libgomp both come from the venv, not from the build host
    trace = subprocess.run([str(py), "-c", "import pykdtree.kdtree as k, numpy as np; "
                            "print(k.KDTree(np.eye(3)).query(np.eye(3))[1].tolist())"],
                           capture_output=True, text=True, cwd=tmp_path, env=run_env | {"LD_DEBUG": "libs"},
                           timeout=120)
    assert trace.returncode == 0 and trace.stdout.split() == ["[0,", "1,", "2]"], trace.stdout + trace.stderr[-2000:]
    inits = [ln.split("calling init:")[1].strip() for ln in trace.stderr.splitlines() if "calling init:" in ln]
    omp = next(p for p in inits if "libgomp" in p)
    site = venv / "lib" / f"python{wf.PY}" / "site-packages"
    assert os.path.realpath(omp) == os.path.realpath(site / gomp), inits


def _conda_package(cyfes_release: Path, src: Path) -> None:
    """`cyfes-release conda` from the same release.yaml and raw wheel: a cpu .conda whose libgomp comes from the
    environment, verified by the tool in a fresh py-rattler prefix; its metadata and ELF read here independently."""
    proc = subprocess.run([str(cyfes_release), "conda", "--python", wf.PY], cwd=src, capture_output=True, text=True,
                          env=_env(), timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-4000:]
    (pkg,) = (src / "dist" / "conda" / "linux-64").glob(f"pykdtree-{VERSION}-cpu_py{wf.TAG[2:]}h*_0.conda")
    row = next(ln for ln in proc.stdout.splitlines() if ln.startswith(pkg.name))
    assert "from conda: libgomp" in row and "ok: libgomp.so.1 from $PREFIX/lib" in row, row
    assert json.loads(row.split("smoke: PYKDTREE ", 1)[1])["same_as_brute_force"] is True

    zstd = zstd_module()
    with zipfile.ZipFile(pkg) as zf:
        info = _tar(zstd.decompress(zf.read(f"info-{pkg.stem}.tar.zst")))
        files = _tar(zstd.decompress(zf.read(f"pkg-{pkg.stem}.tar.zst")))
    index = json.loads(info["info/index.json"])
    assert {"numpy", "libgomp >=12"} <= set(index["depends"])  # numpy: pykdtree's Requires-Dist
    assert index["license"] == "LGPL-3.0-or-later" and index["version"] == VERSION
    (src / "conda-ext.so").write_bytes(files[f"lib/python{wf.PY}/site-packages/{EXT}"])
    dyn = subprocess.run(["readelf", "-d", str(src / "conda-ext.so")], capture_output=True, text=True).stdout
    assert "Shared library: [libgomp.so.1]" in dyn and "$ORIGIN/../../.." in dyn, dyn  # $PREFIX/lib's libgomp


def _tar(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
