"""Symbol versions -> the oldest glibc an ELF file can load on, and the symbol that sets it.

glibc gives a function a new symbol version when its behaviour changes (exp@GLIBC_2.29, expf@GLIBC_2.27), and a
binary records the version it was linked against in .gnu.version_r; the loader refuses the file on any glibc
that does not define every recorded version. So the floor of a file is its highest required GLIBC_x.y, which is
also what auditwheel compares with each manylinux policy. `oldest_glibc` is pure; `required_versions` and
`defined_versions` read a file with pyelftools.
"""
from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterable, Union

Source = Union[str, Path, bytes]

from elftools.elf.elffile import ELFFile
from elftools.elf.gnuversions import GNUVerDefSection, GNUVerNeedSection, GNUVerSymSection

GLIBC_VERSION = re.compile(r"GLIBC_(\d+(?:\.\d+)+)")
# Every ELF that links libc at all can load on this glibc (x86-64's first version); a file with no
# versioned glibc reference is reported with this floor and no symbol.
BASELINE = (2, 2, 5)


@dataclass(frozen=True)
class VersionedSymbol:
    """One version a file requires from a library, and a symbol bound to it ("" when none is: a bare
    version reference, which the loader checks all the same)."""

    symbol: str
    version: str
    """e.g. GLIBC_2.29, GOMP_4.0, GCC_3.0."""
    library: str
    """The DT_NEEDED file the version is required from, e.g. libm.so.6."""


@dataclass(frozen=True)
class GlibcFloor:
    """The oldest glibc a file (or an artifact: the newest of its files) can load on."""

    version: tuple[int, ...]
    symbol: str
    """The symbol (with @VERSION) that sets the floor, or "" when no glibc symbol is versioned above the baseline."""
    library: str
    file: str = ""
    """The ELF the floor comes from (set for artifact floors)."""

    @property
    def text(self) -> str:
        return ".".join(map(str, self.version))

    @property
    def manylinux(self) -> str:
        """The PEP 600 tag this floor allows (the tag auditwheel computes from the same versions)."""
        return f"manylinux_{self.version[0]}_{self.version[1]}"


def _version_tuple(version: str) -> tuple[int, ...] | None:
    m = GLIBC_VERSION.fullmatch(version)
    return tuple(int(x) for x in m.group(1).split(".")) if m else None


def oldest_glibc(required: Iterable[VersionedSymbol], file: str = "") -> GlibcFloor:
    """The floor set by the highest GLIBC_x.y in `required`; named by a symbol when one is bound to it
    (the first in name order, so the answer is stable)."""
    best: tuple[tuple[int, ...], str, str] = (BASELINE, "", "")
    for req in sorted(required, key=lambda r: (r.symbol == "", r.symbol, r.library)):
        v = _version_tuple(req.version)
        if v is None:
            continue
        label = f"{req.symbol}@{req.version}" if req.symbol else f"(version reference {req.version})"
        if v > best[0] or (v == best[0] and not best[1]):
            best = (v, label, req.library)
    return GlibcFloor(best[0], best[1], best[2], file)


def newest_floor(floors: Iterable[GlibcFloor]) -> GlibcFloor:
    """An artifact can load only where all of its files can."""
    return max(floors, key=lambda f: (f.version, bool(f.symbol)), default=GlibcFloor(BASELINE, "", ""))


def _open(source: Source) -> BinaryIO:
    return io.BytesIO(source) if isinstance(source, bytes) else open(source, "rb")


def required_versions(source: Source) -> list[VersionedSymbol]:
    """Every (symbol, version, library) the file's dynamic symbols require, plus bare version references.
    `source` is a path or the file's bytes (an archive member)."""
    with _open(source) as f:
        elf = ELFFile(f)
        need = next((s for s in elf.iter_sections() if isinstance(s, GNUVerNeedSection)), None)
        if need is None:
            return []
        index: dict[int, tuple[str, str]] = {}
        for verneed, auxes in need.iter_versions():
            for aux in auxes:
                index[aux["vna_other"]] = (aux.name, verneed.name)
        out = _bound_symbols(elf, index)
    bound = {(r.version, r.library) for r in out}
    out += [VersionedSymbol("", v, lib) for v, lib in index.values() if (v, lib) not in bound]
    return out


def _bound_symbols(elf: ELFFile, index: dict[int, tuple[str, str]]) -> list[VersionedSymbol]:
    versym = next((s for s in elf.iter_sections() if isinstance(s, GNUVerSymSection)), None)
    dynsym = elf.get_section_by_name(".dynsym")
    if versym is None or dynsym is None:
        return []
    out = []
    for i, sym in enumerate(dynsym.iter_symbols()):
        ndx = versym.get_symbol(i)["ndx"]
        ndx = ndx & 0x7FFF if isinstance(ndx, int) else ndx  # bit 15 marks a hidden version
        if sym["st_shndx"] == "SHN_UNDEF" and ndx in index:
            out.append(VersionedSymbol(sym.name, *index[ndx]))
    return out


def defined_versions(source: Source) -> set[str]:
    """The version names a library defines (.gnu.version_d): what it can satisfy for its users."""
    with _open(source) as f:
        elf = ELFFile(f)
        verdef = next((s for s in elf.iter_sections() if isinstance(s, GNUVerDefSection)), None)
        if verdef is None:
            return set()
        return {aux.name for _, auxes in verdef.iter_versions() for aux in auxes}


def file_floor(source: Source, label: str = "") -> GlibcFloor:
    return oldest_glibc(required_versions(source), label or ("" if isinstance(source, bytes) else str(source)))


def unsatisfied_versions(required: Iterable[VersionedSymbol], library: str, defined: set[str]) -> list[str]:
    """Versions required from `library` that its copy does not define (the loader's "version `X' not found")."""
    return sorted({r.version for r in required if r.library == library and r.version not in defined})
