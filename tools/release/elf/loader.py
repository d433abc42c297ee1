"""The dynamic loader's search rules as a pure function (glibc ld.so(8), elf/dl-load.c).

For an object O that needs N the loader tries, in order:
  1. if O has no DT_RUNPATH: the DT_RPATH of O, then of the object that loaded O, and so on up the chain
     (an ancestor's DT_RPATH counts only if that ancestor has no DT_RUNPATH);
  2. LD_LIBRARY_PATH;
  3. DT_RUNPATH of O itself - never of its ancestors, so RUNPATH does not help transitive loads;
  4. ld.so.cache and the default system directories.
A library whose SONAME is already loaded is reused. `$ORIGIN` is the directory of the object whose entry it is.

Everything here works on paths relative to one install root (layouts.py) plus a table of what the host has;
nothing is read from disk except through `SystemLibraries.from_host`.
"""
from __future__ import annotations

import importlib.util
import json
import os
import posixpath
import re
import subprocess
from dataclasses import dataclass, field

from ..errors import ToolError
from .model import ElfFile

# What every target system provides, for wheels and conda packages alike: glibc's own libraries (their version is
# the glibc floor's business, glibc.py) and the NVIDIA driver's libcuda, which comes with the GPU's kernel module,
# never with a package (conda-build whitelists it the same way).
SYSTEM_LIBRARIES = frozenset({
    "libc.so.6", "libm.so.6", "libdl.so.2", "libpthread.so.0", "librt.so.1", "libutil.so.1", "libresolv.so.2",
    "libmvec.so.1", "ld-linux-x86-64.so.2", "linux-vdso.so.1", "libcuda.so.1",
})
# A wheel may assume more: the manylinux policy's list (auditwheel's), and libcrypt.so.1, which every manylinux
# base image has (glibc shipped it until 2.38).
WHEEL_EXTRA_SYSTEM_LIBRARIES = ("libcrypt.so.1",)
DEFAULT_DIRS = ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib")
# Absolute entries that contain these look like a build machine's scratch space rather than an install location.
BUILD_TREE_MARKERS = ("/build/", "/tmp/", "/_skbuild/", "/home/", "/root/", "/work/", "/conda-bld/")


@dataclass(frozen=True)
class SystemLibraries:
    """What the target system is allowed to provide, and what this build host happens to have."""

    allowlist: frozenset[str]
    """SONAMEs every target system provides (the manylinux policy's list, the CUDA driver)."""
    host: dict[str, str] = field(default_factory=dict, hash=False)
    """SONAME -> path on the build host (ld.so.cache): a library found only here is a problem."""

    @classmethod
    def from_host(cls, policy_libs: tuple[str, ...] | None = None) -> "SystemLibraries":
        """A wheel's view (policy_libs None: the manylinux policy); policy_libs=() is a conda package's: glibc and
        the driver only, everything else must come from the prefix."""
        libs = manylinux_allowlist() + WHEEL_EXTRA_SYSTEM_LIBRARIES if policy_libs is None else policy_libs
        return cls(SYSTEM_LIBRARIES | frozenset(libs), host_libraries())


def manylinux_allowlist() -> tuple[str, ...]:
    """Union of auditwheel's manylinux policies' lib_whitelist (what PEP 600 lets a wheel assume)."""
    # found, not imported: importing auditwheel.policy costs ~65 ms, and only its data file is needed
    spec = importlib.util.find_spec("auditwheel")
    if spec is None or spec.origin is None:
        raise ToolError(["auditwheel is not installed (a dependency of cyfes-release): pip install auditwheel"])
    path = os.path.join(os.path.dirname(spec.origin), "policy", "manylinux-policy.json")
    with open(path, encoding="utf-8") as f:
        policies = json.load(f)
    return tuple(sorted({lib for p in policies for lib in p.get("lib_whitelist", [])}))


def host_libraries() -> dict[str, str]:
    """SONAME -> path from `ldconfig -p` (the cache the loader uses), plus the default directories."""
    found: dict[str, str] = {}
    try:
        out = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, check=False).stdout
    except OSError:
        out = ""
    for m in re.finditer(r"^\s*(\S+) \(([^)]*)\) => (\S+)$", out, re.M):
        if "x86-64" in m.group(2) or "64bit" in m.group(2):
            found.setdefault(m.group(1), m.group(3))
    for d in DEFAULT_DIRS:
        if os.path.isdir(d):
            for name in os.listdir(d):
                if ".so" in name:
                    found.setdefault(name, os.path.join(d, name))
    return found


@dataclass(frozen=True)
class Tree:
    """The installed files of one artifact in one layout, paths relative to the layout root."""

    objects: dict[str, ElfFile] = field(hash=False)
    """Installed path -> ELF model, for every ELF the artifact installs."""
    files: frozenset[str] = frozenset()
    """Every installed path (ELF or not), plus libraries provided by declared dependencies."""
    provided: dict[str, str] = field(default_factory=dict, hash=False)
    """Installed path -> the dependency that provides it (e.g. nvidia-cuda-runtime, conda's cuda-cudart)."""

    @property
    def dirs(self) -> frozenset[str]:
        out = {"."}
        for f in self.files:
            d = posixpath.dirname(f)
            while d and d not in out:
                out.add(d)
                d = posixpath.dirname(d)
        return frozenset(out)


