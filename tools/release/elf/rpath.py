"""Plan the RPATH of every ELF so its libraries resolve in every given install layout.

One rule, stated once (the rattler-build habit): for each file and each layout, compute where the file and each
library it needs will be after install, and add the `$ORIGIN`-relative entry between them; keep an existing entry
only when it is `$ORIGIN`-relative and points inside the install in some layout; drop absolute, build-tree and
cwd-relative entries. Entries of all layouts are unioned in a stable order (needs in DT_NEEDED order, layouts in
the order given), so one file works under venv, user, Debian, --prefix (and conda) at once.

This also restores entries auditwheel dropped because they point outside the wheel (auditwheel #257, #404): a
library provided by a declared dependency (NVIDIA's nvidia-cuda-runtime wheel, conda's $PREFIX/lib) is a
`Provider` (providers.py), located per layout like any file of the install.
"""
from __future__ import annotations

import fnmatch
import posixpath
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

from ..layouts import InstallLayout, installed_path
from ..providers import Provider
from .loader import Tree, expand
from .model import ElfFile


@dataclass(frozen=True)
class RpathDecision:
    """One line of the plan's log."""

    file: str
    entry: str
    action: str
    """kept | added | dropped"""
    reason: str

    def __str__(self) -> str:
        return f"{self.file}: {self.action} {self.entry!r}: {self.reason}"


@dataclass(frozen=True)
class RpathPlan:
    """The RPATH one file should carry, with the reasons."""

    file: str
    old_rpath: tuple[str, ...]
    old_runpath: tuple[str, ...]
    new_rpath: tuple[str, ...]
    decisions: tuple[RpathDecision, ...]

    @property
    def changed(self) -> bool:
        """Whether patchelf.py must touch the file; a RUNPATH is always turned into an RPATH (see patchelf.py)."""
        return bool(self.old_runpath) or self.new_rpath != self.old_rpath


def install_tree(files: Mapping[str, ElfFile], members: Sequence[str], lay: InstallLayout,
                 providers: Sequence[Provider] = (), dist: str = "",
                 place: Callable[[InstallLayout, str], str | None] | None = None) -> tuple[Tree, dict[str, str | None]]:
    """The Tree of an artifact in `lay`, and member -> installed path (None: the scheme drops it). `place` says
    where a member lands (default: a wheel member's place, layouts.installed_path)."""
    place = place or (lambda lay_, m: installed_path(lay_, m, dist).path)
    placed = {m: place(lay, m) for m in members}
    objects = {p: files[m] for m, p in placed.items() if p is not None and m in files}
    provided = {}
    for prov in providers:
        d = prov.directory(lay)
        if d is not None and "*" not in prov.soname:
            provided[posixpath.join(d, prov.soname)] = prov.package
    all_files = frozenset(p for p in placed.values() if p is not None) | frozenset(provided)
    return Tree(objects, all_files, provided), placed


def _locate(need: str, tree: Tree, providers: Sequence[Provider], lay: InstallLayout) -> str | None:
    """Directory of `need` in the install: a file of the tree, else a provider's directory."""
    hits = sorted(p for p in tree.files if posixpath.basename(p) == need)
    hits += sorted(p for p, o in tree.objects.items() if o.soname == need and p not in hits)
    if hits:
        return posixpath.dirname(hits[0])
    for prov in providers:
        if fnmatch.fnmatchcase(need, prov.soname):
            return prov.directory(lay)
    return None


def origin_entry(from_dir: str, to_dir: str) -> str:
    rel = posixpath.relpath(to_dir or ".", from_dir or ".")
    return "$ORIGIN" if rel == "." else f"$ORIGIN/{rel}"


def _needed_entries(member: str, elf: ElfFile, trees, providers) -> dict[str, str]:
    """entry -> reason, in DT_NEEDED order then layout order."""
    out: dict[str, str] = {}
    for need in elf.needed:
        for lay, (tree, placed) in trees:
            here = placed.get(member)
            where = _locate(need, tree, providers, lay) if here is not None else None
            if where is not None:
                entry = origin_entry(posixpath.dirname(here), where)
                out.setdefault(entry, f"finds {need} in {lay.name} (Python {lay.python}) at {where}")
    return out


def _judge_old(entry: str, member: str, trees) -> tuple[bool, str]:
    """Keep an old entry that is not needed for a DT_NEEDED only when it points inside the install somewhere."""
    if entry.startswith("/"):
        return False, "absolute path: it names a directory of the build machine, not of the install"
    inside = []
    for lay, (tree, placed) in trees:
        here = placed.get(member)
        d = expand(entry, posixpath.dirname(here)) if here is not None else None
        if d is None and here is not None:
            return False, "relative to the working directory (or $LIB/$PLATFORM): not reliable"
        if d is not None and d in tree.dirs:
            inside.append(f"{lay.name}-{lay.python}")
    if inside:
        return True, f"points inside the install ({', '.join(sorted(set(inside)))}); kept for libraries opened at run time"
    return False, "points to no directory of the install in any scheme"


def plan_file(member: str, elf: ElfFile, trees, providers: Sequence[Provider] = ()) -> RpathPlan:
    """The plan for one file given (layout, (tree, placements)) pairs."""
    needed = _needed_entries(member, elf, trees, providers)
    old = elf.rpath + elf.runpath
    decisions = [RpathDecision(member, e, "kept" if e in old else "added", r) for e, r in needed.items()]
    extra = []
    for e in dict.fromkeys(old):
        if e in needed:
            continue
        keep, why = _judge_old(e, member, trees)
        decisions.append(RpathDecision(member, e, "kept" if keep else "dropped", why))
        if keep:
            extra.append(e)
    new = tuple(needed) + tuple(extra)
    if set(new) == set(elf.rpath) and len(new) == len(elf.rpath):
        new = elf.rpath  # already right: keep the existing order so an unchanged wheel stays byte-identical
    return RpathPlan(member, elf.rpath, elf.runpath, new, tuple(decisions))


def plan_rpath(files: Mapping[str, ElfFile], layouts: Sequence[InstallLayout], members: Sequence[str] | None = None,
               providers: Sequence[Provider] = (), dist: str = "") -> dict[str, RpathPlan]:
    """Per ELF member (archive path, wheel-style), the RPATH that resolves its libraries in ALL `layouts`.

    `members` lists every file of the artifact (ELF or not) so that data files count as existing directories;
    it defaults to the ELF members. Files a layout does not install are planned from the other layouts.
    """
    members = list(members if members is not None else files)
    trees = [(lay, install_tree(files, members, lay, providers, dist)) for lay in layouts]
    return {m: plan_file(m, files[m], trees, providers) for m in sorted(files)}
