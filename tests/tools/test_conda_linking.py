"""conda/linking.py: every DT_NEEDED must be in the package (reached by RPATH), from a declared dependency (reached via
$PREFIX/lib), or a system library. Tiny libraries built with gcc, read with the real ELF model."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.tools.wheelfactory import gcc
from tools.release.conda.linking import check_links, problems_of, providers
from tools.release.elf.model import read_elf

SITE = "lib/python3.11/site-packages/pkg"


@pytest.fixture(scope="module")
def libs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("linkcheck")
    odd = gcc(tmp / "ext" / "libodd.so.1", {"odd.c": "int odd(void) { return 1; }\n"}, "-Wl,-soname,libodd.so.1")
    core = gcc(tmp / "pkg" / "libcore.so", {"core.c": "int core(void) { return 2; }\n"}, "-Wl,-soname,libcore.so")
    omp = ("#include <omp.h>\n#include <stdio.h>\nint core(void);\n"
           "int ext(void) { puts(\"ext\"); return core() + omp_get_max_threads(); }\n")
    good = gcc(tmp / "pkg" / "good.so", {"good.c": omp}, "-fopenmp", f"-L{core.parent}", "-lcore",
               "-Wl,-rpath,$ORIGIN:$ORIGIN/../../..")
    no_libdir = gcc(tmp / "pkg" / "nolibdir.so", {"nolibdir.c": omp}, "-fopenmp", f"-L{core.parent}", "-lcore",
                    "-Wl,-rpath,$ORIGIN")
    undeclared = gcc(tmp / "pkg" / "undeclared.so", {"u.c": "int odd(void);\nint u(void) { return odd(); }\n"},
                     f"-L{odd.parent}", "-l:libodd.so.1", "-Wl,-rpath,$ORIGIN")
    return {"core": core, "good": good, "nolibdir": no_libdir, "undeclared": undeclared}


def elf(path: Path, name: str):
    return read_elf(path, label=f"{SITE}/{name}")


def files() -> set[str]:
    return {f"{SITE}/libcore.so", f"{SITE}/good.so", f"{SITE}/nolibdir.so", f"{SITE}/undeclared.so"}


def test_declared_and_in_package_libraries_pass(libs: dict[str, Path]) -> None:
    links = check_links([elf(libs["good"], "good.so")], files(), ["libgomp >=12", "python >=3.11"])
    kinds = {link.needed: (link.kind, link.detail) for link in links}
    assert kinds["libcore.so"] == ("package", f"{SITE}/libcore.so")
    assert kinds["libgomp.so.1"] == ("dependency", "libgomp")
    assert kinds["libc.so.6"] == ("system", "system allowlist")
    assert problems_of(links, "pkg") == []


def test_undeclared_provider_is_named(libs: dict[str, Path]) -> None:
    links = check_links([elf(libs["good"], "good.so")], files(), ["python >=3.11"])
    (problem,) = problems_of(links, "pkg-1-0")
    assert str(problem) == (f"In pkg-1-0, {SITE}/good.so: needs libgomp.so.1: not declared: add a dependency on "
                            "libgomp")


def test_declared_but_unreachable_through_rpath(libs: dict[str, Path]) -> None:
    """Declaring libgomp is not enough: without an RPATH entry to $PREFIX/lib the host's copy would load."""
    links = check_links([elf(libs["nolibdir"], "nolibdir.so")], files(), ["libgomp"])
    (problem,) = problems_of(links, "pkg")
    assert problem.file == f"{SITE}/nolibdir.so" and "needs libgomp.so.1" in problem.message
    assert "no RPATH entry reaches $PREFIX/lib (RPATH $ORIGIN)" in problem.message


def test_unknown_library_fails_naming_file_and_library(libs: dict[str, Path]) -> None:
    links = check_links([elf(libs["undeclared"], "undeclared.so")], files(), ["libgomp"])
    (problem,) = problems_of(links, "pkg")
    assert (problem.file, problem.message.split(":")[0]) == (f"{SITE}/undeclared.so", "needs libodd.so.1")
    assert "not provided by any declared dependency" in problem.message


def test_in_package_library_not_on_rpath_is_missing(libs: dict[str, Path]) -> None:
    """libcore.so next to the file but the file has no $ORIGIN: the loader would not find it."""
    moved = {f"lib/other/libcore.so", f"{SITE}/good.so"}
    links = check_links([elf(libs["good"], "good.so")], moved, ["libgomp"])
    assert [p.message for p in problems_of(links, "pkg")] == [
        "needs libcore.so: not in the package, not provided by any declared dependency, not a system library"]


@pytest.mark.parametrize("soname,expected", [
    ("libcudart.so.13", "cuda-cudart"), ("libcudart.so.12", "cuda-cudart"), ("libcudart.so.11.0", "cudatoolkit"),
    ("libgomp.so.1", "libgomp"), ("libstdc++.so.6", "libstdcxx"), ("libgcc_s.so.1", "libgcc"),
])
def test_provider_table(soname: str, expected: str) -> None:
    assert providers(soname)[0] == expected