@dataclass(frozen=True)
class Resolution:
    """Where one DT_NEEDED of one object resolves, and why."""

    file: str
    """Installed path of the object that needs the library."""
    needed: str
    status: str
    """tree | provided | system | host-only | missing"""
    found: str | None
    """Installed path (tree, provided), host path (system, host-only) or None."""
    via: str
    """The rule that found it, e.g. "DT_RPATH $ORIGIN/../x.libs of ...", "ld.so.cache"."""
    root: str
    """The object whose loading started the chain (an extension module, usually)."""

    @property
    def ok(self) -> bool:
        return self.status in ("tree", "provided", "system")


def expand(entry: str, origin: str) -> str | None:
    """An RPATH entry as a root-relative path ('..' prefix = outside the root), an absolute path, or None."""
    e = entry.replace("${ORIGIN}", "$ORIGIN")
    # glibc (dl-load.c, is_dst) reads $ORIGIN as a token only before a non-identifier character: "$ORIGINAL" is a
    # literal, cwd-relative name. "$ORIGIN.x" (the origin's sibling "<dir>.x") is left to the cwd case too: rare,
    # and its root-relative form is not this path arithmetic's.
    if e == "$ORIGIN" or e.startswith("$ORIGIN/"):
        return posixpath.normpath(posixpath.join(origin, "." + e[len("$ORIGIN"):]))
    if e.startswith("/"):
        return posixpath.normpath(e)
    return None  # relative to the process's cwd, or $LIB/$PLATFORM: never something we can rely on


def _search_dirs(obj_path: str, chain: tuple[str, ...], tree: Tree, ld_library_path: tuple[str, ...]):
    """Yield (directory, rule) in the loader's order for a need of chain[-1]."""
    obj = tree.objects[obj_path]
    if not obj.runpath:
        for anc in reversed(chain):
            for e in tree.objects[anc].effective_rpath:
                yield expand(e, posixpath.dirname(anc)), f"DT_RPATH {e} of {anc}"
    for d in ld_library_path:
        yield d, "LD_LIBRARY_PATH"
    for e in obj.runpath:
        yield expand(e, posixpath.dirname(obj_path)), f"DT_RUNPATH {e}"


def _find(need: str, obj_path: str, chain, tree: Tree, system: SystemLibraries, ldp) -> tuple[str, str | None, str]:
    for d, rule in _search_dirs(obj_path, chain, tree, ldp):
        if d is None:
            continue
        cand = posixpath.join(d, need)
        if d.startswith("/"):
            if os.path.exists(cand):
                return "host-only", cand, f"{rule} (absolute: exists on the build host only)"
        elif cand in tree.provided:
            return "provided", cand, f"{rule}, from {tree.provided[cand]}"
        elif cand in tree.files:
            return "tree", cand, rule
    if need in system.allowlist:
        return "system", system.host.get(need), "system library (allowed by the manylinux policy)"
    if need in system.host:
        return "host-only", system.host[need], "ld.so.cache of the build host only; not part of the install"
    return "missing", None, "not found in any search path"


def roots(tree: Tree) -> list[str]:
    """Objects nothing in the tree needs: what Python (or a user's dlopen) loads first."""
    needed = {n for o in tree.objects.values() for n in o.needed}
    tops = [p for p, o in sorted(tree.objects.items())
            if posixpath.basename(p) not in needed and (o.soname or "") not in needed]
    return tops or sorted(tree.objects)


def resolve_tree(tree: Tree, system: SystemLibraries, ld_library_path: tuple[str, ...] = ()) -> list[Resolution]:
    """Every DT_NEEDED of every object, following each root's loading chain breadth first, as ld.so does."""
    out: list[Resolution] = []
    seen: set[tuple[str, str]] = set()
    visited: set[str] = set()
    pending = roots(tree)
    # Objects no root reaches (their parent failed to resolve) are checked as if dlopen()ed directly.
    pending += [p for p in sorted(tree.objects) if p not in pending]
    for root in pending:
        if root in visited:
            continue
        visited.add(root)
        loaded = {posixpath.basename(root): root}
        queue: list[tuple[str, ...]] = [(root,)]
        while queue:
            chain = queue.pop(0)
            obj_path = chain[-1]
            for need in tree.objects[obj_path].needed:
                if need in loaded:
                    continue  # the loader reuses a library whose name is already loaded
                status, found, via = _find(need, obj_path, chain, tree, system, ld_library_path)
                if (obj_path, need) not in seen:
                    seen.add((obj_path, need))
                    out.append(Resolution(obj_path, need, status, found, via, root))
                if found is not None:
                    loaded[need] = found
                if status == "tree" and found in tree.objects and found not in chain:
                    visited.add(found)
                    queue.append(chain + (found,))
    return out


@dataclass(frozen=True)
class EntryFlag:
    """An RPATH/RUNPATH entry worth reporting."""

    file: str
    entry: str
    kind: str
    """absolute | build-tree | relative | dead (points to no directory of the install)"""
    message: str


def flag_entries(path: str, elf: ElfFile, tree: Tree) -> list[EntryFlag]:
    """Entries that cannot be right after install (absolute, build tree, cwd-relative) or point nowhere."""
    flags = []
    for e in elf.rpath + elf.runpath:
        d = expand(e, posixpath.dirname(path))
        if d is None:
            flags.append(EntryFlag(path, e, "relative", f"entry {e!r} is relative to the working directory"))
        elif d.startswith("/"):
            kind = "build-tree" if any(m in d + "/" for m in BUILD_TREE_MARKERS) else "absolute"
            flags.append(EntryFlag(path, e, kind, f"{kind} entry {e!r}: means nothing on another machine"))
        elif d not in tree.dirs:
            flags.append(EntryFlag(path, e, "dead", f"entry {e!r} points to {d}, which the install does not have"))
    return flags
