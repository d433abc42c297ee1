"""glibc floors from symbol versions: tiny C libraries built here with gcc, each referencing versions we know from
glibc's own Versions files (exp/log got GLIBC_2.29 in glibc 2.29, expf GLIBC_2.27, x86-64 starts at 2.2.5)."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from tools.release.elf.glibc import (
    BASELINE,
    GlibcFloor,
    VersionedSymbol,
    defined_versions,
    file_floor,
    newest_floor,
    oldest_glibc,
    required_versions,
)

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")


def host_glibc() -> tuple[int, ...]:
    out = subprocess.run(["getconf", "GNU_LIBC_VERSION"], capture_output=True, text=True, check=True).stdout
    return tuple(int(x) for x in out.split()[1].split("."))


def build_lib(tmp: Path, name: str, source: str, *flags: str) -> Path:
    c = tmp / f"{name}.c"
    c.write_text(source)
    out = tmp / f"lib{name}.so"
    subprocess.run(["gcc", "-O0", "-shared", "-fPIC", "-o", str(out), str(c), *flags], check=True)
    return out


EXP = "#include <math.h>\ndouble f(double x) { return exp(x); }\n"
EXPF = "#include <math.h>\nfloat g(float x) { return expf(x); }\n"
BOTH = "#include <math.h>\ndouble f(double x) { return exp(x) + expf((float)x); }\n"
# The old binding of exp, as a kernel built for old machines asks for it.
OLD_EXP = '#include <math.h>\n__asm__(".symver exp,exp@GLIBC_2.2.5");\ndouble f(double x) { return exp(x); }\n'


@pytest.mark.skipif(host_glibc() < (2, 29), reason="the host glibc predates exp@GLIBC_2.29")
def test_exp_binds_glibc_2_29(tmp_path):
    floor = file_floor(build_lib(tmp_path, "e", EXP, "-lm"))
    assert (floor.version, floor.symbol, floor.library) == ((2, 29), "exp@GLIBC_2.29", "libm.so.6")
    assert floor.manylinux == "manylinux_2_29"


def test_expf_binds_glibc_2_27(tmp_path):
    floor = file_floor(build_lib(tmp_path, "ef", EXPF, "-lm"))
    assert (floor.version, floor.symbol) == ((2, 27), "expf@GLIBC_2.27")


@pytest.mark.skipif(host_glibc() < (2, 29), reason="the host glibc predates exp@GLIBC_2.29")
def test_newest_symbol_sets_the_floor(tmp_path):
    path = build_lib(tmp_path, "b", BOTH, "-lm")
    versions = {(r.symbol, r.version) for r in required_versions(path)}
    assert {("exp", "GLIBC_2.29"), ("expf", "GLIBC_2.27")} <= versions
    assert file_floor(path).symbol == "exp@GLIBC_2.29"


def test_symver_pins_the_old_version(tmp_path):
    path = build_lib(tmp_path, "o", OLD_EXP, "-lm")
    assert ("exp", "GLIBC_2.2.5", "libm.so.6") in {(r.symbol, r.version, r.library) for r in required_versions(path)}
    assert file_floor(path).version == (2, 2, 5)


def test_no_libc_at_all_is_the_baseline(tmp_path):
    path = build_lib(tmp_path, "n", "int h(int x) { return x + 1; }\n", "-nostdlib")
    assert required_versions(path) == []
    assert file_floor(path) == GlibcFloor(BASELINE, "", "", str(path))


def test_defined_versions_of_a_versioned_library(tmp_path):
    script = tmp_path / "v.map"
    script.write_text("LIBT_1.0 { global: a; local: *; };\nLIBT_2.0 { global: b; } LIBT_1.0;\n")
    path = build_lib(tmp_path, "t", "int a(void) { return 1; }\nint b(void) { return 2; }\n",
                     f"-Wl,--version-script={script}")
    assert {"LIBT_1.0", "LIBT_2.0"} <= defined_versions(path)


def test_pure_rules():
    reqs = [VersionedSymbol("memcpy", "GLIBC_2.14", "libc.so.6"), VersionedSymbol("", "GLIBC_2.17", "libc.so.6"),
            VersionedSymbol("GOMP_parallel", "GOMP_4.0", "libgomp.so.1"),
            VersionedSymbol("clock_gettime", "GLIBC_2.17", "libc.so.6")]
    floor = oldest_glibc(reqs, "x.so")
    # a bound symbol names the floor in preference to a bare reference of the same version; GOMP_ is not glibc
    assert (floor.version, floor.symbol, floor.file) == ((2, 17), "clock_gettime@GLIBC_2.17", "x.so")
    only_bare = oldest_glibc([VersionedSymbol("", "GLIBC_2.34", "libc.so.6")])
    assert (only_bare.version, only_bare.symbol) == ((2, 34), "(version reference GLIBC_2.34)")
    assert oldest_glibc([VersionedSymbol("x", "GLIBC_PRIVATE", "libc.so.6")]).version == BASELINE
    art = newest_floor([floor, only_bare, oldest_glibc([])])
    assert art.version == (2, 34) and newest_floor([]).version == BASELINE


def _libt(tmp: Path, versions: str, name: str) -> Path:
    d = tmp / name
    d.mkdir()
    (d / "v.map").write_text(versions)
    out = d / "libt.so.1"
    (d / "t.c").write_text("int a(void) { return 1; }\nint b(void) { return 2; }\n")
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(out), str(d / "t.c"), "-Wl,-soname,libt.so.1",
                    f"-Wl,--version-script={d / 'v.map'}"], check=True)
    return out


def test_check_flags_a_version_the_shipped_library_lacks(tmp_path):
    """The loader refuses `user.so` when the wheel's libt defines LIBT_1.0 but not the LIBT_2.0 it was linked to."""
    from tools.release.archive import Member
    from tools.release.artifact import WheelArtifact
    from tools.release.check import glibc_facts
    from tools.release.elf.model import read_elf
    from tools.release.wheel.archive import Wheel

    new = _libt(tmp_path, "LIBT_1.0 { global: a; local: *; };\nLIBT_2.0 { global: b; } LIBT_1.0;\n", "new")
    old = _libt(tmp_path, "LIBT_1.0 { global: a; b; local: *; };\n", "old")
    user = tmp_path / "user.so"
    (tmp_path / "u.c").write_text("int a(void); int b(void);\nint u(void) { return a() + b(); }\n")
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(user), str(tmp_path / "u.c"), f"-L{new.parent}", "-l:libt.so.1"],
                   check=True)
    members = {"pkg/user.so": user.read_bytes(), "pkg.libs/libt.so.1": old.read_bytes()}
    wheel = Wheel("pkg-1.0-cp39-cp39-linux_x86_64.whl", "pkg", "1.0", "cp39-cp39-linux_x86_64",
                  {n: Member(n, data) for n, data in members.items()})
    elfs = {"pkg/user.so": read_elf(user, "pkg/user.so"), "pkg.libs/libt.so.1": read_elf(old, "pkg.libs/libt.so.1")}
    floors, findings = glibc_facts(WheelArtifact(Path(wheel.path), elfs, wheel))
    assert [(f.file, f.message) for f in findings] == [
        ("pkg/user.so", "needs version LIBT_2.0 of libt.so.1, which the wheel's copy (pkg.libs/libt.so.1) does not "
                        "define")]
    assert set(floors) == set(members)
    # shipping the library it was linked against satisfies it
    wheel_ok = Wheel(wheel.path, "pkg", "1.0", wheel.tags, {**wheel.members, "pkg.libs/libt.so.1":
                                                             Member("pkg.libs/libt.so.1", new.read_bytes())})
    assert glibc_facts(WheelArtifact(Path(wheel_ok.path), elfs, wheel_ok))[1] == []


