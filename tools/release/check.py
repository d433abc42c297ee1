"""`check`: for any wheel, where every DT_NEEDED of every ELF resolves after install, per scheme and Python, and
the oldest glibc each ELF (and so the wheel) can load on, with the symbol that sets it.

The answer is the loader's (resolve.py) applied to the layout each scheme produces (layouts.py). A finding is a
`problem` (exit 1: a library would not load, or would come from the build host, or an RPATH entry is absolute or
points nowhere) or a `limitation` (a scheme that drops files the wheel needs: no RPATH can fix that, so it is
said plainly and does not fail the check).
"""
from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass, field
from typing import Sequence

from .elf import ElfFile
from .glibc import GlibcFloor, defined_versions, file_floor, newest_floor, required_versions, unsatisfied_versions
from .layouts import WHEEL_SCHEMES, InstallLayout, layouts
from .resolve import Resolution, SystemLibraries, flag_entries, resolve_tree
from .rpath import KNOWN_PROVIDERS, Provider, install_tree
from .targets import python_versions, version_key
from .wheel import Wheel, load_elfs, read_wheel



@dataclass(frozen=True)
class Finding:
    """One line of a check report."""

    file: str
    """Archive member (or installed path) concerned."""
    scheme: str
    """scheme-python, or "all" when it holds for every layout."""
    severity: str
    """problem | limitation"""
    message: str


@dataclass
class WheelReport:
    """What `check` found for one wheel."""

    wheel: str
    layouts: list[str]
    findings: list[Finding] = field(default_factory=list)
    resolutions: dict[str, list[Resolution]] = field(default_factory=dict)
    glibc: dict[str, GlibcFloor] = field(default_factory=dict)
    """Member -> the oldest glibc it loads on (glibc.py)."""

    @property
    def glibc_floor(self) -> GlibcFloor:
        """The wheel loads only where every ELF in it does."""
        return newest_floor(self.glibc.values())

    @property
    def problems(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "problem"]

    @property
    def limitations(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "limitation"]

    @property
    def ok(self) -> bool:
        return not self.problems


def wheel_pythons(wheel: Wheel, configured: Sequence[str] = ()) -> list[str]:
    """cpXY tags name their Python; py3 wheels are checked for every configured (or supported) Python, abi3
    wheels for every configured or supported one from their Limited API version on."""
    if wheel.pythons:
        return wheel.pythons
    tag = wheel.tags.split("-")[0]
    if not (tag.startswith("cp") and "abi3" in wheel.tags):
        return list(configured or python_versions())
    low = (int(tag[2]), int(tag[3:] or 0))
    candidates = sorted(set(configured) | set(python_versions()), key=version_key)
    return [v for v in candidates if version_key(v) >= low]


def wheel_providers(wheel: Wheel) -> list[Provider]:
    """Libraries the wheel's declared dependencies install (auditwheel #257/#404: RPATHs to them are legitimate)."""
    names = set()
    for req in wheel.requires_dist:
        m = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", req)
        if m and "extra ==" not in req:
            names.add(re.sub(r"[-_.]+", "-", m.group(1)).lower())  # PEP 503 normalised
    return [p for n in sorted(names) for p in KNOWN_PROVIDERS.get(n, ())]


def _layout_findings(wheel: Wheel, elfs: dict[str, ElfFile], lay: InstallLayout, system: SystemLibraries,
                     providers: Sequence[Provider]) -> tuple[list[Finding], list[Resolution], dict]:
    tree, placed = install_tree(elfs, list(wheel.members), lay, providers, wheel.dist)
    label = f"{lay.name}-{lay.python}"
    dropped = {m.rsplit("/", 1)[-1]: m for m, p in placed.items() if p is None}
    member_of = {p: m for m, p in placed.items() if p is not None}
    findings = []
    res = resolve_tree(tree, system)
    for r in res:
        who = member_of.get(r.file, r.file)
        if r.ok:
            continue
        if r.status == "missing" and r.needed in dropped:
            findings.append(Finding(dropped[r.needed], label, "limitation", f"not installed: {lay.dropped_reason}; "
                                    f"{who} cannot load it in this scheme"))
        elif r.status == "missing":
            findings.append(Finding(who, label, "problem", f"needs {r.needed}, not found after install "
                                                           f"(installed as {r.file}; {r.via})"))
        else:
            findings.append(Finding(who, label, "problem", f"needs {r.needed}, found only on the build host at "
                                                           f"{r.found} ({r.via})"))
    flags = {p: flag_entries(p, o, tree) for p, o in tree.objects.items()}
    by_member = {placed[m]: m for m in elfs if placed.get(m)}
    return findings, res, {by_member[p]: fl for p, fl in flags.items()}


