"""Property-based tests of the RPATH planner (elf/rpath.py over layouts.py), with hypothesis.

Random artifacts (extension modules, vendored libraries, .data/<key>/ libraries, libraries that other
distributions install) in random install layouts (site-packages of any depth and name, purelib apart from
platlib, data and header dirs anywhere, dropped data, a conda-like libdir, and the real venv, user, Debian,
--prefix, --target and conda schemes of any Python):

    every planned entry is $ORIGIN-based (never absolute, never cwd-relative, no ':'), and for every layout
    that installs the ELF, the first entry under which the loader finds a file named like each DT_NEEDED is a
    directory that really holds that library; an old entry is kept only if it names a real directory there.

The reference is independent of the planner: the install is written to disk (PEP 427 placement, done here),
and entries are expanded by glibc's own rule for $ORIGIN (elf/dl-load.c, is_dst) against the real directories.
A few examples also run under the real loader: gcc builds the ELFs, the real patchelf writes the planned RPATH
(elf/patchelf.py's apply_plan) and `ld.so --list` says where each library was found.

The default run checks a few hundred examples; `-m slow` checks thousands.
"""
from __future__ import annotations

import os
import posixpath
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tools.release.elf.model import ElfFile, read_elf
from tools.release.elf.patchelf import apply_plan
from tools.release.elf.rpath import Provider, plan_rpath
from tools.release.layouts import SCHEMES, InstallLayout, layout
from wheelfactory import gcc

SCHEME_KEYS = ("purelib", "platlib", "headers", "scripts", "data")
LD_SO = "/lib64/ld-linux-x86-64.so.2"

# Directory names: what site-packages and distributions are called (no ".so", so no name is also a library's).
names = st.from_regex(r"[a-z0-9_+-][a-z0-9._+-]{0,6}", fullmatch=True).filter(lambda n: ".so" not in n)


def paths(min_depth: int = 0, max_depth: int = 4) -> st.SearchStrategy[str]:
    """A directory relative to a layout's root; "." is the root."""
    return st.lists(names, min_size=min_depth, max_size=max_depth).map(lambda p: "/".join(p) or ".")


@st.composite
def custom_layouts(draw) -> InstallLayout:
    """A scheme that no installer has yet, but one could: any site-packages, purelib apart or not."""
    purelib = draw(paths())
    platlib = draw(st.one_of(st.just(purelib), paths()))
    lay_paths = {"purelib": purelib, "platlib": platlib, "headers": draw(paths()) + "/{dist}",
                 "scripts": draw(paths(0, 2)), "data": draw(paths(0, 2))}
    dropped = draw(st.sampled_from([{}, {"data": ("lib",)}, {"data": ("share", "lib")}]))
    libdir = draw(st.one_of(st.none(), paths(1, 2)))
    return InstallLayout("custom", f"3.{draw(st.integers(6, 14))}", "random", lay_paths, dropped, "dropped", libdir)


real_layouts = st.builds(layout, st.sampled_from(SCHEMES), st.integers(6, 14).map(lambda m: f"3.{m}"))
any_layouts = st.one_of(real_layouts, custom_layouts())


@dataclass(frozen=True)
class Artifact:
    dist: str
    members: tuple[str, ...]
    """Every member: ELFs first, then data files that only make directories exist."""
    elves: dict
    """member -> ElfFile."""
    providers: tuple[Provider, ...]


@st.composite
def member_dirs(draw, dist: str) -> str:
    """Where a wheel member sits: the package, <dist>.libs (auditwheel), or <dist>-1.0.data/<key>/..."""
    kind = draw(st.sampled_from(["package", "libs", "data"]))
    if kind == "package":
        return posixpath.join(dist, *draw(st.lists(names, max_size=2)))
    if kind == "libs":
        return f"{dist}.libs"
    key = draw(st.sampled_from(SCHEME_KEYS))
    return posixpath.join(f"{dist}-1.0.data", key, *draw(st.lists(names, min_size=0, max_size=3)))


@st.composite
def providers(draw, soname: str) -> Provider:
    """The library comes with another distribution: in its folder of platlib or purelib, in libdir, or a glob."""
    where = draw(st.sampled_from(["{platlib}", "{purelib}", "{libdir}", "{root}"]))
    where = posixpath.join(where, *draw(st.lists(names, max_size=3)))
    pattern = draw(st.sampled_from([soname, soname.rsplit(".", 1)[0] + ".*"]))
    return Provider(pattern, where, "other-dist")


