"""Build step: the optional library step once per CUDA runtime linkage (cyfes: libcufes), then one PEP 517 wheel per
Python that packages it; release.yaml's `build` section says how (config.BuildConfig, defaults are cyfes's).

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
from typing import Callable, Sequence

from ..config import BuildConfig, CudaConfig, LibraryStep

from ..errors import BuildError
from ..targets import CUDA_FLAVOURS, CudaFlavour, cuda_flavour
from ..toolchain.cuda import CudaToolchain, find_toolchain, nvcc_version

BUILD_ROOT = Path("build/release")
NVCC_CANDIDATES = ("/usr/local/cuda/bin/nvcc",)
BUILD_TIMEOUT_S = 1800

Log = Callable[[str], None]


@dataclass(frozen=True)
class CudaLibrary:
    """A shared library (cyfes: libcufes.so) built once and shared by every Python's wheel."""

    path: Path
    runtime: str
    """Shared (DT_NEEDED on the flavour's libcudart) or Static (cudart linked in)."""
    flavour: CudaFlavour
    """The CUDA flavour it was built for (targets.CUDA_FLAVOURS)."""
    nvcc_version: str
    """The version of the nvcc that compiled it, e.g. "11.8.89" (what `cyfes info` reports)."""
    library_dirs: tuple[Path, ...] = ()
    """The toolkit's library directories: where auditwheel finds the libcudart to graft."""

    def settings(self, templates: Sequence[str] = BuildConfig.library_settings) -> list[str]:
        """build.library_settings filled in: what the package's build records (it runs no compiler itself)."""
        f = self.flavour
        return [t.format(library=self.path, runtime=self.runtime, nvcc_version=self.nvcc_version or f.toolkit,
                         driver_cuda=f.driver_cuda, driver_min=f.driver_min) for t in templates]


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


def host_flavour() -> CudaFlavour | None:
    """The flavour the host's own nvcc builds (what `make install` uses), None without one or for another major."""
    nvcc = _nvcc()
    version = nvcc_version(nvcc) if nvcc else None
    return next((f for f in CUDA_FLAVOURS.values() if version and version.split(".")[0] == f.toolkit.split(".")[0]),
                None)


def build_cuda_library(strategy: str, root: Path = BUILD_ROOT, log: Log = lambda s: None,
                       flavour: str | None = None, step: LibraryStep = LibraryStep(),
                       cuda: CudaConfig = CudaConfig()) -> CudaLibrary:
    """release.yaml's build.library step (cyfes: cmake -S cuda) in build/release/<name>-<flavour>-<runtime>,
    installed so CMake sets its install RPATH ($ORIGIN).

    `flavour` names a row of targets.CUDA_FLAVOURS: its toolkit is found or fetched (toolchain/cuda.py) and its
    architectures (or cuda.architectures') compiled. None builds with the host's nvcc, for the row of its major."""
    runtime = runtime_for(strategy)
    if flavour is None:
        row = host_flavour()
        if row is None:
            raise BuildError([f"no nvcc of a known CUDA flavour ({', '.join(CUDA_FLAVOURS)}) on this host"])
        chain = CudaToolchain(Path(_nvcc() or "nvcc"), nvcc_version(_nvcc() or "nvcc") or "", None)
    else:
        row = cuda_flavour(flavour)
        chain = find_toolchain(row, log=log)
    name = f"{step.name}-{row.name}-{runtime.lower()}"
    bdir, prefix, logf = root / name, root / name / "install", root / "logs" / f"{name}.log"
    archs = cuda.architectures_for(row)
    fill = {"runtime": runtime, "nvcc": chain.nvcc, "architectures": archs, "prefix": prefix.resolve()}
    log(f"{step.name} ({row.name}: nvcc {chain.version}, {runtime} CUDA runtime): build in {bdir}")
    if step.command:
        prefix.mkdir(parents=True, exist_ok=True)
        _run([a.format(**fill) for a in step.command], f"library step of {step.name}", logf)
    else:
        _cmake_library(step, fill, chain, bdir, prefix, logf)
    lib = prefix / step.produces[0]
    if not lib.is_file():
        raise BuildError([f"the library step of {step.name} did not produce {lib} (release.yaml build.library.produces)"])
    return CudaLibrary(lib.resolve(), runtime, row, chain.version, chain.library_dirs)


