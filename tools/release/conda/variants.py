"""The conda variants: one package per Python and variant, like recipe/conda_build_config.yaml.

A variant is the CPU build or one CUDA flavour of targets.CUDA_FLAVOURS (the one table of CUDA versions, runtime
sonames and conda pins). Its name (release.yaml's conda.variants) is cpu, cuda12x or cuda13x, and the opt-in
legacy cuda118; its build-string tag is conda-forge's spelling of the compiler (cpu, cuda129, cuda130, cuda118).
The solver prefers a CUDA build the way conda-forge's CUDA feedstocks (pytorch-cpu-feedstock) do: the CUDA
variants' build number is CUDA_BUILD_NUMBER_OFFSET higher, and they depend on the `__cuda` virtual package, so a
host with an NVIDIA driver gets the CUDA build and one without cannot install it and gets the CPU build. Which
variants a machine can build depends on the CUDA compilers it has: `find_compiler` asks toolchain/cuda.py for the
flavour's nvcc and host compiler and keeps its reason when there is none, so the release shows a skipped variant
instead of hiding it.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, replace

from ..errors import BadInputError, ToolError
from ..targets import CUDA_FLAVOURS, CudaFlavour
from ..toolchain.cuda import find_toolchain
from .meta import SUBDIR

CUDA_BUILD_NUMBER_OFFSET = 200
"""Added to a CUDA variant's build number so the solver prefers it where `__cuda` exists (conda-forge's
pytorch-cpu-feedstock adds 200; its docs: give the CUDA variant a higher build number)."""


def conda_name(dist: str) -> str:
    """A wheel's distribution name as a conda package name: lowercase, `_` and `.` runs as `-` (PEP 503's
    normalisation, which is also conda-forge's naming rule: my_pkg -> my-pkg)."""
    return re.sub(r"[-_.]+", "-", dist).lower()


@dataclass(frozen=True)
class CondaVariant:
    """One conda variant: what it is built with and what its package needs at run time."""

    name: str
    """release.yaml's name of the variant: cpu, cuda12x, cuda13x, cuda118."""
    flavour: CudaFlavour | None = None
    """The CUDA flavour libcufes is compiled with; None for the CPU variant."""

    @property
    def tag(self) -> str:
        """The build string's first part, conda-forge's spelling of the compiler: cpu, cuda129, cuda130."""
        return self.flavour.conda_tag if self.flavour else "cpu"

    @property
    def build_number_offset(self) -> int:
        return CUDA_BUILD_NUMBER_OFFSET if self.flavour else 0

    @property
    def default(self) -> bool:
        """Built when release.yaml lists no conda.variants (cuda118 is opt-in)."""
        return not (self.flavour and self.flavour.conda_opt_in)

    @property
    def cuda(self) -> str | None:
        """CUDA major.minor of the nvcc that compiles libcufes; None for the CPU variant."""
        return self.flavour.conda_cuda_version if self.flavour else None

    @property
    def runtime_soname(self) -> str | None:
        """The CUDA runtime libcufes needs (DT_NEEDED), provided by `runtime_packages`."""
        return self.flavour.cudart_soname if self.flavour else None

    @property
    def runtime_packages(self) -> tuple[str, ...]:
        return self.flavour.conda_runtime_packages if self.flavour else ()

    def recipe_variant(self, python: str) -> dict[str, object]:
        """The variant keys recipe/recipe.yaml uses for this build, as rattler-build records them: the row of
        recipe/conda_build_config.yaml (cuda118.yaml) that conda-forge compiles the variant with."""
        keys = {"c_compiler": "gcc", "cxx_compiler": "gxx", "c_stdlib": "sysroot", "python": python,
                "target_platform": SUBDIR, **RECIPE_ROWS[self.name]}
        return keys | ({"__cuda": "__cuda"} if self.flavour else {})

    def build_string(self, python: str, number: int) -> str:
        """conda-forge's hashed build string, e.g. cuda130_py312h1a2b3c4_200: the tag, then rattler-build's
        hash of the used variant (SHA-1 of its JSON with sorted keys, first 7 hex digits) after pyXY."""
        digest = hashlib.sha1(json.dumps(self.recipe_variant(python), sort_keys=True).encode()).hexdigest()
        return f"{self.tag}_py{python.replace('.', '')}h{digest[:7]}_{number}"


# What recipe/conda_build_config.yaml and recipe/cuda118.yaml compile each variant with (the keys beyond
# compiler names and Python that the recipe uses); tests/tools/test_conda_recipe_render.py checks these rows
# against rattler-build's rendering of the recipe, so the hash in the build string is the recipe's.
RECIPE_ROWS: dict[str, dict[str, object]] = {
    "cpu": {"c_compiler_version": 13, "cxx_compiler_version": 13, "c_stdlib_version": "2.17",
            "cuda_compiler_version": "None"},
    "cuda12x": {"c_compiler_version": 13, "cxx_compiler_version": 13, "c_stdlib_version": "2.17",
                "cuda_compiler": "cuda-nvcc", "cuda_compiler_version": "12.9"},
    "cuda13x": {"c_compiler_version": 13, "cxx_compiler_version": 13, "c_stdlib_version": "2.28",
                "cuda_compiler": "cuda-nvcc", "cuda_compiler_version": "13.0"},
    "cuda118": {"c_compiler_version": 11, "cxx_compiler_version": 11, "c_stdlib_version": "2.17",
                "cuda_compiler": "nvcc", "cuda_compiler_version": "11.8"},
}


VARIANTS: tuple[CondaVariant, ...] = (CondaVariant("cpu"),) + tuple(
    CondaVariant(f.conda_variant, f) for f in sorted(CUDA_FLAVOURS.values(), key=lambda f: f.toolkit))

DEFAULT_VARIANTS: tuple[CondaVariant, ...] = tuple(v for v in VARIANTS if v.default)


def variant(name: str) -> CondaVariant:
    for v in VARIANTS:
        if v.name == name:
            return v
    raise BadInputError([f"unknown conda variant {name!r} (known: {', '.join(v.name for v in VARIANTS)})"])


def variant_of_cuda(cuda: str | None) -> CondaVariant:
    """The variant of CUDA "major.minor" (None: cpu): the one of its major, as conda-forge's variants are per
    major (a wheel built with nvcc 12.4 is a cuda12x build)."""
    for v in VARIANTS:
        if (v.cuda or "").split(".")[0] == (cuda or "").split(".")[0]:
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


def find_compiler(v: CondaVariant, fetch: bool = False) -> Availability:
    """The nvcc (and host compiler) that builds variant `v` on this machine, or why there is none; `fetch` lets
    toolchain/cuda.py fetch a toolkit it knows how to fetch (CUDA 11.8; cuda12x's 12.9 is not one)."""
    if v.flavour is None:
        return Availability(v, None)
    try:
        chain = find_toolchain(replace(v.flavour, toolkit=v.flavour.conda_cuda_version), fetch=fetch)
    except ToolError as exc:
        return Availability(v, None, str(exc).strip())
    return Availability(v, CudaCompiler(str(chain.nvcc), str(chain.host_compiler) if chain.host_compiler else None))


def availability(tags: tuple[str, ...] = (), fetch: bool = False) -> list[Availability]:
    """Every variant asked for by name (the default ones when `tags` is empty), each with its compiler or the
    reason it cannot build."""
    chosen = [variant(t) for t in tags] if tags else list(DEFAULT_VARIANTS)
    return [find_compiler(v, fetch) for v in chosen]