@st.composite
def artifacts(draw) -> Artifact:
    dist = draw(names.filter(lambda n: not n.startswith(".")))
    nlib = draw(st.integers(1, 6))
    libs = [f"lib{i}x.so.{i}" for i in range(nlib)]
    places: dict[str, str] = {}  # library -> member (None: another distribution has it)
    provs = []
    for lib in libs:
        if draw(st.booleans()) or lib == libs[0]:
            places[lib] = posixpath.join(draw(member_dirs(dist)), lib)
        if lib not in places or draw(st.integers(0, 4)) == 0:  # sometimes both: two copies, either one will do
            provs.append(draw(providers(lib)))
    ext = posixpath.join(draw(member_dirs(dist)), "_ext.so")
    elves = {}
    for member in [ext, *places.values()]:
        own = posixpath.basename(member)
        needs = draw(st.lists(st.sampled_from(libs), unique=True, max_size=4))
        needed = tuple(n for n in needs if n != own) + ("libc.so.6",)
        elves[member] = ElfFile(member, "EM_X86_64", 64, own, needed, draw(old_entries(member)), ())
    data = draw(st.lists(st.builds(posixpath.join, member_dirs(dist), st.just("README.txt")), max_size=3))
    members = tuple(dict.fromkeys([*elves, *data]))
    return Artifact(dist, members, elves, tuple(provs))


def old_entries(member: str) -> st.SearchStrategy[tuple[str, ...]]:
    """What a build left in DT_RPATH: build-machine paths, cwd-relative ones, and $ORIGIN-relative guesses."""
    up = st.integers(0, 4).map(lambda k: "/".join([".."] * k))
    origin = st.builds(lambda tok, rel, tail: f"{tok}/{rel}/{tail}".replace("//", "/").rstrip("/"),
                       st.sampled_from(["$ORIGIN", "${ORIGIN}"]), up,
                       st.sampled_from(["", "lib", "site-packages", posixpath.dirname(member).split("/")[0]]))
    junk = st.sampled_from(["/usr/local/cuda/lib64", "/tmp/build/lib", "", "lib", ".", "$ORIGINAL/x", "$LIB"])
    return st.lists(st.one_of(origin, junk), max_size=3).map(tuple)


# --- the reference: PEP 427 placement and glibc's $ORIGIN, on a real directory tree ---------------------------

def land(lay: InstallLayout, member: str, dist: str) -> str | None:
    """Where pip puts `member` under the root (PEP 427: <dist>-<ver>.data/<key>/ goes to the scheme's key)."""
    m = re.fullmatch(r"[^/]+\.data/([^/]+)/(.+)", member)
    if m is None or m.group(1) not in SCHEME_KEYS:
        return posixpath.normpath(posixpath.join(lay.paths["platlib"], member))
    key, rest = m.groups()
    if rest.split("/")[0] in lay.dropped.get(key, ()):
        return None
    return posixpath.normpath(posixpath.join(lay.paths[key].replace("{dist}", dist), rest))


def provider_dir(prov: Provider, lay: InstallLayout) -> str | None:
    if "{libdir}" in prov.where and lay.libdir is None:
        return None
    return posixpath.normpath(prov.where.replace("{platlib}", lay.paths["platlib"]).replace(
        "{purelib}", lay.paths["purelib"]).replace("{libdir}", lay.libdir or "").replace("{root}", "."))


def materialise(art: Artifact, lay: InstallLayout, root: Path) -> dict[str, Path]:
    """Write the install under `root`; return member -> installed file (members the scheme drops are absent)."""
    placed = {}
    for member in art.members:
        where = land(lay, member, art.dist)
        if where is not None:
            placed[member] = root / where
    for p in placed.values():
        p.parent.mkdir(parents=True, exist_ok=True)
        p.touch()
    for prov in art.providers:
        d = provider_dir(prov, lay)
        if d is not None:
            for need in {n for e in art.elves.values() for n in e.needed}:
                if re.fullmatch(prov.soname.replace(".", r"\.").replace("*", ".*"), need):
                    (root / d).mkdir(parents=True, exist_ok=True)
                    (root / d / need).touch()
    return placed


def sandbox_root(tmp: str, i: int) -> Path:
    """Layout i's root, 16 uppercase levels deep: entries planned for one layout may climb above the root of
    another (the same file serves both; a deeper site-packages needs more '..'), and must find nothing there, as
    they find nothing above a real install unless a stray copy of the library sits next to it."""
    return Path(tmp, f"L{i}", *["UP"] * 16, "ROOT")