def _cmake_library(step: LibraryStep, fill: dict, chain: CudaToolchain, bdir: Path, prefix: Path,
                   logf: Path) -> None:
    src = step.source
    cmd = ["cmake", "-S", src, "-B", str(bdir), "-DCMAKE_BUILD_TYPE=Release",
           *[a.format(**fill) for a in step.cmake_args], f"-DCMAKE_CUDA_COMPILER={chain.nvcc}",
           f"-DCMAKE_CUDA_ARCHITECTURES={fill['architectures']}"]
    if chain.host_compiler:
        cmd.append(f"-DCMAKE_CUDA_HOST_COMPILER={chain.host_compiler}")
    if shutil.which("ninja"):
        cmd += ["-G", "Ninja"] if not (bdir / "CMakeCache.txt").exists() else []
    _run(cmd, f"cmake configure of {src}/", logf)
    _run(["cmake", "--build", str(bdir)], f"cmake build of {src}/", logf)
    # --strip: nvcc names a FILE symbol after its temp file, tmpxft_<pid>_..., so an unstripped libcufes differs
    # from build to build by its pid; the symbol table is not needed at run time (kernels live in .nv_fatbin).
    _run(["cmake", "--install", str(bdir), "--prefix", str(prefix), "--strip"], f"cmake install of {src}/", logf)


def raw_wheel_dir(version: str, strategy: str, root: Path = BUILD_ROOT, flavour: str = "cpu") -> Path:
    """build/release/raw/<strategy>/<flavour or cpu>/py3.X: wheels of different CUDA flavours never mix."""
    return root / "raw" / strategy / flavour / f"py{version}"


def build_wheel(python: str, version: str, cuda: CudaLibrary | None, strategy: str = "vendor",
                root: Path = BUILD_ROOT, log: Log = lambda s: None, build: BuildConfig = BuildConfig(),
                source: Path = Path(".")) -> Path:
    """One PEP 517 build (`pip wheel --no-deps`, isolated) of `source` for one interpreter; returns the raw wheel."""
    out = raw_wheel_dir(version, strategy, root, cuda.flavour.name if cuda else "cpu")
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    bdir = (root / f"py{version}-{strategy}").resolve()
    settings = [t.format(build_dir=bdir, cuda="ON" if cuda else "OFF") for t in build.config_settings]
    if cuda:
        settings += cuda.settings(build.library_settings)
    # The long spelling: pip < 23.1 (pyenv's 3.8-3.10) has --config-settings but not -C.
    settings = [f"--config-settings={s}" for s in settings]
    env = {k: v for k, v in os.environ.items() if k not in (*build.clean_env, "PYTHONPATH", "VIRTUAL_ENV")}
    env.setdefault("PIP_DISABLE_PIP_VERSION_CHECK", "1")
    log(f"wheel for Python {version} ({python})")
    _run([python, "-m", "pip", "wheel", "--no-deps", "-w", str(out.resolve()), *settings, str(source)],
         f"wheel build for Python {version}", root / "logs" / f"wheel-py{version}-{strategy}.log", env)
    wheels = sorted(out.glob("*.whl"))
    if len(wheels) != 1:
        raise BuildError([f"wheel build for Python {version} produced {len(wheels)} wheels in {out}"])
    return wheels[0]


def raw_wheels(strategy: str = "vendor", root: Path = BUILD_ROOT, flavour: str | None = None) -> dict[str, Path]:
    """Python "X.Y" -> the raw (unrepaired) wheel built last for `strategy` and CUDA `flavour` (None: the flavour
    of the host's nvcc, which build_cuda_library builds by default); what the conda half repackages."""
    if flavour is None:
        host = host_flavour()
        flavour = host.name if host else "cpu"
    out: dict[str, Path] = {}
    base = root / "raw" / strategy / flavour
    for d in sorted(base.glob("py*")) if base.is_dir() else []:
        wheels = sorted(d.glob("*.whl"))
        if wheels:
            out[d.name[2:]] = wheels[0]
    return out
