"""A package that is not cyfes, released by the same tool from its own release.yaml (tests/tools/packages/ompsum):
an OpenMP C library installed through .data/data/lib, an extension linking it, a dependency-free PEP 517 backend.

The tool builds it (PEP 517 with release.yaml's config settings), repairs it (auditwheel grafts Debian 11's libgomp,
fetched only because an ELF needs it), plans RPATHs per scheme, and verifies each scheme with the project's own
smoke command. The test then installs the published wheel with pip into a fresh venv and runs it under the real
loader, against a sum computed here.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import wheelfactory as wf
from tools.release.toolchain.openmp import LIBGOMP

ROOT = Path(__file__).resolve().parents[2]
PROJECT = Path(__file__).resolve().parent / "packages" / "ompsum"
SCALE = 3  # release.yaml: build.config_settings [scale=3]


def _release(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "tools.release", *args], cwd=cwd, capture_output=True, text=True,
                          env=env, timeout=600)


def test_ompsum_released_verified_and_computes_after_pip_install(tmp_path):
    src = Path(shutil.copytree(PROJECT, tmp_path / "ompsum"))
    proc = _release(src, "wheel", "--python", wf.PY)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "OpenMP runtime to vendor" in proc.stderr and "cyfes" not in proc.stdout
    (wheel,) = (src / "dist").glob("ompsum-0.1-*.whl")
    # every scheme the config lists was verified with the project's smoke command (pip --target drops .data/)
    row = next(ln for ln in proc.stdout.splitlines() if ln.startswith(wheel.name))
    assert "venv user debian prefix target(limitation)" in row and row.rstrip().endswith("ok")

    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        (gomp,) = [n for n in names if n.startswith("ompsum.libs/libgomp-")]
        doc = json.loads(zf.read("ompsum-0.1.dist-info/sboms/cyfes-release.cdx.json"))
        gomp_sha = hashlib.sha256(zf.read(gomp)).hexdigest()
    assert "ompsum-0.1.data/data/lib/libompsum.so" in names
    (comp,) = [c for c in doc["components"][1:] if c["hashes"][0]["content"] == gomp_sha]
    assert comp["externalReferences"][0]["url"] == LIBGOMP.url

    # independent of the tool: pip into a fresh venv, the real loader, a reference sum computed here
    env_dir = tmp_path / "venv"
    base = wf.base_python()
    subprocess.run([base, "-m", "venv", str(env_dir)], check=True, capture_output=True)
    subprocess.run([str(env_dir / "bin" / "python"), "-m", "pip", "install", "-q", "--no-index", str(wheel)],
                   check=True, capture_output=True, env=dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1"))
    n = 5000
    run = subprocess.run([str(env_dir / "bin" / "python"), "-c",
                          f"import ompsum; print(ompsum.squares({n}), ompsum.threads(), ompsum.__file__)"],
                         capture_output=True, text=True, cwd=tmp_path, timeout=120,
                         env={"PATH": "/usr/bin:/bin", "LD_DEBUG": "libs", "OMP_NUM_THREADS": "2"})
    assert run.returncode == 0, run.stderr[-2000:]
    total, threads, where = run.stdout.split()
    assert int(total) == SCALE * sum(i * i for i in range(n))
    assert int(threads) == 2 and where.startswith(str(env_dir))
    inits = [ln.split("calling init:")[1].strip() for ln in run.stderr.splitlines() if "calling init:" in ln]
    lib = next(p for p in inits if p.endswith("/libompsum.so"))
    omp = next(p for p in inits if "libgomp" in p)
    assert os.path.realpath(lib) == os.path.realpath(env_dir / "lib" / "libompsum.so")
    assert os.path.realpath(omp).startswith(os.path.realpath(env_dir) + "/") and "ompsum.libs/libgomp-" in omp


def test_ompsum_conda_package_verified_in_a_fresh_prefix(tmp_path):
    """The conda half from the same release.yaml (conda switched on): a cpu package whose libgomp comes from the
    environment, installed by py-rattler into a fresh prefix and run with the project's smoke command."""
    src = Path(shutil.copytree(PROJECT, tmp_path / "ompsum"))
    config = src / "release.yaml"
    config.write_text(config.read_text().replace("conda:\n  enabled: false\n",
                                                 f"conda:\n  enabled: true\n  python: [{wf.PY}]\n  variants: [cpu]\n"))
    proc = _release(src, "conda")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (pkg,) = (src / "dist" / "conda" / "linux-64").glob("ompsum-0.1-cpu_py*h*_0.conda")
    row = next(ln for ln in proc.stdout.splitlines() if ln.startswith(pkg.name))
    assert "from conda: libgomp" in row and "ok: libgomp.so.1, libompsum.so from $PREFIX/lib" in row
    facts = json.loads(row.split("smoke: OMPSUM ", 1)[1])
    assert facts["squares"] == SCALE * sum(i * i for i in range(1000))
    assert "/prefix/lib/python" in facts["file"]
    index = json.loads(_index_json(pkg))
    assert index["name"] == "ompsum" and index.get("home", "") == ""  # no URL in its metadata, none invented


def _index_json(pkg: Path) -> str:
    from tools.release.artifact import open_conda
    return open_conda(pkg).data("info/index.json").decode()