def analyze(wheel: Wheel, elfs: dict[str, ElfFile], schemes: Sequence[str] = WHEEL_SCHEMES,
            pythons: Sequence[str] = (), system: SystemLibraries | None = None,
            providers: Sequence[Provider] | None = None) -> WheelReport:
    """The check report of an opened wheel (pure apart from the host library table)."""
    system = system or SystemLibraries.from_host()
    providers = wheel_providers(wheel) if providers is None else providers
    lays = layouts(list(schemes), wheel_pythons(wheel, pythons))
    report = WheelReport(wheel.filename, [f"{l.name}-{l.python}" for l in lays])
    dead: dict[tuple[str, str], int] = {}
    installed: dict[str, int] = {}
    for lay in lays:
        findings, res, flags = _layout_findings(wheel, elfs, lay, system, providers)
        report.findings += findings
        report.resolutions[f"{lay.name}-{lay.python}"] = res
        for member, fl in flags.items():
            installed[member] = installed.get(member, 0) + 1
            for f in fl:
                if f.kind == "dead":
                    dead[(member, f.entry)] = dead.get((member, f.entry), 0) + 1
                else:
                    report.findings.append(Finding(member, "all", "problem", f.message))
    for (member, entry), n in sorted(dead.items()):
        if n == installed[member]:  # dead in every layout: for one scheme only would be the union's nature
            report.findings.append(Finding(member, "all", "problem",
                                           f"entry {entry!r} points to no directory of the install in any scheme"))
    report.glibc, version_findings = glibc_facts(wheel, elfs)
    report.findings = _dedupe(report.findings + version_findings)
    return report


def glibc_facts(wheel: Wheel, elfs: dict[str, ElfFile]) -> tuple[dict[str, GlibcFloor], list[Finding]]:
    """Each ELF's glibc floor, and a problem for every symbol version a library shipped in the wheel does not
    define (the loader refuses the import with "version `X' not found", whatever the glibc)."""
    floors, findings = {}, []
    shipped = {(e.soname or e.name): m for m, e in elfs.items()}
    for member in elfs:
        required = required_versions(wheel.members[member].data)
        floors[member] = file_floor(wheel.members[member].data, member)
        for library in sorted({r.library for r in required if r.library in shipped}):
            defined = defined_versions(wheel.members[shipped[library]].data)
            for v in unsatisfied_versions(required, library, defined):
                findings.append(Finding(member, "all", "problem", f"needs version {v} of {library}, which the "
                                        f"wheel's copy ({shipped[library]}) does not define"))
    return floors, findings


def _dedupe(findings: list[Finding]) -> list[Finding]:
    """One finding per (file, severity, message), naming every scheme it holds for."""
    merged: dict[tuple[str, str, str], list[str]] = {}
    for f in findings:
        merged.setdefault((f.file, f.severity, f.message), []).append(f.scheme)
    return [Finding(file, ", ".join(dict.fromkeys(schemes)), sev, msg) for (file, sev, msg), schemes in merged.items()]


def open_wheel(path: str) -> tuple[Wheel, dict[str, ElfFile]]:
    """Read and validate a wheel and its ELF files (BadInputError on anything malformed)."""
    wheel = read_wheel(path)
    with tempfile.TemporaryDirectory(prefix="cyfes-check-") as tmp:
        return wheel, load_elfs(wheel, tmp)


__all__ = ["Finding", "WheelReport", "analyze", "glibc_facts", "open_wheel", "wheel_pythons", "wheel_providers"]
