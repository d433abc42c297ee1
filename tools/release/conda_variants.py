"""The conda variants of cyfes, as data: one package per Python and variant, like recipe/conda_build_config.yaml.

A variant names the CUDA it is built with (None: the CPU variant), the CUDA runtime library its libcufes needs,
the conda packages that provide that runtime, and the build-string tag that tells variants apart
(conda-forge's spelling: cpu, cuda118, cuda130). Which variants a machine can build depends on the CUDA
compilers it has: `find_compiler` looks for the nvcc of one CUDA version and the host compiler it accepts,
and says where it looked when it finds none, so the release can show a skipped variant instead of hiding it.
"""
from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .errors import BadInputError


@dataclass(frozen=True)
class CondaVariant:
    """One conda variant: what it is built with and what its package needs at run time."""

    tag: str
    """The build-string part after pyXY: cpu, cuda118, cuda130."""
    cuda: str | None
    """CUDA major.minor of the nvcc that compiles libcufes; None for the CPU variant."""
    runtime_soname: str | None
    """The CUDA runtime libcufes needs (DT_NEEDED), provided by `runtime_packages`."""
    runtime_packages: tuple[str, ...]
    """conda-forge's packages for that runtime: cudatoolkit up to CUDA 11, cuda-version + cuda-cudart from 12."""
    max_host_gcc: int | None = None
    """Newest GCC major this nvcc accepts as host compiler (nvcc 11.8: 11); None means any."""


# conda-forge's variants of cyfes (recipe/conda_build_config.yaml lists the same CUDA versions).
VARIANTS: tuple[CondaVariant, ...] = (
    CondaVariant("cpu", None, None, ()),
    CondaVariant("cuda118", "11.8", "libcudart.so.11.0", ("cudatoolkit",), max_host_gcc=11),
    CondaVariant("cuda129", "12.9", "libcudart.so.12", ("cuda-version", "cuda-cudart")),
    CondaVariant("cuda130", "13.0", "libcudart.so.13", ("cuda-version", "cuda-cudart")),
)

# Where a CUDA toolkit's nvcc lives: NVIDIA's installers (/usr/local/cuda-X.Y), Debian's nvidia-cuda-toolkit
# (/usr/bin/nvcc, the real driver in /usr/lib/nvidia-cuda-toolkit/bin), and toolkits unpacked into the
# release toolchain cache (~/.cache/cyfes/cuda-X.Y/...) by `make dist`.
NVCC_GLOBS = ("/usr/local/cuda-{v}/bin/nvcc", "/usr/local/cuda/bin/nvcc", "/usr/bin/nvcc",
              "/usr/lib/nvidia-cuda-toolkit/bin/nvcc", "~/.cache/cyfes/cuda-{v}/**/bin/nvcc")
# Host compilers unpacked next to such a toolkit (nvcc 11.8 needs g++ <= 11; Debian 12's is 12).
HOST_CXX_GLOBS = ("~/.cache/cyfes/cuda-{v}/**/bin/g++-{n}",)
NVCC_ENV = "CYFES_NVCC_{major}_{minor}"
"""An explicit nvcc for one CUDA version, e.g. CYFES_NVCC_11_8=/opt/cuda-11.8/bin/nvcc."""


def variant(tag: str) -> CondaVariant:
    for v in VARIANTS:
        if v.tag == tag:
            return v
    raise BadInputError([f"unknown conda variant {tag!r} (known: {', '.join(v.tag for v in VARIANTS)})"])


def variant_of_cuda(cuda: str | None) -> CondaVariant:
    """The variant of CUDA "major.minor" (None: cpu)."""
    for v in VARIANTS:
        if v.cuda == cuda:
            return v
    raise BadInputError([f"no conda variant for CUDA {cuda} (known: {', '.join(str(v.cuda) for v in VARIANTS)})"])


