"""The sdist: `pip install cyfes-X.tar.gz` in a fresh venv builds the CPU backend where no CUDA compiler can be found,
and both backends where one can. Each installed copy computes a FES that must match the float64 reference.

The CPU case (slow: `make test-all`, `make dist`) packs this tree's sdist itself; the CUDA case (release)
installs the one in dist/ and fails when there is none. "No CUDA compiler" means one the build cannot find, not CYFES_CUDA=OFF: nvcc's
directories leave PATH, CUDACXX/CUDA_HOME/CUDA_PATH are unset, and the toolkit's directory is hidden from the
build by an empty directory mounted over it in a private mount namespace (CMake looks in /usr/local/cuda by
itself), which needs `unshare` and root.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import tomllib
from pathlib import Path

import numpy as np
import pytest

import reference

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 1500
CUDA_DIRS = ("/usr/local/cuda",)

SMOKE = """
import json, numpy as np, cyfes, cyfes._build_info as info
d = np.load({inp!r})
res = cyfes.fes(d["samples"], sigma=0.3, bias=d["bias"], grid=d["grid"], device="cpu", tolerance=0)  # exact sum
np.save({out!r}, res.values)
gpu = None
if info.CUDA:
    import cyfes.engine._gpu  # libcufes and the CUDA runtime load (a GPU is not needed for that)
    gpu = cyfes.engine._gpu.__file__
print(json.dumps({{"cuda": info.CUDA, "file": cyfes.__file__, "gpu": gpu}}))
"""


def run(cmd: list[str], env: dict[str, str] | None = None, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=TIMEOUT_S, check=False, **kw)
    assert proc.returncode == 0, f"{' '.join(cmd[:8])} failed:\n{(proc.stdout + proc.stderr)[-4000:]}"
    return proc


def without_cuda_env() -> dict[str, str]:
    """PATH with no directory holding nvcc; none of the variables that point a build at a toolkit."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("CUDACXX", "CUDA_HOME", "CUDA_PATH", "CUDAToolkit_ROOT", "CYFES_CUDA", "CYFES_NVCC_WHEELS",
                        "PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = os.pathsep.join(d for d in env["PATH"].split(os.pathsep) if d and not os.path.exists(
        os.path.join(d, "nvcc")))
    return env


def hiding_toolkit(empty: Path):
    """A wrapper that runs a command in a private mount namespace where every CUDA toolkit directory is `empty`."""
    present = [d for d in CUDA_DIRS if os.path.exists(d)]
    if present and (os.geteuid() != 0 or shutil.which("unshare") is None):
        pytest.fail("a CUDA toolkit is installed in /usr/local/cuda; hiding it needs root and unshare")
    empty.mkdir(exist_ok=True)
    mounts = " && ".join(f"mount --bind {empty} {os.path.realpath(d)}" for d in present)

    def wrap(cmd: list[str]) -> list[str]:
        if not present:
            return cmd
        return ["unshare", "--mount", "--propagation", "private", "sh", "-c", f'{mounts} && exec "$@"', "sh", *cmd]
    return wrap


def pack_sdist(out: Path) -> Path:
    run([sys.executable, "-m", "build", "--sdist", "--no-isolation", "-o", str(out), str(ROOT)], cwd=ROOT)
    (sdist,) = out.glob("cyfes-*.tar.gz")
    return sdist


def install_and_compute(sdist: Path, tmp: Path, env: dict[str, str], wrap=lambda c: c) -> dict:
    """Fresh venv, `pip install SDIST` (isolated build, backend from PyPI), then a FES vs the reference."""
    venv = tmp / "venv"
    run([sys.executable, "-m", "venv", str(venv)], env=env)
    run(wrap([str(venv / "bin/python"), "-m", "pip", "install", "-q", str(sdist)]), env=env, cwd=tmp)
    rng = np.random.default_rng(6)
    samples = rng.normal(size=(2000, 2))
    bias = rng.uniform(0, 3, 2000)
    grid = reference.regular_grid([np.linspace(-2, 2, 15), np.linspace(-2, 2, 13)])
    np.savez(tmp / "in.npz", samples=samples, bias=bias, grid=grid)
    code = SMOKE.format(inp=str(tmp / "in.npz"), out=str(tmp / "out.npy"))
    info = json.loads(run([str(venv / "bin/python"), "-c", code], env=env, cwd=tmp).stdout.splitlines()[-1])
    want = reference.free_energy(samples, [0.3, 0.3], grid, bias=bias)
    assert np.max(np.abs(np.load(tmp / "out.npy") - want)) < 1e-8
    assert info["file"].startswith(str(venv))
    return info


def test_sdist_holds_the_tracked_files_it_includes_and_nothing_else(tmp_path):
    """The fast check of the sdist (the builds from it are slow): its files are exactly git's tracked files under
    pyproject's `sdist.include`, plus PKG-INFO, so nothing a checkout accumulates (.venv, build/, docs/_build,
    compiled modules) is packed."""
    sdist = pack_sdist(tmp_path / "sdist")
    with tarfile.open(sdist) as tar:
        packed = {m.name.split("/", 1)[1] for m in tar.getmembers() if m.isfile()}
    include = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["scikit-build"]["sdist"]["include"]
    tracked = run(["git", "ls-files", "--", *(p.strip("/") for p in include)], cwd=ROOT).stdout.split()
    assert packed - {"PKG-INFO"} == set(tracked)
    assert "PKG-INFO" in packed


@pytest.mark.slow
def test_sdist_without_a_cuda_compiler_builds_the_cpu_backend(tmp_path):
    sdist = pack_sdist(tmp_path / "sdist")
    env = without_cuda_env()
    assert shutil.which("nvcc", path=env["PATH"]) is None
    info = install_and_compute(sdist, tmp_path, env, hiding_toolkit(tmp_path / "empty"))
    assert info["cuda"] is False and info["gpu"] is None


@pytest.mark.release
def test_released_sdist_with_a_cuda_compiler_builds_both_backends(tmp_path):
    found = sorted((ROOT / "dist").glob("cyfes-*.tar.gz"))
    if not found:
        pytest.fail(f"no sdist in {ROOT / 'dist'}: run `make dist` first")
    if shutil.which("nvcc") is None and not os.path.exists("/usr/local/cuda/bin/nvcc"):
        pytest.fail("no CUDA compiler (nvcc) on this machine: install the CUDA toolkit to test the GPU build")
    info = install_and_compute(found[-1], tmp_path, {k: v for k, v in os.environ.items()
                                                     if k not in ("PYTHONPATH", "VIRTUAL_ENV", "CYFES_CUDA")})
    assert info["cuda"] is True and info["gpu"].startswith(str(tmp_path / "venv"))
