"""`check`: where every DT_NEEDED of every ELF of a wheel or .conda resolves once installed, and its glibc floor.

For any artifact (artifact.py), in each place it installs to (a wheel's schemes per Python, a .conda's $PREFIX), and
the oldest glibc each ELF (and so the artifact) can load on, with the symbol that sets it. Nothing is installed:
this is the loader's rules (elf/loader.py) applied to the paths the layouts give (layouts.py).

A finding is a `problem` (exit 1: a library would not load, or would come from outside the install, or an RPATH
entry is absolute or points nowhere, or a .conda does not declare what provides a library) or a `limitation` (a
scheme that drops files the wheel needs: no RPATH can fix that, so it is said plainly and does not fail the check).
"""
from __future__ import annotations

import fnmatch
import posixpath
from dataclasses import dataclass, field, replace
from typing import Sequence

from .artifact import Artifact
from .elf.glibc import GlibcFloor, defined_versions, file_floor, newest_floor, required_versions, unsatisfied_versions
from .elf.loader import Resolution, SystemLibraries, flag_entries, resolve_tree
from .elf.rpath import install_tree
from .layouts import WHEEL_SCHEMES, InstallLayout
from .providers import Provider


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


@dataclass(frozen=True)
class LibraryLine:
    """Where one DT_NEEDED of one ELF resolves once installed, over every layout checked."""

    file: str
    """The ELF's member name."""
    needed: str
    status: str
    """The loader's answer (elf.loader.Resolution.status, or preloaded: a declared dependency installs it but no
    RPATH entry reaches it): the first failing one over the layouts, else the first."""
    found: str
    """Where it was found, relative to the install's root (tree, provided) or on this host (system, host-only)."""
    via: str
    """The search rule that found it, or why nothing did."""
    resolved: str
    """"k/n": in how many of the layouts checked it resolves."""
    provider: str = ""
    """For status provided or preloaded: "<distribution> at <directory>" (the first layout's directory)."""


@dataclass
class CheckReport:
    """What `check` found for one wheel or .conda."""

    artifact: str
    kind: str
    """"wheel" or "conda"."""
    layouts: list[str]
    findings: list[Finding] = field(default_factory=list)
    resolutions: dict[str, list[Resolution]] = field(default_factory=dict)
    glibc: dict[str, GlibcFloor] = field(default_factory=dict)
    """Member -> the oldest glibc it loads on (glibc.py)."""
    libraries: list[LibraryLine] = field(default_factory=list)
    """Every (ELF, DT_NEEDED): where it resolves, over all layouts."""

    @property
    def glibc_floor(self) -> GlibcFloor:
        """The artifact loads only where every ELF in it does."""
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


def _layout_findings(artifact: Artifact, lay: InstallLayout, system: SystemLibraries,
                     providers: Sequence[Provider]) -> tuple[list[Finding], list[Resolution], dict, dict[str, str]]:
    tree, placed = install_tree(artifact.elfs, artifact.members, lay, providers, artifact.dist, artifact.place)
    label = lay.label
    dropped = {m.rsplit("/", 1)[-1]: m for m, p in placed.items() if p is None}
    member_of = {p: m for m, p in placed.items() if p is not None}
    findings = []
    res = [_preloaded(r, lay, providers) for r in resolve_tree(tree, system)]
    for r in res:
        who = member_of.get(r.file, r.file)
        if r.ok and not (r.status == "provided" and lay.name in SHARED_SITE_SCHEMES):
            continue
        if r.status == "preloaded":
            findings.append(Finding(who, label, "problem", f"needs {r.needed}, {r.via}"))
            continue
        if r.status == "provided" and lay.name in SHARED_SITE_SCHEMES:
            findings.append(Finding(who, label, "limitation", _elsewhere(r)))
        elif r.status == "missing" and r.needed in dropped:
            findings.append(Finding(dropped[r.needed], label, "limitation", f"not installed: {lay.dropped_reason}; "
                                    f"{who} cannot load it in this scheme"))
        elif r.status == "missing":
            findings.append(Finding(who, label, "problem", f"needs {r.needed}, not found after install "
                                                           f"(installed as {r.file}; {r.via})"))
        else:
            findings.append(Finding(who, label, "problem", f"needs {r.needed}, found only on the build host at "
                                                           f"{r.found} ({r.via})"))
    flags = {p: flag_entries(p, o, tree) for p, o in tree.objects.items()}
    by_member = {placed[m]: m for m in artifact.elfs if placed.get(m)}
    return findings, res, {by_member[p]: fl for p, fl in flags.items()}, member_of


# Schemes whose site-packages sits beside another one the interpreter also reads: `pip install --user` (the
# system's or a --system-site-packages venv's site-packages). A provider already installed there is not installed
# again next to the package, and an $ORIGIN-relative entry cannot reach a directory whose place is not fixed
# relative to the package (the case auditwheel's maintainers warn of, pypa/auditwheel #552).
SHARED_SITE_SCHEMES = ("user",)


