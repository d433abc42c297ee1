"""What a conda package needs from its environment: `depends` and `constrains` of info/index.json.

Derived from the package's ELF files (DT_NEEDED through linking.py's provider table, GLIBC symbol versions,
the compiler that built them) and the target (Python X.Y, CUDA version), with conda-forge's names and pins:
a package is declared only when some ELF needs what it provides (libstdcxx only if libstdc++.so.6 is needed).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from elftools.elf.elffile import ELFFile

from ..elf.glibc import file_floor
from ..elf.model import ElfFile
from .linking import providers

# conda-forge's OpenMP switch: `_openmp_mutex` selects GNU (libgomp) or LLVM OpenMP; its >=4.5 pin is what
# conda-forge's compilers export for OpenMP users.
OPENMP_MUTEX = "_openmp_mutex >=4.5"
# The oldest glibc conda-forge's sysroot targets; used when no versioned glibc symbol is found.
GLIBC_FLOOR = (2, 17)


@dataclass(frozen=True)
class Target:
    """One conda package to make: Python "X.Y" and the CUDA "major.minor" it was built with (None: CPU only)."""

    python: str
    cuda: str | None


@dataclass(frozen=True)
class ElfFacts:
    """Facts about one ELF that the dynamic section does not hold."""

    glibc: tuple[int, ...]
    """Highest GLIBC_x.y symbol version it needs."""
    gcc_major: int | None
    """Major version of the GCC named in its .comment section (the runtime libraries' floor)."""


def elf_facts(path: Path) -> ElfFacts:
    glibc = max(GLIBC_FLOOR, file_floor(path).version)  # the same answer `check` prints for the file
    with open(path, "rb") as f:
        comment = ELFFile(f).get_section_by_name(".comment")
        text = comment.data().decode("latin-1") if comment is not None else ""
    majors = [int(m) for m in re.findall(r"GCC: \([^)]*\) (\d+)\.", text)]
    return ElfFacts(glibc, max(majors) if majors else None)


def python_specs(python: str) -> list[str]:
    major, minor = (int(x) for x in python.split("."))
    return [f"python >={major}.{minor},<{major}.{minor + 1}.0a0", f"python_abi {major}.{minor}.* *_cp{major}{minor}"]


def cuda_specs(cuda: str, needed: set[str]) -> list[str]:
    """What a CUDA build depends on, as conda-forge spells it. `__cuda` (the NVIDIA driver's virtual package,
    as conda-forge's CUDA builds declare it): a host without a driver cannot install the package and the solver
    takes the CPU build. CUDA >= 12: `cuda-version >=X.Y,<X+1` (the run_export of conda-forge's nvcc; it ties every
    CUDA package to one release) and cuda-cudart when the shared runtime is linked (a static runtime needs none);
    CUDA 11: the legacy monolithic cudatoolkit."""
    major, minor = (int(x) for x in cuda.split(".")[:2])
    pin = f">={major}.{minor},<{major + 1}.0a0"
    if major < 12:
        return ["__cuda", f"cudatoolkit {pin}"]
    shared = any(providers(n) == ("cuda-cudart",) for n in needed)
    return ["__cuda", f"cuda-version >={major}.{minor},<{major + 1}"] + ([f"cuda-cudart {pin}"] if shared else [])


def requirement_to_spec(requirement: str) -> str:
    """A PEP 508 requirement without markers ("numpy>=1.21") as a conda match spec ("numpy >=1.21")."""
    m = re.fullmatch(r"\s*([A-Za-z0-9_.\-]+)\s*(.*?)\s*", requirement)
    name, version = m.group(1).lower().replace("_", "-"), m.group(2).replace(" ", "")
    return f"{name} {version}" if version else name


def runtime_specs(needed: set[str], gcc_major: int | None) -> list[str]:
    """conda-forge runtime packages for the GCC runtime libraries the ELFs need (CUDA is handled apart)."""
    floor = f" >={gcc_major}" if gcc_major else ""
    specs = []
    for lib in sorted(needed):
        names = providers(lib)
        if names and names[0] in ("libgcc", "libstdcxx", "libgomp", "libgfortran5"):
            specs.append(names[0] + floor)
            if names[0] == "libgomp":
                specs.append(OPENMP_MUTEX)
    return specs


def depends_and_constrains(elves: list[ElfFile], facts: list[ElfFacts], target: Target,
                           requirements: list[str]) -> tuple[list[str], list[str]]:
    """(depends, constrains) for info/index.json, sorted as conda-build writes them."""
    needed = {n for elf in elves for n in elf.needed}
    gcc = max((f.gcc_major for f in facts if f.gcc_major), default=None)
    depends = python_specs(target.python) + [requirement_to_spec(r) for r in requirements]
    depends += runtime_specs(needed, gcc)
    if target.cuda is not None:
        depends += cuda_specs(target.cuda, needed)
    glibc = max((f.glibc for f in facts), default=GLIBC_FLOOR)
    constrains = [f"__glibc >={'.'.join(map(str, glibc))}"]
    if target.cuda is not None:
        constrains.append(f"__cuda >={target.cuda.split('.')[0]}")
    return sorted(set(depends)), sorted(constrains)
