"""A real CUDA wheel from PyPI that nobody here wrote: faiss-gpu-cu12 declares nvidia-cuda-runtime-cu12 and
nvidia-cublas-cu12 and links libcudart, libcublas and libcublasLt with no RPATH to them (its Python code preloads
them). check -> fix -> check, with the wheel fetched by pip (the index or pip's cache); skipped where it cannot be.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

WHEEL = "faiss-gpu-cu12==1.14.1.post1"
CUDA_LIBS = {"libcudart.so.12": "nvidia-cuda-runtime-cu12", "libcublas.so.12": "nvidia-cublas-cu12",
             "libcublasLt.so.12": "nvidia-cublas-cu12"}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def faiss_wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("faiss")
    proc = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary", ":all:",
                           "-d", str(out), WHEEL], capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        pytest.skip(f"{WHEEL} cannot be fetched here: {proc.stderr.strip().splitlines()[-1:]}")
    (wheel,) = out.glob("faiss_gpu_cu12-*.whl")
    return wheel


def _cuda_lines(report: dict) -> set[tuple[str, str, str]]:
    return {(line["file"].split("-")[0], line["needed"], line["status"]) for line in report["libraries"]
            if line["needed"] in CUDA_LIBS}


def test_check_fix_check(faiss_wheel, run_release, tmp_path):
    before = run_release("check", "--json", str(faiss_wheel))
    assert before.returncode == 1
    (report,) = json.loads(before.stdout)
    assert _cuda_lines(report) == {("faiss/_swigfaiss.so", "libcudart.so.12", "preloaded"),
                                   ("faiss_gpu_cu12.libs/libfaiss", "libcudart.so.12", "preloaded"),
                                   ("faiss_gpu_cu12.libs/libfaiss", "libcublas.so.12", "preloaded"),
                                   ("faiss_gpu_cu12.libs/libfaiss", "libcublasLt.so.12", "preloaded")}
    problems = [f for f in report["findings"] if f["severity"] == "problem"]
    assert problems and all(" only if preloaded: " in f["message"] for f in problems), problems
    # four (ELF, library) pairs, each in every layout (a finding names every layout it holds for)
    assert sum(len(f["scheme"].split(", ")) for f in problems) == 4 * len(report["layouts"])

    out = tmp_path / "out"
    fixed = run_release("fix", "--json", str(faiss_wheel), "-o", str(out))
    assert fixed.returncode == 0, fixed.stdout[-2000:]
    (plan,) = json.loads(fixed.stdout)
    libfaiss = next(k for k in plan["rpath"] if k.startswith("faiss_gpu_cu12.libs/libfaiss"))
    assert {"$ORIGIN/../nvidia/cuda_runtime/lib", "$ORIGIN/../nvidia/cublas/lib"} <= set(
        plan["rpath"][libfaiss]["new_rpath"])
    assert "$ORIGIN/../nvidia/cuda_runtime/lib" in plan["rpath"]["faiss/_swigfaiss.so"]["new_rpath"]

    after = run_release("check", "--json", str(out / faiss_wheel.name))
    assert after.returncode == 0
    (report,) = json.loads(after.stdout)
    n = len(report["layouts"])
    assert {(line["needed"], line["status"], line["resolved"], line["provider"].split(" at ")[0])
            for line in report["libraries"] if line["needed"] in CUDA_LIBS} == {
        (lib, "provided", f"{n}/{n}", dist) for lib, dist in CUDA_LIBS.items()}