def glibc_expand(entry: str, origin: Path) -> Path | None:
    """The directory ld.so searches for this entry: $ORIGIN / ${ORIGIN} is a token only when followed by '/' or
    the end of the entry ("$ORIGINAL" is not one); anything else that is not absolute is cwd-relative (None)."""
    m = re.fullmatch(r"(\$ORIGIN|\$\{ORIGIN\})(/.*)?", entry)
    if m is None:
        return None
    return Path(str(origin) + (m.group(2) or ""))  # not normalised: the kernel walks each '..' itself


def first_hit(rpath: tuple[str, ...], origin: Path, need: str) -> Path | None:
    """The file the loader takes for `need` from this RPATH: the first entry whose directory has it."""
    for entry in rpath:
        d = glibc_expand(entry, origin)
        if d is not None and (d / need).is_file():
            return d / need
    return None


def check(art: Artifact, lays: list[InstallLayout]) -> None:
    plans = plan_rpath(art.elves, lays, list(art.members), art.providers, art.dist)
    for plan in plans.values():
        for entry in plan.new_rpath:
            assert re.fullmatch(r"(\$ORIGIN|\$\{ORIGIN\})(/[^:]*)?", entry), (plan.file, entry)
    with tempfile.TemporaryDirectory() as tmp:
        roots = [sandbox_root(tmp, i) for i in range(len(lays))]
        installs = [materialise(art, lay, r) for lay, r in zip(lays, roots)]
        indexes = [files_by_name(r) for r in roots]
        for member, elf in art.elves.items():
            rpath = plans[member].new_rpath
            for lay, placed, index in zip(lays, installs, indexes):
                if member in placed:
                    check_one(elf, placed[member], rpath, index, lay)
            for entry in set(rpath) & set(elf.rpath):  # an old entry kept: a real directory in some layout
                assert any(member in p and (d := glibc_expand(entry, p[member].parent)) and d.is_dir()
                           and d.resolve().is_relative_to(r) for p, r in zip(installs, roots)), (member, entry)


def files_by_name(root: Path) -> dict[str, set[Path]]:
    """File name -> every file of that name under root (one walk, not one per library)."""
    out: dict[str, set[Path]] = {}
    for d, _, files in os.walk(root):
        for f in files:
            out.setdefault(f, set()).add(Path(d, f).resolve())
    return out


def check_one(elf: ElfFile, installed: Path, rpath: tuple[str, ...], index: dict, lay: InstallLayout) -> None:
    for need in elf.needed:
        copies = index.get(need, set())
        if not copies:
            continue  # the layout has no copy (libc; a libdir provider in a scheme without one)
        hit = first_hit(rpath, installed.parent, need)
        assert hit is not None and hit.resolve() in copies, (lay.label, lay.paths, elf.path, need, rpath)


