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


# TEST FIXTURE: stands in for NVIDIA's libnvidia-ml.so.1. Its GPUs come from $STAND_IN_GPUS, one
# "name,major,minor,memory,mig" per GPU, separated by ';'; $STAND_IN_NVML_INIT is nvmlInit_v2's return value.
NVML_STAND_IN = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
typedef struct { unsigned long long total, free, used; } mem_t;
typedef struct { char name[96]; int major, minor, mig; unsigned long long memory; } gpu_t;
static gpu_t gpus[8];
static unsigned count;
static void note(const char *what) {
    const char *log = getenv("STAND_IN_LOG");
    if (log) { FILE *f = fopen(log, "a"); if (f) { fputs(what, f); fputc('\n', f); fclose(f); } }
}
int nvmlInit_v2(void) {
    char spec[1024], *save = NULL, *one;
    const char *init = getenv("STAND_IN_NVML_INIT");
    note("nvmlInit_v2");
    snprintf(spec, sizeof spec, "%s", getenv("STAND_IN_GPUS") ? getenv("STAND_IN_GPUS") : "");
    for (count = 0, one = strtok_r(spec, ";", &save); one && count < 8; one = strtok_r(NULL, ";", &save), count++) {
        gpu_t *g = &gpus[count];
        sscanf(one, "%95[^,],%d,%d,%llu,%d", g->name, &g->major, &g->minor, &g->memory, &g->mig);
    }
    return init ? atoi(init) : 0;
}
int nvmlShutdown(void) { note("nvmlShutdown"); return 0; }
int nvmlSystemGetDriverVersion(char *v, unsigned n) { snprintf(v, n, "580.159.04"); return 0; }
int nvmlDeviceGetCount_v2(unsigned *n) { *n = count; return 0; }
int nvmlDeviceGetHandleByIndex_v2(unsigned i, void **h) { if (i >= count) return 2; *h = &gpus[i]; return 0; }
int nvmlDeviceGetMigMode(gpu_t *g, unsigned *cur, unsigned *pend) {
    if (g->mig < 0) return 3;  /* NVML_ERROR_NOT_SUPPORTED: a GPU without MIG */
    *cur = *pend = (unsigned)g->mig; return 0;
}
int nvmlDeviceGetName(gpu_t *g, char *name, unsigned n) { snprintf(name, n, "%s", g->name); return 0; }
int nvmlDeviceGetMemoryInfo(gpu_t *g, mem_t *m) { m->total = g->memory; m->free = m->used = 0; return 0; }
int nvmlDeviceGetCudaComputeCapability(gpu_t *g, int *a, int *b) { *a = g->major; *b = g->minor; return 0; }
"""

H100 = "NVIDIA H100 80GB HBM3,9,0,85520809984,-1"
L4 = "NVIDIA L4,8,9,24152899584,0"


def drivers(tmp: Path, init_result: int = 0) -> Path:
    """A directory with a stand-in libcuda.so.1 (new enough for this build) and a stand-in libnvidia-ml.so.1."""
    major, minor = required()
    d = stand_in(tmp, major * 1000 + minor * 10, init_result)
    (d / "nvml.c").write_text(NVML_STAND_IN)
    subprocess.run(["gcc", "-shared", "-fPIC", "-Wl,-soname,libnvidia-ml.so.1", "-o", str(d / "libnvidia-ml.so.1"),
                    str(d / "nvml.c")], check=True)
    return d


def cyfes_info(tmp: Path, driver_dir: Path, gpus: str, *args: str, **env: str) -> tuple[str, list[str]]:
    """`cyfes info ARGS` under the stand-ins: what it printed, and the driver calls it made, in order."""
    log = tmp / "calls.log"
    log.unlink(missing_ok=True)
    saved = dict(os.environ)
    os.environ.update(STAND_IN_GPUS=gpus, **env)
    try:
        proc = run(["-m", "cyfes", "info", *args], driver_dir, tmp)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout, log.read_text().split() if log.exists() else []


def info(tmp: Path, driver_dir: Path, gpus: str, *flags: str, **env: str) -> tuple[dict, list[str]]:
    """`cyfes info --json FLAGS`: the CUDA report, and the driver calls made."""
    out, calls = cyfes_info(tmp, driver_dir, gpus, "--json", *flags, **env)
    return json.loads(out)["backends"]["cuda"], calls


def test_info_lists_gpus_through_nvml_without_initialising_cuda(tmp_path) -> None:
    driver = drivers(tmp_path)
    cuda, calls = info(tmp_path, driver, f"{H100};{H100}")
    assert cuda["listed_by"] == "nvml" and cuda["usable"] and cuda["driver"] == "580.159.04"
    assert cuda["devices"] == [{"id": i, "name": "NVIDIA H100 80GB HBM3", "memory": 85520809984,
                                "compute_capability": "9.0"} for i in (0, 1)]
    assert calls == ["nvmlInit_v2", "nvmlShutdown"]  # and no cuInit
    text, _ = cyfes_info(tmp_path, driver, H100)
    lines = text.splitlines()
    assert "cuda:    usable" in lines
    assert "gpu:     id 0, name NVIDIA H100 80GB HBM3, memory 85520809984, compute_capability 9.0" in lines
    assert any(line.endswith("driver 580.159.04; GPUs listed by NVML (--check: by CUDA itself)") for line in lines)
    no_gpu, _ = info(tmp_path, driver, "")
    assert (no_gpu["usable"], no_gpu["devices"], no_gpu["listed_by"]) == (False, [], "nvml")
    assert no_gpu["reason"] == "no CUDA device found (no GPU, or no NVIDIA driver)"


A100, MIG_A100 = "NVIDIA A100-SXM4-80GB,8,0,85899345920,0", "NVIDIA A100-SXM4-80GB,8,0,85899345920,1"


@pytest.mark.parametrize(("gpus", "env"), [
    (f"{H100};{H100}", {"CUDA_VISIBLE_DEVICES": "1"}),  # CUDA renumbers what it shows
    (f"{A100};{MIG_A100}", {}),  # one of two A100s in MIG mode: CUDA lists its instances
    (f"{L4};{H100}", {}),  # two models: CUDA puts the fastest first
])
def test_info_asks_cuda_where_nvml_may_number_gpus_otherwise(tmp_path, gpus, env) -> None:
    cuda, calls = info(tmp_path, drivers(tmp_path, 100), gpus, **env)
    assert "cuInit" in calls and cuda["listed_by"] is None and not cuda["usable"]
    assert cuda["reason"].endswith("cuInit failed with CUDA_ERROR_NO_DEVICE")


def test_info_takes_nvml_order_when_cuda_is_told_to_use_it(tmp_path) -> None:
    cuda, calls = info(tmp_path, drivers(tmp_path), f"{L4};{H100}", CUDA_DEVICE_ORDER="PCI_BUS_ID")
    assert "cuInit" not in calls and cuda["listed_by"] == "nvml"
    assert [(d["id"], d["name"], d["compute_capability"]) for d in cuda["devices"]] == [
        (0, "NVIDIA L4", "8.9"), (1, "NVIDIA H100 80GB HBM3", "9.0")]


def test_info_check_and_a_failing_nvml_ask_cuda(tmp_path) -> None:
    driver = drivers(tmp_path, 100)
    for flags, env in (((), {"STAND_IN_NVML_INIT": "9"}), (("--check",), {})):  # 9: NVML_ERROR_DRIVER_NOT_LOADED
        cuda, calls = info(tmp_path, driver, H100, *flags, **env)
        assert calls[-1] == "cuInit" and cuda["listed_by"] is None
        assert cuda["reason"].endswith("cuInit failed with CUDA_ERROR_NO_DEVICE")
    assert "nvmlInit_v2" not in calls  # --check does not ask NVML at all
