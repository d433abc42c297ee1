"""The released cp39 wheel on a real Debian 11 (glibc 2.31, Python 3.9, pip 20.3), in a chroot built with debootstrap.

The root is cached in ~/.cache/cyfes/bullseye (CYFES_CACHE moves it), so a rerun takes seconds. The wheel is
installed with the root's own pip into a venv there (numpy from PyPI); the FES it computes is compared with the
float64 numpy reference computed here. Run by `make dist` (`pytest -m release`); it fails, never skips, when
there is no cp39 wheel in dist/ or the chroot cannot be made.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import reference
from tools.release.toolchain.openmp import cache_dir

ROOT = Path(__file__).resolve().parents[1]
MIRROR = "http://deb.debian.org/debian"
PACKAGES = "python3,python3-venv,python3-pip"
READY = ".cyfes-root-ready"
TIMEOUT_S = 900

pytestmark = pytest.mark.release

SCRIPT = """
import json, sys
import numpy as np, cyfes
d = np.load("/work/input.npz")
kw = dict(sigma=[0.3, 0.4], bias=d["bias"], temperature=300, units="kJ/mol", grid=d["grid"], device="cpu")
res = cyfes.fes(d["samples"], tolerance=0, **kw)  # every pair: the exact sum
fast = cyfes.fes(d["samples"], **kw)              # the default truncated sum, within its bound
np.save("/work/out.npy", np.stack([res.values, fast.values]))
print(json.dumps({"backend": res.backend, "cyfes": cyfes.__file__, "numpy": np.__version__,
                  "bound": fast.bound, "kT": fast.kT}))
"""


def sh(*cmd: str, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S, check=False, **kw)
    if proc.returncode != 0:
        pytest.fail(f"{' '.join(cmd[:6])} ... failed ({proc.returncode}):\n{(proc.stderr or proc.stdout)[-3000:]}")
    return proc


def ensure_debootstrap() -> str:
    if os.geteuid() != 0:
        pytest.fail("a Debian 11 chroot needs root (debootstrap, chroot)")
    if shutil.which("debootstrap") is None:
        sh("apt-get", "install", "-y", "-q", "debootstrap")
    return shutil.which("debootstrap") or pytest.fail("debootstrap is not installed and apt-get could not install it")


def bullseye_root() -> Path:
    """The cached root, made with debootstrap on first use (into a temp dir, renamed when complete)."""
    root = cache_dir() / "bullseye"
    if (root / READY).exists():
        return root
    tool = ensure_debootstrap()
    tmp = cache_dir() / f".bullseye-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    sh(tool, "--variant=minbase", f"--include={PACKAGES}", "bullseye", str(tmp), MIRROR)
    (tmp / READY).write_text("debootstrap --variant=minbase bullseye\n")
    shutil.rmtree(root, ignore_errors=True)
    os.replace(tmp, root)
    return root


def cp39_wheel() -> Path:
    wheels = sorted((ROOT / "dist").glob("cyfes-*-cp39-cp39-*.whl"))
    if not wheels:
        pytest.fail(f"no cp39 wheel in {ROOT / 'dist'}: run `make dist` first")
    return wheels[-1]


def in_root(root: Path, command: str, **env: str) -> subprocess.CompletedProcess:
    shell_env = " ".join(f"{k}={v}" for k, v in env.items())
    return sh("chroot", str(root), "/usr/bin/env", "-i", "PATH=/usr/bin:/bin", "HOME=/root", "LANG=C.UTF-8",
              *shell_env.split(), "/bin/sh", "-c", command)


@pytest.fixture(scope="module")
def debian11() -> Path:
    root = bullseye_root()
    # pip reaches the index only with a CA bundle, and names it by path; DNS needs the host's resolver.
    shutil.copy("/etc/ssl/certs/ca-certificates.crt", root / "etc/ssl/certs/ca-certificates.crt")
    shutil.copy("/etc/resolv.conf", root / "etc/resolv.conf")
    return root


def test_root_is_debian_11(debian11: Path) -> None:
    out = in_root(debian11, "cat /etc/debian_version; ldd --version | head -1; python3 --version; "
                            "python3 -m pip --version").stdout
    assert out.startswith("11.") and "2.31" in out and "Python 3.9." in out and "pip 20.3" in out, out


def test_released_cp39_wheel_computes_the_reference_fes(debian11: Path) -> None:
    wheel = cp39_wheel()
    work = debian11 / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    shutil.copy(wheel, work / wheel.name)
    rng = np.random.default_rng(11)
    samples = np.concatenate([rng.normal([-1, 0], 0.4, (3000, 2)), rng.normal([1.2, 0.5], 0.5, (2000, 2))])
    bias = rng.uniform(0, 5, len(samples))
    grid = reference.regular_grid([np.linspace(-2.5, 2.5, 21), np.linspace(-2, 2.5, 17)])
    np.savez(work / "input.npz", samples=samples, bias=bias, grid=grid)
    (work / "fes.py").write_text(SCRIPT)
    # No libgomp in the root: the wheel's own copy is the only one the extension can load.
    assert not list(debian11.glob("usr/lib/x86_64-linux-gnu/libgomp.so*"))
    in_root(debian11, "rm -rf /work/venv && python3 -m venv /work/venv && /work/venv/bin/pip --version && "
                      f"/work/venv/bin/pip install -q /work/{wheel.name}", PIP_CERT="/etc/ssl/certs/ca-certificates.crt",
            PIP_DISABLE_PIP_VERSION_CHECK="1")
    out = in_root(debian11, "cd /work && /work/venv/bin/python fes.py").stdout
    assert '"backend": "cpu' in out and "/work/venv/lib/python3.9/site-packages/cyfes/" in out, out
    got, fast = np.load(work / "out.npy")
    want = reference.free_energy(samples, [0.3, 0.4], grid, bias=bias, temperature=300, units="kJ/mol")
    assert np.max(np.abs(got - want)) < 1e-8, np.max(np.abs(got - want))
    facts = json.loads(out.splitlines()[-1])
    assert 0 <= facts["bound"] <= 1e-6
    assert np.max(np.abs(fast - want)) <= facts["bound"] * facts["kT"] + 1e-8
