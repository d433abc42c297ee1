"""elf/loader.py against the real loader: DT_RPATH applies to transitive loads, DT_RUNPATH does not.

liba.so (search path $ORIGIN/mid:$ORIGIN/leaf) needs mid/libb.so, which needs leaf/libc3.so and has no path of
its own. With RPATH, libb's need is found through liba's RPATH (the loading chain); with RUNPATH it is not.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tools.release.elf.loader import SystemLibraries, Tree, flag_entries, resolve_tree
from tools.release.elf.model import read_elf
from wheelfactory import gcc


def chain(tmp: Path, new_dtags: bool) -> Path:
    gcc(tmp / "leaf" / "libc3.so", {"c3.c": "int c3(void) { return 3; }\n"}, "-Wl,-soname,libc3.so")
    gcc(tmp / "mid" / "libb.so", {"b.c": "int c3(void); int b(void) { return c3(); }\n"}, "-Wl,-soname,libb.so",
        f"-L{tmp / 'leaf'}", "-lc3")
    tag = "--enable-new-dtags" if new_dtags else "--disable-new-dtags"
    return gcc(tmp / "liba.so", {"a.c": "int b(void); int a(void) { return b(); }\n"}, f"-L{tmp / 'mid'}", "-lb",
               f"-Wl,{tag},-rpath,$ORIGIN/mid:$ORIGIN/leaf")


def model(tmp: Path) -> list:
    files = {p: read_elf(tmp / p, p) for p in ("liba.so", "mid/libb.so", "leaf/libc3.so")}
    tree = Tree(files, frozenset(files))
    return resolve_tree(tree, SystemLibraries.from_host())


def real_dlopen(lib: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", f"import ctypes; ctypes.CDLL({str(lib)!r}).a"],
                          capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})


@pytest.mark.parametrize("new_dtags", [False, True], ids=["RPATH", "RUNPATH"])
def test_transitive_load_matches_real_loader(tmp_path, new_dtags):
    lib = chain(tmp_path, new_dtags)
    elf = read_elf(lib)
    assert (elf.runpath, elf.rpath) == ((("$ORIGIN/mid", "$ORIGIN/leaf"), ()) if new_dtags
                                        else ((), ("$ORIGIN/mid", "$ORIGIN/leaf")))
    res = {(r.file, r.needed): r for r in model(tmp_path)}
    assert res[("liba.so", "libb.so")].status == "tree"
    c3 = res[("mid/libb.so", "libc3.so")]
    proc = real_dlopen(lib)
    if new_dtags:
        assert c3.status == "missing"
        assert proc.returncode != 0 and "libc3.so: cannot open shared object file" in proc.stderr
    else:
        assert (c3.status, c3.found, c3.via) == ("tree", "leaf/libc3.so", "DT_RPATH $ORIGIN/leaf of liba.so")
        assert proc.returncode == 0, proc.stderr


def test_flags_absolute_build_tree_cwd_and_dead_entries(tmp_path):
    lib = gcc(tmp_path / "libx.so", {"x.c": "int x(void) { return 1; }\n"},
              "-Wl,--disable-new-dtags,-rpath,/opt/vendor/lib:/tmp/build/lib::$ORIGIN/gone:$ORIGIN")
    elf = read_elf(lib, "pkg/libx.so")
    tree = Tree({"pkg/libx.so": elf}, frozenset({"pkg/libx.so"}))
    kinds = [(f.entry, f.kind) for f in flag_entries("pkg/libx.so", elf, tree)]
    assert kinds == [("/opt/vendor/lib", "absolute"), ("/tmp/build/lib", "build-tree"), ("", "relative"),
                     ("$ORIGIN/gone", "dead")]


def test_library_only_on_build_host_is_reported():
    """libgomp is in this host's ld.so.cache but not in the manylinux policy: found, but only here."""
    system = SystemLibraries.from_host()
    assert "libgomp.so.1" in system.host and "libgomp.so.1" not in system.allowlist
    assert "libc.so.6" in system.allowlist and "libcuda.so.1" in system.allowlist