def readelf_glibc_versions(path: Path) -> set[tuple[int, ...]]:
    """GLIBC_x.y versions binutils' readelf lists in the version-needs section (independent of pyelftools)."""
    out = subprocess.run(["readelf", "-V", "--wide", str(path)], capture_output=True, text=True, check=True).stdout
    needs = out.split("Version needs section", 1)[-1] if "Version needs section" in out else ""
    return {tuple(int(x) for x in v.split(".")) for v in re.findall(r"Name: GLIBC_(\d+(?:\.\d+)+)", needs)}


@pytest.mark.skipif(shutil.which("readelf") is None, reason="needs binutils' readelf")
def test_check_reports_the_floor_readelf_sees(seed, run_release, tmp_path):
    """`check --json` on an auditwheel-repaired wheel: per file and per artifact, the newest GLIBC_ that readelf
    lists; the table says the same in words."""
    out = run_release("check", "--json", str(seed["repaired"]))
    (report,) = json.loads(out.stdout)
    with zipfile.ZipFile(seed["repaired"]) as zf:
        zf.extractall(tmp_path)
    per_file = {}
    for member, got in report["glibc_per_file"].items():
        want = max(readelf_glibc_versions(tmp_path / member), default=BASELINE)
        assert got["glibc"] == ".".join(map(str, want)), member
        per_file[member] = want
    assert report["glibc"]["glibc"] == ".".join(map(str, max(per_file.values())))
    assert report["glibc"]["file"] in per_file and report["glibc"]["manylinux"].startswith("manylinux_2_")
    text = run_release("check", str(seed["repaired"])).stdout
    assert f"loads on glibc >= {report['glibc']['glibc']} ({report['glibc']['manylinux']})" in text