DEFAULT = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MANY = settings(max_examples=4000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
layout_lists = st.lists(any_layouts, min_size=1, max_size=4)


@DEFAULT
@given(artifacts(), layout_lists)
@example(Artifact("p", ("p-1.0.data/data/lib/lib0x.so.0", "p/_ext.so"),
                  {"p/_ext.so": ElfFile("p/_ext.so", "EM_X86_64", 64, "_ext.so", ("lib0x.so.0",), ("$ORIGIN",), ()),
                   "p-1.0.data/data/lib/lib0x.so.0": ElfFile("p-1.0.data/data/lib/lib0x.so.0", "EM_X86_64", 64,
                                                             "lib0x.so.0", (), (), ())}, ()),
         [layout("target", "3.12"), layout("debian", "3.9"), layout("venv", "3.13")])
@example(Artifact("p", ("p/_ext.so", "p/.AL/x/README.txt"),  # glibc reads "$ORIGINAL" as no token: cwd-relative
                  {"p/_ext.so": ElfFile("p/_ext.so", "EM_X86_64", 64, None, (), ("$ORIGINAL/x",), ())}, ()),
         [layout("venv", "3.12")])
def test_planned_rpath_finds_every_library_in_every_layout(art, lays):
    check(art, lays)


@pytest.mark.slow
@MANY
@given(artifacts(), layout_lists)
def test_planned_rpath_finds_every_library_many_examples(art, lays):
    check(art, lays)


@pytest.mark.parametrize("entry, want", [
    ("$ORIGIN", "o"), ("${ORIGIN}/../x", "x"), ("$ORIGIN/", "o"),
    ("$ORIGINAL/x", None), ("$ORIGIN_x", None), ("lib", None), ("", None),
])
def test_reference_expansion_follows_glibc_dst_rule(tmp_path, entry, want):
    """The test's own $ORIGIN rule: a token only before '/' or the end (glibc is_dst)."""
    (tmp_path / "o").mkdir()
    (tmp_path / "x").mkdir()
    got = glibc_expand(entry, tmp_path / "o")
    assert (None if got is None else got.resolve()) == (None if want is None else tmp_path / want)


# --- the real loader -------------------------------------------------------------------------------------------

LOADER_LIBS = ("lib0x.so.0", "lib1x.so.1")


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Path]:
    """TEST FIXTURE: lib1x needs lib0x, _ext.so needs both; SONAMEs set, no RPATH (the plan writes it)."""
    d = tmp_path_factory.mktemp("elves")
    lib0 = gcc(d / "lib0x.so.0", {"a.c": "int a(void) { return 1; }\n"}, "-Wl,-soname,lib0x.so.0")
    lib1 = gcc(d / "lib1x.so.1", {"b.c": "int a(void);\nint b(void) { return a() + 1; }\n"},
               "-Wl,-soname,lib1x.so.1", "-Wl,--no-as-needed", str(lib0))
    ext = gcc(d / "_ext.so", {"e.c": "int a(void); int b(void);\nint e(void) { return a() + b(); }\n"},
              "-Wl,--no-as-needed", str(lib1), str(lib0))
    return {"lib0x.so.0": lib0, "lib1x.so.1": lib1, "_ext.so": ext}


@st.composite
def loader_artifacts(draw, built: dict[str, Path]) -> Artifact:
    """The fixture's three ELFs at random places; each library vendored, another distribution's, or both."""
    dist = draw(names.filter(lambda n: not n.startswith(".")))
    members, provs = [posixpath.join(draw(member_dirs(dist)), "_ext.so")], []
    for lib in LOADER_LIBS:
        how = draw(st.sampled_from(["vendored", "provided", "both"]))
        if how != "provided":
            members.append(posixpath.join(draw(member_dirs(dist)), lib))
        if how != "vendored":
            provs.append(draw(providers(lib).filter(lambda p: "{libdir}" not in p.where)))
    elves = {m: read_elf(built[posixpath.basename(m)], m) for m in members}
    return Artifact(dist, tuple(members), elves, tuple(provs))


def ld_list(path: Path) -> dict[str, str]:
    """need -> what `ld.so --list` found ("not found" included), with no LD_LIBRARY_PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LD_")}
    out = subprocess.run([LD_SO, "--list", str(path)], capture_output=True, text=True, env=env, timeout=30).stdout
    return dict(re.findall(r"^\s*(\S+) => (.+?)(?: \(0x[0-9a-f]+\))?$", out, re.M))


@pytest.mark.skipif(not os.path.exists(LD_SO) or shutil.which("gcc") is None, reason="needs gcc and glibc's ld.so")
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(data=st.data(), lays=st.lists(any_layouts, min_size=1, max_size=3))
def test_real_loader_finds_libraries_through_the_patched_rpath(built, data, lays):
    art = data.draw(loader_artifacts(built))
    plans = plan_rpath(art.elves, lays, list(art.members), art.providers, art.dist)
    with tempfile.TemporaryDirectory() as tmp:
        for i, lay in enumerate(lays):
            root = sandbox_root(tmp, i)
            placed = materialise(art, lay, root)
            for lib in LOADER_LIBS:  # the empty files materialise wrote become the real ELFs
                for p in root.rglob(lib):
                    shutil.copyfile(built[lib], p)
            for member, p in placed.items():
                shutil.copyfile(built[posixpath.basename(member)], p)
                apply_plan(plans[member], p)  # the real patchelf
            ext = next((p for m, p in placed.items() if m.endswith("_ext.so")), None)
            if ext is None:
                continue  # this scheme drops the extension module
            found = ld_list(ext)
            for lib in LOADER_LIBS:
                copies = {p.resolve() for p in root.rglob(lib)}
                if not copies:
                    continue  # the scheme drops the only copy (pip --target and .data/data/lib)
                assert found.get(lib) not in (None, "not found"), (lay.label, lay.paths, found, plans)
                assert Path(found[lib]).resolve() in copies, (lib, found[lib], copies)
