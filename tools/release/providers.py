"""Which library another wheel provides, and where it lands: the one table of providers.

A wheel that declares one of these distributions in Requires-Dist may carry an RPATH into it (auditwheel #257,
#404 drop such entries; NVIDIA/raft #2548 hard-codes them): `check` reports such a library as provided by that
distribution, and `fix` adds the `$ORIGIN`-relative entry to it in every install scheme.

Rows come from the wheels' RECORD files (checked against NVIDIA's wheels of CUDA 11.8, 12.9 and 13.0-13.4 on
PyPI): CUDA 11 and 12 wheels carry a `-cu11`/`-cu12` suffix and install into `nvidia/<component>/lib`; CUDA 13's
drop the suffix and share `nvidia/cu13/lib`; cuDNN, NCCL, cuSPARSELt and NVSHMEM keep their own directories.
A project adds rows with `providers:` in release.yaml or by passing the provider wheels (`--provider-wheel`), whose
RECORD says where each library lands; a row given either way replaces the table's row of the same distribution.
"""
from __future__ import annotations

import contextvars
import posixpath
import re
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

from .layouts import InstallLayout


@dataclass(frozen=True)
class Provider:
    """A library that a declared dependency installs, and where it lands in a layout."""

    soname: str
    """SONAME or glob, e.g. "libcudart.so.13"."""
    where: str
    """Directory template: {platlib} / {purelib} / {libdir} / {root} of the layout, e.g. "{platlib}/nvidia/cu13/lib"."""
    package: str
    """The dependency that provides it (nvidia-cuda-runtime, cuda-cudart)."""

    def directory(self, lay: InstallLayout) -> str | None:
        if "{libdir}" in self.where and lay.libdir is None:
            return None
        d = self.where.format(platlib=lay.paths["platlib"], purelib=lay.paths["purelib"],
                              libdir=lay.libdir or "", root=".")
        return posixpath.normpath(d)


@dataclass(frozen=True)
class ProviderWheel:
    """One distribution that installs shared libraries other wheels link against."""

    dist: str
    """The distribution's name as Requires-Dist spells it (compared PEP 503-normalised)."""
    path: str
    """The directory the libraries land in, relative to site-packages (platlib)."""
    libraries: tuple[str, ...]
    """SONAMEs it installs there."""
    cuda: str = ""
    """The CUDA major version it belongs to ("" when none)."""

    @property
    def key(self) -> str:
        return normalize(self.dist)

    def providers(self) -> tuple[Provider, ...]:
        return tuple(Provider(lib, f"{{platlib}}/{self.path}", self.dist) for lib in self.libraries)