def _elsewhere(r: Resolution) -> str:
    dist = r.via.rsplit(", from ", 1)[-1]
    return (f"needs {r.needed} from {dist}: resolves only when pip installs {dist} into this same site-packages; "
            f"if {dist} is already installed in the site-packages below it (the system's, or a venv's with "
            f"--system-site-packages), pip skips it and {r.needed} loads only if preloaded")


def _preloaded(r: Resolution, lay: InstallLayout, providers: Sequence[Provider]) -> Resolution:
    """A library a declared dependency installs but no RPATH reaches loads only if Python code opened it first
    (NVIDIA's and RAPIDS' packages preload so): say so instead of "not found"."""
    if r.ok:
        return r
    for prov in providers:
        d = prov.directory(lay)
        if d is not None and fnmatch.fnmatchcase(r.needed, prov.soname):
            return replace(r, status="preloaded", found=posixpath.join(d, r.needed),
                           via=f"provided by {prov.package} at {d} only if preloaded: no RPATH entry reaches it "
                               "(fix adds one)")
    return r


def _provider_text(r: Resolution) -> str:
    if r.status == "provided":  # the loader's rule ends ", from <package>" (elf/loader.py)
        return f"{r.via.rsplit(', from ', 1)[-1]} at {posixpath.dirname(r.found or '')}"
    if r.status == "preloaded":
        return r.via.split("provided by ", 1)[1].split(" only if preloaded")[0]
    return ""


def library_lines(per_layout: list[tuple[list[Resolution], dict[str, str]]]) -> list[LibraryLine]:
    """One line per (ELF member, DT_NEEDED) over the layouts: the first failure, else the first answer."""
    hits: dict[tuple[str, str], list[Resolution]] = {}
    for res, member_of in per_layout:
        for r in res:
            hits.setdefault((member_of.get(r.file, r.file), r.needed), []).append(r)
    lines = []
    for (member, needed), rs in hits.items():
        bad = [r for r in rs if not r.ok]
        r = (bad or rs)[0]
        lines.append(LibraryLine(member, needed, r.status, r.found or "-", r.via, f"{len(rs) - len(bad)}/{len(rs)}",
                                 _provider_text(r)))
    return sorted(lines, key=lambda line: (line.file, line.needed))


def analyze(artifact: Artifact, schemes: Sequence[str] = WHEEL_SCHEMES, pythons: Sequence[str] = (),
            system: SystemLibraries | None = None, providers: Sequence[Provider] | None = None) -> CheckReport:
    """The check report of an opened artifact (pure apart from the host library table). `schemes` and `pythons`
    choose a wheel's layouts; a .conda has one, its prefix."""
    system = system or artifact.system()
    providers = artifact.providers() if providers is None else providers
    lays = artifact.install_layouts(schemes, pythons)
    report = CheckReport(artifact.filename, artifact.kind, [lay.label for lay in lays])
    dead: dict[tuple[str, str], int] = {}
    installed: dict[str, int] = {}
    per_layout = []
    for lay in lays:
        findings, res, flags, member_of = _layout_findings(artifact, lay, system, providers)
        report.findings += findings
        report.resolutions[lay.label] = res
        per_layout.append((res, member_of))
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
    report.libraries = library_lines(per_layout)
    report.findings += [Finding(p.file, "all", "problem", p.message) for p in artifact.link_findings()]
    report.glibc, version_findings = glibc_facts(artifact)
    report.findings = _dedupe(report.findings + version_findings)
    return report


def glibc_facts(artifact: Artifact) -> tuple[dict[str, GlibcFloor], list[Finding]]:
    """Each ELF's glibc floor, and a problem for every symbol version a library shipped in the artifact does not
    define (the loader refuses the import with "version `X' not found", whatever the glibc)."""
    floors, findings = {}, []
    shipped = {(e.soname or e.name): m for m, e in artifact.elfs.items()}
    for member in artifact.elfs:
        data = artifact.data(member)
        required = required_versions(data)
        floors[member] = file_floor(data, member)
        for library in sorted({r.library for r in required if r.library in shipped}):
            defined = defined_versions(artifact.data(shipped[library]))
            for v in unsatisfied_versions(required, library, defined):
                findings.append(Finding(member, "all", "problem", f"needs version {v} of {library}, which the "
                                        f"{artifact.kind}'s copy ({shipped[library]}) does not define"))
    return floors, findings


def _dedupe(findings: list[Finding]) -> list[Finding]:
    """One finding per (file, severity, message), naming every scheme it holds for."""
    merged: dict[tuple[str, str, str], list[str]] = {}
    for f in findings:
        merged.setdefault((f.file, f.severity, f.message), []).append(f.scheme)
    return [Finding(file, ", ".join(dict.fromkeys(schemes)), sev, msg) for (file, sev, msg), schemes in merged.items()]
