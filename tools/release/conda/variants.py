"""The conda variants of cyfes: one package per Python and variant, like recipe/conda_build_config.yaml.

A variant is the CPU build or one CUDA flavour of targets.CUDA_FLAVOURS (the one table of CUDA versions, runtime
sonames and conda pins); its build-string tag is conda-forge's spelling (cpu, cuda118, cuda129, cuda130). Which
variants a machine can build depends on the CUDA compilers it has: `find_compiler` asks toolchain/cuda.py for the
flavour's nvcc and host compiler and keeps its reason when there is none, so the release shows a skipped variant
instead of hiding it.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import BadInputError, ToolError
from ..targets import CUDA_FLAVOURS, CudaFlavour
from ..toolchain.cuda import find_toolchain


@dataclass(frozen=True)
class CondaVariant:
    """One conda variant: what it is built with and what its package needs at run time."""

    tag: str
    """The build-string part after pyXY: cpu, cuda118, cuda130."""
    flavour: CudaFlavour | None = None
    """The CUDA flavour libcufes is compiled with; None for the CPU variant."""

    @property
    def cuda(self) -> str | None:
        """CUDA major.minor of the nvcc that compiles libcufes; None for the CPU variant."""
        return self.flavour.toolkit if self.flavour else None

    @property
    def runtime_soname(self) -> str | None:
        """The CUDA runtime libcufes needs (DT_NEEDED), provided by `runtime_packages`."""
        return self.flavour.cudart_soname if self.flavour else None

    @property
    def runtime_packages(self) -> tuple[str, ...]:
        return self.flavour.conda_runtime_packages if self.flavour else ()


VARIANTS: tuple[CondaVariant, ...] = (CondaVariant("cpu"),) + tuple(
    CondaVariant(f.conda_tag, f) for f in sorted(CUDA_FLAVOURS.values(), key=lambda f: f.toolkit))


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


def find_compiler(v: CondaVariant, fetch: bool = False) -> Availability:
    """The nvcc (and host compiler) that builds variant `v` on this machine, or why there is none; `fetch` lets
    toolchain/cuda.py fetch a toolkit it knows how to fetch (CUDA 11.8)."""
    if v.flavour is None:
        return Availability(v, None)
    try:
        chain = find_toolchain(v.flavour, fetch=fetch)
    except ToolError as exc:
        return Availability(v, None, str(exc).strip())
    return Availability(v, CudaCompiler(str(chain.nvcc), str(chain.host_compiler) if chain.host_compiler else None))


def availability(tags: tuple[str, ...] = (), fetch: bool = False) -> list[Availability]:
    """Every variant asked for (all when `tags` is empty), each with its compiler or the reason it cannot build."""
    chosen = [variant(t) for t in tags] if tags else list(VARIANTS)
    return [find_compiler(v, fetch) for v in chosen]
