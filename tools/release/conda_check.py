"""`check PKG.conda`: the linking check and the loader's answer for any linux-64 conda package, ours or anyone's.

Two questions per DT_NEEDED of every ELF in the package: is it declared (linkcheck: in the package, a depends
entry that provides it, or a system library), and where does the loader find it once installed in a prefix
(resolve.resolve_tree on the prefix layout, with what the declared dependencies put into $PREFIX/lib)?
The answers come back as check.py's report so the CLI prints conda and wheel reports alike.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from .check import Finding, WheelReport
from .conda_archive import read_conda
from .conda_info import read_package_info
from .elf import ELF_MAGIC, ElfFile, read_elf
from .linkcheck import SYSTEM_LIBRARIES, check_links, dependency_names, providers
from .resolve import SystemLibraries, Tree, resolve_tree


def package_elves(entries: dict, work: Path) -> dict[str, ElfFile]:
    """Every ELF of the payload, modelled from a copy on disk, labelled with its prefix-relative path."""
    out = {}
    for name, e in entries.items():
        if not name.startswith("info/") and e.link_target is None and e.data[:4] == ELF_MAGIC:
            f = work / name
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_bytes(e.data)
            out[name] = read_elf(f, label=name)
    return out


def provided_in_libdir(elves: dict[str, ElfFile], depends: list[str]) -> dict[str, str]:
    """lib/<soname> -> dependency, for every needed library a declared dependency provides."""
    declared = dependency_names(depends)
    out = {}
    for elf in elves.values():
        for need in elf.needed:
            names = [n for n in providers(need) if n in declared]
            if names:
                out[f"lib/{need}"] = names[0]
    return out


def check_conda(path: str | Path) -> WheelReport:
    path = Path(path)
    entries = read_conda(path)
    depends = list(read_package_info(path.name, entries).depends)
    with tempfile.TemporaryDirectory(prefix="cyfes-conda-check-") as tmp:
        elves = package_elves(entries, Path(tmp))
    files = {n for n in entries if not n.startswith("info/")}
    report = WheelReport(path.name, ["conda"])
    for link in check_links(list(elves.values()), files, depends):
        if link.kind == "missing":
            report.findings.append(Finding(link.file, "conda", "problem", f"needs {link.needed}: {link.detail}"))
    provided = provided_in_libdir(elves, depends)
    tree = Tree(elves, frozenset(files | set(provided)), provided)
    report.resolutions["conda"] = resolve_tree(tree, SystemLibraries(frozenset(SYSTEM_LIBRARIES)))
    for r in report.resolutions["conda"]:
        if not r.ok:
            report.findings.append(Finding(r.file, "conda", "problem", f"{r.needed}: {r.status} ({r.via})"))
    for name, elf in elves.items():
        bad = [e for e in elf.rpath + elf.runpath if not e.startswith(("$ORIGIN", "${ORIGIN}"))]
        if bad:
            report.findings.append(Finding(name, "conda", "problem", f"RPATH entries not relative to $ORIGIN: {bad}"))
    return report
