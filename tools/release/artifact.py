"""The common face of a wheel and a .conda: its members, its ELF files, and the places it installs to.

A wheel installs through install schemes (layouts.py: venv, user, Debian, --prefix, --target, per Python); a .conda
installs into one `$PREFIX`, its member paths already relative to it. `check` and `verify` take either through
`open_artifact` and ask only what is here.
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Sequence

from .archive import Member
from .conda.archive import read_conda
from .conda.info import PackageIndex, python_of, read_package_info
from .conda.linking import Link, check_links, dependency_names
from .conda.linking import providers as conda_providers_of
from .elf.loader import SystemLibraries
from .elf.model import ELF_MAGIC, ElfFile, check_machine, read_elf
from .errors import BadInputError, ElfError, Problem, raise_if_any
from .layouts import WHEEL_SCHEMES, InstallLayout, installed_path, layout, layouts
from .providers import Provider
from .wheel.archive import Wheel, load_elfs, read_wheel
from .wheel.declared import wheel_providers, wheel_pythons


@dataclass(frozen=True)
class Artifact:
    """What every artifact has; `WheelArtifact` and `CondaArtifact` say how they install."""

    kind: ClassVar[str]
    """"wheel" or "conda"."""
    path: Path
    elfs: dict[str, ElfFile] = field(hash=False)
    """Member -> ELF model, for every shared object or executable the artifact carries."""

    @property
    def filename(self) -> str:
        return self.path.name

    def data(self, member: str) -> bytes:
        raise NotImplementedError

    @property
    def members(self) -> list[str]:
        raise NotImplementedError

    @property
    def dist(self) -> str:
        raise NotImplementedError

    def install_layouts(self, schemes: Sequence[str] = WHEEL_SCHEMES, pythons: Sequence[str] = ()) -> list[InstallLayout]:
        """The places it installs to."""
        raise NotImplementedError

    def place(self, lay: InstallLayout, member: str) -> str | None:
        """Where `member` lands under `lay`'s root (None: the scheme does not install it)."""
        raise NotImplementedError

    def providers(self) -> list[Provider]:
        """Libraries its declared dependencies install (RPATH entries to them are legitimate)."""
        raise NotImplementedError

    def system(self) -> SystemLibraries:
        """What the target system may provide, and what this host has (a library found only here is a problem)."""
        raise NotImplementedError

    def link_findings(self) -> list[Problem]:
        """Problems of its declared dependencies (a .conda must declare what provides each library)."""
        return []


@dataclass(frozen=True)
class WheelArtifact(Artifact):
    """A wheel: it installs through install schemes, per Python."""

    kind: ClassVar[str] = "wheel"
    wheel: Wheel = field(hash=False)

    @property
    def members(self) -> list[str]:
        return list(self.wheel.members)

    def data(self, member: str) -> bytes:
        return self.wheel.members[member].data

    @property
    def dist(self) -> str:
        return self.wheel.dist

    def install_layouts(self, schemes: Sequence[str] = WHEEL_SCHEMES, pythons: Sequence[str] = ()) -> list[InstallLayout]:
        return layouts(list(schemes), wheel_pythons(self.wheel, pythons))

    def place(self, lay: InstallLayout, member: str) -> str | None:
        return installed_path(lay, member, self.wheel.dist).path

    def providers(self) -> list[Provider]:
        return wheel_providers(self.wheel)

    def system(self) -> SystemLibraries:
        return SystemLibraries.from_host()


@dataclass(frozen=True)
class CondaArtifact(Artifact):
    """A .conda: it installs into one $PREFIX."""

    kind: ClassVar[str] = "conda"
    entries: dict[str, Member] = field(hash=False)
    index: PackageIndex = field(hash=False)

    @property
    def members(self) -> list[str]:
        return [n for n in self.entries if not n.startswith("info/")]

    def data(self, member: str) -> bytes:
        return self.entries[member].data

    @property
    def dist(self) -> str:
        return self.index.name

    @property
    def python(self) -> str:
        """The Python "X.Y" it is built for, or "" for a package that depends on no particular Python."""
        try:
            return python_of(self.filename, self.index)
        except BadInputError:
            return ""

    def install_layouts(self, schemes: Sequence[str] = (), pythons: Sequence[str] = ()) -> list[InstallLayout]:
        return [layout("conda", self.python)]

    def place(self, lay: InstallLayout, member: str) -> str | None:
        return member  # a .conda's paths are relative to $PREFIX by the format's definition

    def providers(self) -> list[Provider]:
        """Every needed library a declared dependency provides lands in $PREFIX/lib."""
        declared = dependency_names(list(self.index.depends))
        needed = sorted({n for e in self.elfs.values() for n in e.needed})
        return [Provider(n, "{libdir}", name) for n in needed
                for name in [next((p for p in conda_providers_of(n) if p in declared), None)] if name]

    def system(self) -> SystemLibraries:
        return SystemLibraries.from_host(policy_libs=())  # glibc and the driver only; the rest must be declared

    def links(self) -> list[Link]:
        return check_links(list(self.elfs.values()), set(self.members), list(self.index.depends))

    def link_findings(self) -> list[Problem]:
        return [Problem(self.filename, link.file, f"needs {link.needed}: {link.detail}") for link in self.links()
                if link.kind == "missing"]


def conda_elfs(label: str, entries: dict[str, Member], work: Path) -> dict[str, ElfFile]:
    """Every ELF of a .conda's payload (found by its magic: executables count too), modelled from a copy on disk."""
    out, problems = {}, []
    for name, e in sorted(entries.items()):
        if name.startswith("info/") or e.link is not None or e.blob.size < 4 or e.data[:4] != ELF_MAGIC:
            continue
        f = work / name
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(e.data)
        try:
            out[name] = read_elf(f, label=name)
        except ElfError as exc:
            problems += [Problem(label, name, p.message) if isinstance(p, Problem) else p for p in exc.problems]
            continue
        problems += check_machine(out[name], label)
    raise_if_any(problems, ElfError)
    return out


def open_wheel(path: str | Path) -> WheelArtifact:
    """Read and validate a wheel and its ELF files (BadInputError on anything malformed)."""
    wheel = read_wheel(path)
    with tempfile.TemporaryDirectory(prefix="cyfes-check-") as tmp:
        return WheelArtifact(Path(path), load_elfs(wheel, tmp), wheel)


def open_conda(path: str | Path) -> CondaArtifact:
    """Read and validate a .conda (archive, index.json, paths.json) and its ELF files."""
    path = Path(path)
    entries = read_conda(path)
    index = read_package_info(path.name, entries)
    with tempfile.TemporaryDirectory(prefix="cyfes-check-") as tmp:
        elfs = conda_elfs(path.name, entries, Path(tmp))
    return CondaArtifact(path, elfs, entries, index)


def open_artifact(path: str | Path) -> Artifact:
    """A .conda by its name, else a wheel (whose reader names what is wrong with anything else)."""
    return open_conda(path) if str(path).endswith(".conda") else open_wheel(path)
