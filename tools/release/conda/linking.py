"""The linking check of a .conda: every DT_NEEDED is in the package, from a declared dependency, or a system one.

As conda-build's overlinking check: before a package is written, every DT_NEEDED of every ELF in it must be (a) a library inside the package that the ELF's RPATH reaches, (b) provided
by a package the index declares in `depends` (and reachable through an RPATH entry to $PREFIX/lib), or (c) on a
short allowlist of libraries that come from the system (glibc, the NVIDIA driver). Anything else is an error
naming the file and the library: such a package would load only on the build host.
"""
from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

from ..elf.loader import SYSTEM_LIBRARIES
from ..elf.model import ElfFile
from ..errors import Problem

# DT_NEEDED -> the conda-forge packages that put it into $PREFIX/lib. The first name is the one we declare.
# libcudart: cuda-cudart from CUDA 12 on; the monolithic legacy `cudatoolkit` up to 11.x.
PROVIDERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (r"libcudart\.so\.(1[2-9]|[2-9]\d)", ("cuda-cudart",)),
    (r"libcudart\.so\.(\d|1[01])(\.\d+)*", ("cudatoolkit",)),
    (r"libgomp\.so\.1", ("libgomp", "_openmp_mutex")),
    (r"libstdc\+\+\.so\.6", ("libstdcxx", "libstdcxx-ng")),
    (r"libgcc_s\.so\.1", ("libgcc", "libgcc-ng")),
    (r"libgfortran\.so\.5", ("libgfortran5", "libgfortran")),
    (r"libz\.so\.1", ("libzlib",)),
    (r"libcublas\.so\.\d+", ("libcublas",)),
    (r"libcufft\.so\.\d+", ("libcufft",)),
    (r"libcurand\.so\.\d+", ("libcurand",)),
)



@dataclass(frozen=True)
class Link:
    """How one DT_NEEDED of one ELF is satisfied in the installed package, or why it is not."""

    file: str
    needed: str
    kind: str
    """"package", "dependency", "system" or "missing"."""
    detail: str
    """The in-package path, the declared dependency, or what is wrong."""


def providers(needed: str) -> tuple[str, ...]:
    """The conda packages known to provide library `needed`; () when none is known."""
    for pattern, names in PROVIDERS:
        if re.fullmatch(pattern, needed):
            return names
    return ()


def rpath_dirs(elf: ElfFile) -> list[str]:
    """The ELF's (effective) search path as prefix-relative dirs; $ORIGIN is the ELF's own directory."""
    origin = posixpath.dirname(elf.path)
    dirs = []
    for entry in elf.runpath or elf.rpath:
        if entry.startswith("$ORIGIN") or entry.startswith("${ORIGIN}"):
            rest = entry.split("}", 1)[1] if entry.startswith("${") else entry[len("$ORIGIN"):]
            dirs.append(posixpath.normpath(origin + rest))
    return dirs


def dependency_names(depends: list[str]) -> set[str]:
    return {spec.split()[0] for spec in depends}


def link_of(elf: ElfFile, needed: str, files: set[str], declared: set[str], libdir: str) -> Link:
    """Classify one DT_NEEDED: inside the package, from a declared dependency, from the system, or missing."""
    dirs = rpath_dirs(elf)
    here = [d for d in dirs if posixpath.join(d, needed) in files]
    if here:
        return Link(elf.path, needed, "package", posixpath.join(here[0], needed))
    if needed in SYSTEM_LIBRARIES:
        return Link(elf.path, needed, "system", "system allowlist")
    names = providers(needed)
    found = [n for n in names if n in declared]
    if found and libdir in dirs:
        return Link(elf.path, needed, "dependency", found[0])
    if found:
        return Link(elf.path, needed, "missing", f"provided by dependency {found[0]}, but no RPATH entry reaches "
                                                 f"$PREFIX/{libdir} (RPATH {':'.join(elf.runpath or elf.rpath) or 'none'})")
    if names:
        return Link(elf.path, needed, "missing", f"not declared: add a dependency on {names[0]}")
    return Link(elf.path, needed, "missing", "not in the package, not provided by any declared dependency, "
                                             "not a system library")


def check_links(elves: list[ElfFile], files: set[str], depends: list[str], libdir: str = "lib") -> list[Link]:
    """Every DT_NEEDED of every ELF, classified. `files` are the package's prefix-relative paths."""
    declared = dependency_names(depends)
    return [link_of(elf, n, files, declared, libdir) for elf in elves for n in elf.needed]


def problems_of(links: list[Link], artifact: str) -> list[Problem]:
    return [Problem(artifact, link.file, f"needs {link.needed}: {link.detail}") for link in links
            if link.kind == "missing"]
