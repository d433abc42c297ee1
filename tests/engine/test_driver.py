"""A driver too old for this build, a driver with no GPU, and no driver: what `device="auto"`, `device="gpu"` and
`cyfes info` say. The driver is a stand-in (TEST FIXTURE): a tiny libcuda.so.1 compiled here with gcc that exports
cuDriverGetVersion and cuInit returning chosen values, first on LD_LIBRARY_PATH of a fresh interpreter, so the
real dynamic loader hands it to cyfes exactly as it would hand over NVIDIA's library. Nothing of cyfes is mocked.
"""
from __future__ import annotations

import ctypes
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cyfes import _build_info

pytestmark = [pytest.mark.skipif(not _build_info.CUDA or not getattr(_build_info, "CUDA_DRIVER_CUDA", None),
                                 reason="cyfes was built without CUDA (or without a recorded driver floor)"),
              pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc to build the stand-in driver")]

STAND_IN = r"""
/* TEST FIXTURE: stands in for NVIDIA's libcuda.so.1. */
#include <stdio.h>
#include <stdlib.h>
int cuDriverGetVersion(int *version) { *version = VERSION; return 0; }
int cuInit(unsigned int flags) {
    const char *log = getenv("STAND_IN_LOG");
    if (log) { FILE *f = fopen(log, "a"); if (f) { fputs("cuInit\n", f); fclose(f); } }
    (void)flags; return INIT_RESULT;
}
"""

# The computation each subprocess runs: an FES with device=`DEVICE`, its warnings, its error, its values.
PROGRAM = r"""
import json, sys, warnings
import numpy as np
import cyfes
rng = np.random.default_rng(3)
samples, bias = rng.normal(size=(400, 2)), rng.uniform(0, 5, 400)
out = {"warnings": [], "error": None}
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    try:
        for _ in range(2):  # a second call must not warn again
            res = cyfes.fes(samples, 0.4, bias=bias, bins=9, device=sys.argv[1])
        out["backend"], out["values"], out["points"] = res.backend, res.values.tolist(), res.points().tolist()
    except cyfes.BackendError as exc:
        out["error"] = str(exc)
out["warnings"] = [f"{w.category.__name__}: {w.message}" for w in caught]
out["samples"], out["bias"] = samples.tolist(), bias.tolist()
print(json.dumps(out))
"""


def required() -> tuple[int, int]:
    major, minor = (int(x) for x in _build_info.CUDA_DRIVER_CUDA.split("."))
    return major, minor


def stand_in(tmp: Path, version: int, init_result: int) -> Path:
    """A directory holding a libcuda.so.1 that reports CUDA `version` (1000*major + 10*minor) and cuInit -> rc."""
    d = tmp / f"driver-{version}-{init_result}"
    d.mkdir()
    (d / "cuda.c").write_text(STAND_IN)
    subprocess.run(["gcc", "-shared", "-fPIC", f"-DVERSION={version}", f"-DINIT_RESULT={init_result}",
                    "-Wl,-soname,libcuda.so.1", "-o", str(d / "libcuda.so.1"), str(d / "cuda.c")], check=True)
    return d


def run(args: list[str], driver_dir: Path | None, tmp: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, STAND_IN_LOG=str(tmp / "calls.log"))
    if driver_dir is not None:
        env["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, [str(driver_dir), env.get("LD_LIBRARY_PATH")]))
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, cwd=tmp, timeout=300)


def compute(device: str, driver_dir: Path | None, tmp: Path) -> dict:
    proc = run(["-c", PROGRAM, device], driver_dir, tmp)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def matches_reference(out: dict) -> None:
    """The CPU fallback really computed the FES: float64 numpy reference (tests/reference.py)."""
    from reference import free_energy

    ref = free_energy(np.array(out["samples"]), [0.4, 0.4], np.array(out["points"]), bias=np.array(out["bias"]))
    np.testing.assert_allclose(np.array(out["values"]).ravel(), ref, atol=1e-7)


def old_driver_text() -> tuple[int, str]:
    """A driver one major version short of the floor, and the sentence every surface must show."""
    major, _ = required()
    version = (major - 1) * 1000 + 20
    return version, (f"driver supports CUDA {major - 1}.2; this build needs >= {_build_info.CUDA_DRIVER_CUDA} "
                     f"(driver >= {_build_info.CUDA_DRIVER_MIN})")


def test_too_old_driver_auto_falls_back_to_cpu_with_one_warning(tmp_path) -> None:
    version, text = old_driver_text()
    out = compute("auto", stand_in(tmp_path, version, 0), tmp_path)
    assert out["error"] is None and out["backend"].startswith("cpu")
    assert out["warnings"] == [f"RuntimeWarning: cyfes: not using the GPU: the NVIDIA {text}; computing on the CPU"]
    matches_reference(out)
    # The version alone decides: the old driver is never initialised.
    assert not (tmp_path / "calls.log").exists()


def test_too_old_driver_gpu_raises_backend_error(tmp_path) -> None:
    version, text = old_driver_text()
    out = compute("gpu", stand_in(tmp_path, version, 0), tmp_path)
    assert out["error"] == f"device: cannot use the GPU: {text}"
    assert out["warnings"] == []


def test_too_old_driver_in_cyfes_info(tmp_path) -> None:
    version, text = old_driver_text()
    driver = stand_in(tmp_path, version, 0)
    proc = run(["-m", "cyfes", "info"], driver, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert f"cuda:    not usable: {text}" in proc.stdout.splitlines()
    report = json.loads(run(["-m", "cyfes", "info", "--json"], driver, tmp_path).stdout)["backends"]["cuda"]
    assert (report["usable"], report["reason"], report["driver_cuda"]) == (False, text, f"{required()[0] - 1}.2")


def test_driver_without_gpu(tmp_path) -> None:
    """New enough, but cuInit finds no device: "auto" is silent (a driver without a GPU is no fault), "gpu" says
    what the driver answered."""
    major, minor = required()
    driver = stand_in(tmp_path, major * 1000 + minor * 10, 100)
    auto = compute("auto", driver, tmp_path)
    assert auto["backend"].startswith("cpu") and auto["warnings"] == []
    matches_reference(auto)
    gpu = compute("gpu", driver, tmp_path)
    assert gpu["error"] == (f"device: cannot use the GPU: the NVIDIA driver (CUDA {major}.{minor}) found no usable "
                            "GPU: cuInit failed with CUDA_ERROR_NO_DEVICE")
    assert (tmp_path / "calls.log").read_text().count("cuInit") >= 1


def _host_has_driver() -> bool:
    try:
        ctypes.CDLL("libcuda.so.1")
        return True
    except OSError:
        return False


@pytest.mark.skipif(_host_has_driver(), reason="this host has an NVIDIA driver")
def test_no_driver(tmp_path) -> None:
    auto = compute("auto", None, tmp_path)
    assert auto["backend"].startswith("cpu") and auto["warnings"] == []
    gpu = compute("gpu", None, tmp_path)
    assert gpu["error"] == (f"device: cannot use the GPU: no NVIDIA driver (libcuda.so.1 cannot be loaded); this "
                            f"build needs >= {_build_info.CUDA_DRIVER_CUDA} (driver >= {_build_info.CUDA_DRIVER_MIN})")
