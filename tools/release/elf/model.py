"""A frozen, read-only model of an ELF shared object: what it is, never how it changes (that is patchelf.py).

pyelftools reads the dynamic section; we keep only what the loader uses to find libraries.
"""
from __future__ import annotations

import platform
from dataclasses import dataclass
from pathlib import Path

from elftools.common.exceptions import ELFError as _PyElfError
from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile

from ..errors import ElfError, Problem

ELF_MAGIC = b"\x7fELF"

# platform.machine() -> the e_machine pyelftools reports; wheels for this host must match it.
HOST_MACHINES = {"x86_64": "EM_X86_64", "aarch64": "EM_AARCH64", "ppc64le": "EM_PPC64", "s390x": "EM_S390",
                 "i686": "EM_386", "armv7l": "EM_ARM"}


def host_machine() -> str:
    return HOST_MACHINES.get(platform.machine(), platform.machine())


@dataclass(frozen=True)
class ElfFile:
    """What the loader needs to know about one shared object or executable."""

    path: str
    """Where it was read from (an archive path when it came from a wheel)."""
    machine: str
    """e_machine as pyelftools names it, e.g. EM_X86_64."""
    elfclass: int
    """32 or 64."""
    soname: str | None
    """DT_SONAME, if any."""
    needed: tuple[str, ...]
    """DT_NEEDED entries in order: the loader searches for them breadth first."""
    rpath: tuple[str, ...]
    """DT_RPATH entries (ignored by the loader when DT_RUNPATH is present)."""
    runpath: tuple[str, ...]
    """DT_RUNPATH entries (apply only to this object's own DT_NEEDED, not to what those load)."""

    @property
    def effective_rpath(self) -> tuple[str, ...]:
        """glibc drops DT_RPATH of an object that also has DT_RUNPATH (elf/get-dynamic-info.h)."""
        return () if self.runpath else self.rpath

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


def is_elf(path: str | Path) -> bool:
    with open(path, "rb") as f:
        return f.read(4) == ELF_MAGIC


def looks_like_shared_object(name: str) -> bool:
    """Names the loader or Python would treat as a shared library: foo.so, foo.so.1, foo.cpython-311-...so."""
    base = name.rsplit("/", 1)[-1]
    return base.endswith(".so") or ".so." in base


def _split(value: str) -> tuple[str, ...]:
    # Empty entries are kept: the loader reads one as the current directory (a hazard check must see).
    return tuple(value.split(":")) if value else ()


def read_elf(path: str | Path, label: str | None = None) -> ElfFile:
    """Read one ELF; raise ElfError naming `label` when it is not ELF or cannot be parsed."""
    label = label or str(path)
    if not is_elf(path):
        raise ElfError([Problem(label, "", "named like a shared library but is not an ELF file")])
    try:
        with open(path, "rb") as f:
            elf = ELFFile(f)
            machine, elfclass = elf["e_machine"], elf.elfclass
            tags: dict[str, list[str]] = {"DT_NEEDED": [], "DT_RPATH": [], "DT_RUNPATH": [], "DT_SONAME": []}
            for section in elf.iter_sections():
                if isinstance(section, DynamicSection):
                    for tag in section.iter_tags():
                        _collect(tag, tags)
    except (_PyElfError, ValueError, KeyError, OSError) as exc:
        raise ElfError([Problem(label, "", f"not a readable ELF file ({exc})")]) from exc
    return ElfFile(path=label, machine=str(machine), elfclass=elfclass,
                   soname=tags["DT_SONAME"][0] if tags["DT_SONAME"] else None,
                   needed=tuple(tags["DT_NEEDED"]),
                   rpath=tuple(e for v in tags["DT_RPATH"] for e in _split(v)),
                   runpath=tuple(e for v in tags["DT_RUNPATH"] for e in _split(v)))


def _collect(tag, tags: dict[str, list[str]]) -> None:
    attr = {"DT_NEEDED": "needed", "DT_RPATH": "rpath", "DT_RUNPATH": "runpath", "DT_SONAME": "soname"}
    if tag.entry.d_tag in attr:
        tags[tag.entry.d_tag].append(getattr(tag, attr[tag.entry.d_tag]))


def check_machine(elf: ElfFile, artifact: str, expected: str | None = None) -> list[Problem]:
    """A wheel for this platform may not carry objects for another CPU: the loader would refuse them."""
    expected = expected or host_machine()
    if elf.machine != expected:
        return [Problem(artifact, elf.path, f"ELF for machine {elf.machine}, expected {expected}")]
    return []
