"""What the release targets, as one table: supported Pythons, CUDA flavours and the packages providing their runtime.

Every other module reads it instead of hard-coding it (release.yaml, pyproject.toml and the README's "Runs on" agree
with it; tests/tools/test_targets.py holds them to it).

Sections are independent; each says where its facts come from.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

# ================================================================================================ CUDA flavours
# A CUDA flavour is one toolkit major version the GPU backend is compiled with, and everything that follows from it:
# the runtime SONAME the library needs, the oldest driver that runs it, the GPU architectures it carries code for,
# and the packages that can provide its runtime. Driver floors are NVIDIA's "minor version compatibility" minimums
# (CUDA Compatibility guide, table "CUDA Toolkit and Minimum Required Driver Version"): a runtime of major X runs
# on any driver that supports CUDA X.0, as long as the kernels come as SASS for the GPU (PTX built by toolkit X.Y
# needs a driver of X.Y or newer to JIT it; PTX is only used on GPUs newer than the toolkit, which need newer
# drivers anyway).


@dataclass(frozen=True)
class CudaFlavour:
    """One CUDA toolkit major version the GPU backend can be built with."""

    name: str
    """Short name used in release.yaml (cuda.flavour) and build directories: "cu11", "cu13"."""
    toolkit: str
    """Toolkit version the library is compiled with ("major.minor"); nvcc must report this version."""
    cudart_soname: str
    """SONAME of the shared CUDA runtime libcufes needs (DT_NEEDED)."""
    driver_cuda: str
    """The CUDA version the driver must support (cuDriverGetVersion), "major.minor"."""
    driver_min: str
    """The oldest Linux driver that supports driver_cuda."""
    driver_branch: str
    """NVIDIA's name for that driver branch ("R450")."""
    sass: tuple[int, ...]
    """GPU architectures compiled to machine code (SASS), as sm numbers: 60 = sm_60 (Pascal P100)."""
    ptx: int
    """The architecture whose PTX is embedded, so GPUs newer than the toolkit JIT-compile it."""
    pip_runtime: str
    """NVIDIA's PyPI wheel that provides cudart_soname (the pip strategy's dependency)."""
    pip_runtime_range: str
    """Versions of pip_runtime the library runs with (no older than the toolkit, same major)."""
    pip_runtime_dir: str
    """Where pip_runtime installs the library, as an rpath.Provider directory template."""
    conda_cuda_version: str
    """conda-forge's `cuda-version` of this flavour (the variant key), and the nvcc its conda variant is compiled
    with; it may be newer than `toolkit` (cu12: conda-forge's 12.9, the wheels' fetchable 12.4)."""
    conda_runtime: str
    """The conda package that provides the runtime, with its pin."""
    host_gcc_max: int | None
    """Newest GCC major this nvcc accepts as host compiler (None: any the host has)."""
    conda_variant: str = ""
    """The conda variant's name in release.yaml (conda.variants): conda-forge's per-major spelling, cuda12x."""
    conda_opt_in: bool = False
    """Left out of the default conda variants (conda-forge builds CUDA 11.8 only on request); listed in
    conda.variants it is built."""

    @property
    def cmake_architectures(self) -> str:
        """CMAKE_CUDA_ARCHITECTURES: SASS only (-real) for each arch, SASS + PTX for the PTX arch."""
        return ";".join(f"{a}" if a == self.ptx else f"{a}-real" for a in self.sass)

    @property
    def pip_requirement(self) -> str:
        return f"{self.pip_runtime}{self.pip_runtime_range}"

    @property
    def conda_tag(self) -> str:
        """conda-forge's build-string tag of this flavour's variant: cuda118, cuda129, cuda130."""
        return "cuda" + self.conda_cuda_version.replace(".", "")

    @property
    def conda_runtime_packages(self) -> tuple[str, ...]:
        """conda-forge's runtime packages: cudatoolkit up to CUDA 11, cuda-version + cuda-cudart from 12."""
        return ("cudatoolkit",) if self.conda_runtime.startswith("cudatoolkit") else ("cuda-version", "cuda-cudart")

    @property
    def driver_cuda_number(self) -> int:
        """driver_cuda as cuDriverGetVersion encodes it: 1000 * major + 10 * minor."""
        major, minor = (int(x) for x in self.driver_cuda.split("."))
        return 1000 * major + 10 * minor


