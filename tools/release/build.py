"""Build step: compile libcufes once per CUDA runtime linkage, then one PEP 517 wheel per Python that packages it.

Why a standalone CUDA build: with build isolation scikit-build-core clears its CMake cache whenever the isolated
environment changes, so each Python would recompile the kernels (~45 s for five architectures). The package's
CMakeLists takes a prebuilt library through CYFES_CUFES_LIBRARY instead. Each Python gets a fixed build dir
(build/release/py3.X) so reruns reuse its CMake cache; raw wheels stay under build/release/raw/ for the conda half.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .errors import BuildError

BUILD_ROOT = Path("build/release")
CUDA_SOURCE = Path("cuda")
NVCC_CANDIDATES = ("/usr/local/cuda/bin/nvcc",)
BUILD_TIMEOUT_S = 1800

Log = Callable[[str], None]


@dataclass(frozen=True)
class CudaLibrary:
    """A libcufes.so built once and shared by every Python's wheel."""

    path: Path
    runtime: str
    """Shared (DT_NEEDED libcudart.so.13) or Static (cudart linked in)."""
    nvcc: str | None = None
    """The nvcc that compiled it, when not the default one (wheels then find that toolkit's version)."""


def runtime_for(strategy: str) -> str:
    return "Static" if strategy == "static" else "Shared"


def _run(cmd: list[str], what: str, log_file: Path, env: dict[str, str] | None = None,
         cwd: Path | None = None) -> None:
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "a", encoding="utf-8") as log:
        log.write(f"$ {' '.join(cmd)}\n")
        log.flush()
        proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd, timeout=BUILD_TIMEOUT_S,
                              check=False)
    if proc.returncode != 0:
        tail = log_file.read_text(encoding="utf-8", errors="replace").splitlines()[-15:]
        raise BuildError([f"{what} failed (log: {log_file}):\n    " + "\n    ".join(tail)])


def _nvcc() -> str | None:
    found = shutil.which("nvcc") or next((c for c in NVCC_CANDIDATES if os.path.exists(c)), None)
    return found


def build_cuda_library(strategy: str, root: Path = BUILD_ROOT, log: Log = lambda s: None, nvcc: str | None = None,
                       host_cxx: str | None = None, name: str = "") -> CudaLibrary:
    """cmake -S cuda in build/release/cufes-<runtime>[-<name>], installed so CMake sets its install RPATH
    ($ORIGIN). `nvcc`/`host_cxx` choose another toolkit (a conda variant's), `name` keeps its build apart."""
    runtime = runtime_for(strategy)
    stem = f"cufes-{runtime.lower()}" + (f"-{name}" if name else "")
    bdir, prefix = root / stem, root / stem / "install"
    logf = root / "logs" / f"{stem}.log"
    cmd = ["cmake", "-S", str(CUDA_SOURCE), "-B", str(bdir), "-DCMAKE_BUILD_TYPE=Release",
           f"-DCYFES_CUDA_RUNTIME={runtime}"]
    if shutil.which("ninja"):
        cmd += ["-G", "Ninja"] if not (bdir / "CMakeCache.txt").exists() else []
    chosen = nvcc or _nvcc()
    if chosen:
        cmd.append(f"-DCMAKE_CUDA_COMPILER={chosen}")
    if host_cxx:
        cmd.append(f"-DCMAKE_CUDA_HOST_COMPILER={host_cxx}")
    log(f"libcufes ({runtime} CUDA runtime{', ' + chosen if nvcc else ''}): cmake in {bdir}")
    _run(cmd, "cmake configure of cuda/", logf)
    _run(["cmake", "--build", str(bdir)], "cmake build of cuda/", logf)
    # --strip: nvcc names a FILE symbol after its temp file, tmpxft_<pid>_..., so an unstripped libcufes differs
    # from build to build by its pid; the symbol table is not needed at run time (kernels live in .nv_fatbin).
    _run(["cmake", "--install", str(bdir), "--prefix", str(prefix), "--strip"], "cmake install of cuda/", logf)
    lib = prefix / "lib" / "libcufes.so"
    if not lib.is_file():
        raise BuildError([f"cmake install of cuda/ did not produce {lib}"])
    return CudaLibrary(lib.resolve(), runtime, nvcc)


def raw_wheel_dir(version: str, strategy: str, root: Path = BUILD_ROOT, name: str = "") -> Path:
    return root / "raw" / (f"{strategy}-{name}" if name else strategy) / f"py{version}"


def build_wheel(python: str, version: str, cuda: CudaLibrary | None, strategy: str = "vendor",
                root: Path = BUILD_ROOT, log: Log = lambda s: None, name: str = "") -> Path:
    """One PEP 517 build (`pip wheel --no-deps`, isolated) for one interpreter; returns the raw wheel.
    `name` (a conda variant) keeps its raw wheel and CMake build apart from the release's own."""
    out = raw_wheel_dir(version, strategy, root, name)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    bdir = (root / (f"py{version}-{strategy}" + (f"-{name}" if name else ""))).resolve()
    # The long spelling: pip < 23.1 (pyenv's 3.8-3.10) has --config-settings but not -C.
    settings = [f"build-dir={bdir}", f"cmake.define.CYFES_CUDA={'ON' if cuda else 'OFF'}"]
    if cuda:
        settings += [f"cmake.define.CYFES_CUFES_LIBRARY={cuda.path}", f"cmake.define.CYFES_CUDA_RUNTIME={cuda.runtime}"]
        if cuda.nvcc:  # so find_package(CUDAToolkit) reports the toolkit that compiled libcufes, not the default
            settings += [f"cmake.define.CUDAToolkit_ROOT={Path(cuda.nvcc).resolve().parent.parent}"]
    settings = [f"--config-settings={s}" for s in settings]
    env = {k: v for k, v in os.environ.items() if k not in ("CYFES_CUDA", "CYFES_CUDA_RUNTIME", "CYFES_CUFES_LIBRARY",
                                                           "PYTHONPATH", "VIRTUAL_ENV")}
    env.setdefault("PIP_DISABLE_PIP_VERSION_CHECK", "1")
    log(f"wheel for Python {version} ({python}){' [' + name + ']' if name else ''}")
    _run([python, "-m", "pip", "wheel", "--no-deps", "-w", str(out.resolve()), *settings, "."],
         f"wheel build for Python {version}", root / "logs" / f"wheel-py{version}-{strategy}{'-' + name if name else ''}.log", env)
    wheels = sorted(out.glob("*.whl"))
    if len(wheels) != 1:
        raise BuildError([f"wheel build for Python {version} produced {len(wheels)} wheels in {out}"])
    return wheels[0]


def raw_wheels(strategy: str = "vendor", root: Path = BUILD_ROOT) -> dict[str, Path]:
    """Python "X.Y" -> the raw (unrepaired) wheel built last for `strategy`; what the conda half repackages."""
    out: dict[str, Path] = {}
    base = root / "raw" / strategy
    for d in sorted(base.glob("py*")) if base.is_dir() else []:
        wheels = sorted(d.glob("*.whl"))
        if wheels:
            out[d.name[2:]] = wheels[0]
    return out
