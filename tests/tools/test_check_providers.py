"""`check` on a third-party-style wheel that takes libcudart from NVIDIA's nvidia-cuda-runtime wheel: the RPATH
auditwheel would drop (#257, #404) is right exactly when Requires-Dist declares the provider."""
from __future__ import annotations

import json

import pytest

import wheelfactory as wf

CUDA_LIB = "/usr/local/cuda/lib"


def cudart_wheel(tmp, requires: tuple[str, ...]):
    lib = wf.gcc(tmp / "b" / "libk.so", {"k.c": "int cudaGetDeviceCount(int *);\nint k(void) { int n; "
                                                 "return cudaGetDeviceCount(&n); }\n"},
                 f"-L{CUDA_LIB}", "-l:libcudart.so.13", "-Wl,--disable-new-dtags,-rpath,$ORIGIN/../nvidia/cu13/lib")
    return wf.write_raw_wheel(tmp / f"kpkg-1.0-{wf.TAG}-{wf.TAG}-manylinux_2_34_x86_64.whl",
                              {"kpkg/__init__.py": b"", "kpkg/libk.so": lib.read_bytes()}, dist="kpkg",
                              requires=requires)


@pytest.mark.skipif(not __import__("os").path.exists(f"{CUDA_LIB}/libcudart.so.13"), reason="no CUDA runtime")
@pytest.mark.parametrize("declared", [True, False])
def test_provider_entry_is_right_only_when_declared(tmp_path, run_release, declared):
    wheel = cudart_wheel(tmp_path, ("nvidia-cuda-runtime>=13.0,<14",) if declared else ())
    proc = run_release("check", "--json", "--scheme", "venv", "--scheme", "debian", str(wheel))
    (report,) = json.loads(proc.stdout)
    res = {r["needed"]: r for r in report["resolutions"][f"venv-{wf.PY}"]}
    if declared:
        assert proc.returncode == 0, report["findings"]
        assert res["libcudart.so.13"]["status"] == "provided"
        assert res["libcudart.so.13"]["found"] == f"lib/python{wf.PY}/site-packages/nvidia/cu13/lib/libcudart.so.13"
    else:
        assert proc.returncode == 1
        assert res["libcudart.so.13"]["status"] == "host-only"
        assert {f["message"] for f in report["findings"]} >= {
            "entry '$ORIGIN/../nvidia/cu13/lib' points to no directory of the install in any scheme"}