CUDA_FLAVOURS: dict[str, CudaFlavour] = {
    # The PyPI default: nvcc 11.8 is the newest toolkit that still targets Pascal and Volta, and its runtime
    # runs on every driver from R450 (2020). Toolchain: Debian's non-free nvidia-cuda-toolkit 11.8.89 (toolchain/cuda.py).
    "cu11": CudaFlavour(
        name="cu11", toolkit="11.8", cudart_soname="libcudart.so.11.0",
        driver_cuda="11.0", driver_min="450.80.02", driver_branch="R450",
        sass=(60, 70, 75, 80, 86, 89, 90), ptx=90,
        pip_runtime="nvidia-cuda-runtime-cu11", pip_runtime_range=">=11.8,<12",
        pip_runtime_dir="{platlib}/nvidia/cuda_runtime/lib",
        conda_cuda_version="11.8", conda_runtime="cudatoolkit >=11.8,<12", host_gcc_max=11,
        # conda-forge dropped CUDA 11.8 from its default matrix (a paused, opt-in migrator re-adds it)
        conda_variant="cuda118", conda_opt_in=True),
    # CUDA 12.4: drivers from R525 (12.0's floor, minor-version compatibility), the same Pascal-to-Hopper SASS as
    # cu11. Toolchain: Debian trixie's non-free nvidia-cuda-toolkit 12.4.131 (toolchain/cuda.py), which takes the
    # host's g++ up to 13. Its conda variant stays conda-forge's cuda12x (CUDA 12.9, conda_cuda_version), compiled
    # by an nvcc 12.9 of the host.
    "cu12": CudaFlavour(
        name="cu12", toolkit="12.4", cudart_soname="libcudart.so.12",
        driver_cuda="12.0", driver_min="525.60.13", driver_branch="R525",
        sass=(60, 70, 75, 80, 86, 89, 90), ptx=90,
        pip_runtime="nvidia-cuda-runtime-cu12", pip_runtime_range=">=12.4,<13",
        pip_runtime_dir="{platlib}/nvidia/cuda_runtime/lib",
        conda_cuda_version="12.9", conda_runtime="cuda-cudart >=12.9,<13", host_gcc_max=13,
        conda_variant="cuda12x"),
    # CUDA 13 cannot target below sm_75 and needs R580; kept for sites that want the newest toolkit.
    "cu13": CudaFlavour(
        name="cu13", toolkit="13.0", cudart_soname="libcudart.so.13",
        driver_cuda="13.0", driver_min="580.65.06", driver_branch="R580",
        sass=(75, 80, 86, 89, 90), ptx=90,
        pip_runtime="nvidia-cuda-runtime", pip_runtime_range=">=13.0,<14",
        pip_runtime_dir="{platlib}/nvidia/cu13/lib",
        conda_cuda_version="13.0", conda_runtime="cuda-cudart >=13.0,<14", host_gcc_max=None,
        conda_variant="cuda13x"),
}

DEFAULT_CUDA_FLAVOUR = "cu11"


def cuda_flavour(name: str) -> CudaFlavour:
    """The flavour called `name`; KeyError names the known ones."""
    try:
        return CUDA_FLAVOURS[name]
    except KeyError:
        raise KeyError(f"unknown CUDA flavour {name!r} (known: {', '.join(CUDA_FLAVOURS)})") from None


def flavour_for_soname(soname: str) -> CudaFlavour | None:
    return next((f for f in CUDA_FLAVOURS.values() if f.cudart_soname == soname), None)


def flavour_for_requirement(requirement: str) -> CudaFlavour | None:
    """The flavour whose runtime wheel a Requires-Dist line names ("nvidia-cuda-runtime-cu11>=11.8,<12")."""
    name = re.match(r"[A-Za-z0-9._-]+", requirement.strip())
    key = name.group(0).lower().replace("_", "-") if name else ""
    return next((f for f in CUDA_FLAVOURS.values() if f.pip_runtime == key), None)


# ==== PYTHONS ======================================================================================================


@dataclass(frozen=True)
class PythonTarget:
    """One supported CPython and the wheel that serves it."""

    version: str
    """"X.Y"."""
    abi3: bool
    """Served by the cp311-abi3 wheel (Limited API) instead of a wheel of its own."""

    @property
    def key(self) -> tuple[int, int]:
        major, minor = self.version.split(".")
        return int(major), int(minor)

    @property
    def wheel_tag(self) -> str:
        """The python-abi part of the wheel that installs on it."""
        return f"cp{ABI3_FROM.replace('.', '')}-abi3" if self.abi3 else f"cp{self.key[0]}{self.key[1]}-" \
            f"cp{self.key[0]}{self.key[1]}"


ABI3_FROM = "3.11"
"""The Limited API version of the abi3 wheel (pyproject's wheel.py-api): the buffer protocol behind Cython's
memoryviews is in the Limited API from 3.11 on."""

PYTHONS: tuple[PythonTarget, ...] = (
    PythonTarget("3.9", abi3=False),
    PythonTarget("3.10", abi3=False),
    PythonTarget("3.11", abi3=True),
    PythonTarget("3.12", abi3=True),
    PythonTarget("3.13", abi3=True),
    PythonTarget("3.14", abi3=True),
)

REQUIRES_PYTHON = f">={PYTHONS[0].version}"
"""pyproject.toml's requires-python."""


def python_versions() -> list[str]:
    """Every supported CPython, oldest first."""
    return [p.version for p in PYTHONS]


def build_pythons() -> list[str]:
    """The interpreters a release builds wheels with: one per version-specific wheel, one for the abi3 wheel."""
    return [p.version for p in PYTHONS if not p.abi3 or p.version == ABI3_FROM]


def abi3_pythons() -> list[str]:
    """The CPythons the abi3 wheel serves (the release verifies it with each one it finds)."""
    return [p.version for p in PYTHONS if p.abi3]


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(x) for x in version.split("."))

# ==== end PYTHONS ==================================================================================================