@dataclass(frozen=True)
class CudaCompiler:
    """An nvcc of the variant's CUDA version, and the host compiler to give it (None: nvcc's default)."""

    nvcc: str
    host_cxx: str | None


@dataclass(frozen=True)
class Availability:
    """Whether this machine can build a variant: the compiler, or why not (shown in the release table)."""

    variant: CondaVariant
    compiler: CudaCompiler | None
    reason: str = ""

    @property
    def buildable(self) -> bool:
        return self.variant.cuda is None or self.compiler is not None


def nvcc_release(nvcc: str) -> str | None:
    """major.minor of an nvcc from `nvcc --version` ("Cuda compilation tools, release 11.8, V11.8.89")."""
    try:
        out = subprocess.run([nvcc, "--version"], capture_output=True, text=True, timeout=60, check=False).stdout
    except OSError:
        return None
    m = re.search(r"release (\d+)\.(\d+)", out)
    return f"{m.group(1)}.{m.group(2)}" if m else None


def nvcc_candidates(cuda: str) -> list[str]:
    major, minor = cuda.split(".")
    explicit = os.environ.get(NVCC_ENV.format(major=major, minor=minor))
    found = [explicit] if explicit else []
    on_path = shutil.which("nvcc")
    found += [on_path] if on_path else []
    for pattern in NVCC_GLOBS:
        found += sorted(glob.glob(os.path.expanduser(pattern.format(v=cuda)), recursive=True))
    return list(dict.fromkeys(found))


def gcc_major(cxx: str) -> int | None:
    try:
        out = subprocess.run([cxx, "-dumpversion"], capture_output=True, text=True, timeout=60, check=False).stdout
    except OSError:
        return None
    return int(out.split(".")[0]) if out.strip()[:1].isdigit() else None


def host_compiler(v: CondaVariant, nvcc: str) -> tuple[str | None, str]:
    """The C++ compiler nvcc should use: the default one when new enough is allowed, else g++-N next to nvcc,
    in the toolchain cache, or on PATH, newest allowed first. ("", reason) when none fits."""
    if v.max_host_gcc is None or (gcc_major("g++") or 99) <= v.max_host_gcc:
        return None, ""
    for major in range(v.max_host_gcc, 6, -1):
        cached = [c for g in HOST_CXX_GLOBS
                  for c in sorted(glob.glob(os.path.expanduser(g.format(v=v.cuda, n=major)), recursive=True))]
        for cand in (str(Path(nvcc).parent / f"g++-{major}"), *cached, shutil.which(f"g++-{major}")):
            if cand and os.access(cand, os.X_OK) and gcc_major(cand) == major:
                return cand, ""
    return "", f"nvcc {v.cuda} needs g++ <= {v.max_host_gcc}, and none was found (the default g++ is " \
               f"{gcc_major('g++')})"


def find_compiler(v: CondaVariant) -> Availability:
    """The nvcc (and host compiler) that builds variant `v` on this machine, or why there is none."""
    if v.cuda is None:
        return Availability(v, None)
    candidates = nvcc_candidates(v.cuda)
    for nvcc in candidates:
        if nvcc_release(nvcc) == v.cuda:
            cxx, why = host_compiler(v, nvcc)
            if cxx == "":
                return Availability(v, None, why)
            return Availability(v, CudaCompiler(nvcc, cxx))
    seen = ", ".join(f"{c} ({nvcc_release(c) or '?'})" for c in candidates) or "none"
    major, minor = v.cuda.split(".")
    return Availability(v, None, f"no nvcc {v.cuda} on this machine (nvcc found: {seen}; set "
                                 f"{NVCC_ENV.format(major=major, minor=minor)} to point at one)")


def availability(tags: tuple[str, ...] = ()) -> list[Availability]:
    """Every variant asked for (all when `tags` is empty), each with its compiler or the reason it cannot build."""
    chosen = [variant(t) for t in tags] if tags else list(VARIANTS)
    return [find_compiler(v) for v in chosen]