def normalize(name: str) -> str:
    """PEP 503: case and runs of -_. do not matter."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _cu(major: str, dist: str, component: str, *libraries: str) -> ProviderWheel:
    """A CUDA 11/12 wheel: `<dist>-cu<major>`, installed into nvidia/<component>/lib."""
    return ProviderWheel(f"{dist}-cu{major}", f"nvidia/{component}/lib", libraries, major)


def _cu13(dist: str, *libraries: str) -> ProviderWheel:
    return ProviderWheel(dist, "nvidia/cu13/lib", libraries, "13")


NVIDIA_WHEELS: tuple[ProviderWheel, ...] = (
    # CUDA 11.8
    _cu("11", "nvidia-cuda-runtime", "cuda_runtime", "libcudart.so.11.0", "libOpenCL.so.1"),
    _cu("11", "nvidia-cublas", "cublas", "libcublas.so.11", "libcublasLt.so.11", "libnvblas.so.11"),
    _cu("11", "nvidia-cufft", "cufft", "libcufft.so.10", "libcufftw.so.10"),
    _cu("11", "nvidia-curand", "curand", "libcurand.so.10"),
    _cu("11", "nvidia-cusparse", "cusparse", "libcusparse.so.11"),
    _cu("11", "nvidia-cusolver", "cusolver", "libcusolver.so.11", "libcusolverMg.so.11"),
    _cu("11", "nvidia-cuda-nvrtc", "cuda_nvrtc", "libnvrtc.so.11.2", "libnvrtc-builtins.so.11.8"),
    _cu("11", "nvidia-cudnn", "cudnn", "libcudnn.so.9", "libcudnn_adv.so.9", "libcudnn_cnn.so.9",
        "libcudnn_graph.so.9", "libcudnn_ops.so.9", "libcudnn_heuristic.so.9", "libcudnn_engines_precompiled.so.9",
        "libcudnn_engines_runtime_compiled.so.9"),
    _cu("11", "nvidia-nccl", "nccl", "libnccl.so.2"),
    # CUDA 12.x
    _cu("12", "nvidia-cuda-runtime", "cuda_runtime", "libcudart.so.12"),
    _cu("12", "nvidia-cublas", "cublas", "libcublas.so.12", "libcublasLt.so.12", "libnvblas.so.12"),
    _cu("12", "nvidia-cufft", "cufft", "libcufft.so.11", "libcufftw.so.11"),
    _cu("12", "nvidia-curand", "curand", "libcurand.so.10"),
    _cu("12", "nvidia-cusparse", "cusparse", "libcusparse.so.12"),
    _cu("12", "nvidia-cusolver", "cusolver", "libcusolver.so.11", "libcusolverMg.so.11"),
    _cu("12", "nvidia-nvjitlink", "nvjitlink", "libnvJitLink.so.12"),
    _cu("12", "nvidia-cuda-nvrtc", "cuda_nvrtc", "libnvrtc.so.12", "libnvrtc-builtins.so.12.9"),
    _cu("12", "nvidia-cudnn", "cudnn", "libcudnn.so.9", "libcudnn_adv.so.9", "libcudnn_cnn.so.9",
        "libcudnn_graph.so.9", "libcudnn_ops.so.9", "libcudnn_heuristic.so.9", "libcudnn_engines_precompiled.so.9",
        "libcudnn_engines_runtime_compiled.so.9", "libcudnn_ext.so.9"),
    _cu("12", "nvidia-nccl", "nccl", "libnccl.so.2"),
    # CUDA 13.x: unsuffixed names, one shared directory
    _cu13("nvidia-cuda-runtime", "libcudart.so.13"),
    _cu13("nvidia-cublas", "libcublas.so.13", "libcublasLt.so.13", "libnvblas.so.13"),
    _cu13("nvidia-cufft", "libcufft.so.12", "libcufftw.so.12"),
    _cu13("nvidia-curand", "libcurand.so.10"),
    _cu13("nvidia-cusparse", "libcusparse.so.12"),
    _cu13("nvidia-cusolver", "libcusolver.so.12", "libcusolverMg.so.12"),
    _cu13("nvidia-nvjitlink", "libnvJitLink.so.13"),
    _cu13("nvidia-cuda-nvrtc", "libnvrtc.so.13", "libnvrtc-builtins.so.13.0"),
    _cu13("nvidia-cuda-cupti", "libcupti.so.13"),
    _cu13("nvidia-cufile", "libcufile.so.0", "libcufile_rdma.so.1"),
    _cu13("nvidia-nvtx", "libnvtx3interop.so.1"),
    ProviderWheel("nvidia-cudnn-cu13", "nvidia/cudnn/lib", ("libcudnn.so.9", "libcudnn_adv.so.9", "libcudnn_cnn.so.9",
                  "libcudnn_graph.so.9", "libcudnn_ops.so.9", "libcudnn_heuristic.so.9", "libcudnn_ext.so.9",
                  "libcudnn_engines_precompiled.so.9", "libcudnn_engines_runtime_compiled.so.9"), "13"),
    ProviderWheel("nvidia-nccl-cu13", "nvidia/nccl/lib", ("libnccl.so.2",), "13"),
    ProviderWheel("nvidia-cusparselt-cu13", "nvidia/cusparselt/lib", ("libcusparseLt.so.0",), "13"),
    ProviderWheel("nvidia-nvshmem-cu13", "nvidia/nvshmem/lib", ("libnvshmem_host.so.3",), "13"),
)


def table(rows: Iterable[ProviderWheel] = NVIDIA_WHEELS,
          extra: Iterable[ProviderWheel] = ()) -> dict[str, tuple[Provider, ...]]:
    """Normalised distribution name -> its Providers; `extra`'s rows of a name replace the built-in ones (a
    distribution may have several rows: one per directory it installs libraries into)."""
    def grouped(rs: Iterable[ProviderWheel]) -> dict[str, tuple[Provider, ...]]:
        out: dict[str, tuple[Provider, ...]] = {}
        for row in rs:
            out[row.key] = out.get(row.key, ()) + row.providers()
        return out
    return {**grouped(rows), **grouped(extra)}


KNOWN_PROVIDERS: Mapping[str, tuple[Provider, ...]] = table()
"""The built-in table, by normalised distribution name."""

CURRENT: contextvars.ContextVar[Mapping[str, tuple[Provider, ...]]] = contextvars.ContextVar(
    "providers", default=KNOWN_PROVIDERS)
"""The table in force: the built-in one plus release.yaml's `providers:` and any --provider-wheel (cli.py sets
it for one command, as archive.LIMITS)."""


def providers_of(dist: str) -> tuple[Provider, ...]:
    """What `dist` (any spelling) provides under the table in force."""
    return CURRENT.get().get(normalize(dist), ())


def who_provides(soname: str, rows: Iterable[ProviderWheel] = NVIDIA_WHEELS) -> list[ProviderWheel]:
    """Every row that installs `soname` (several: one library name can come from a CUDA 12 and a 13 wheel)."""
    return [r for r in rows if soname in r.libraries]


def rows_from_record(dist: str, members: Sequence[str]) -> list[ProviderWheel]:
    """A provider wheel's rows from its member list (RECORD): one per directory under site-packages that holds
    shared libraries; members in .data/ do not land in site-packages and are left out."""
    by_dir: dict[str, list[str]] = {}
    for m in members:
        name = posixpath.basename(m)
        if re.search(r"\.so(\.\d+)*$", name) and ".data/" not in m and ".dist-info/" not in m:
            by_dir.setdefault(posixpath.dirname(m), []).append(name)
    return [ProviderWheel(dist, d, tuple(sorted(libs))) for d, libs in sorted(by_dir.items())]
