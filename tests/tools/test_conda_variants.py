"""Conda variants (tools.release.conda.variants): the table agrees with recipe/conda_build_config.yaml; a
package's depends, constrains and build string follow from its variant and its real ELF files (built here with
gcc against libraries carrying the variant's CUDA runtime soname); a wheel of another CUDA is refused; the
compiler search finds an nvcc by its `--version` and the host compiler nvcc 11.8 accepts; the cudatoolkit
TEST FIXTURE carries NVIDIA's real libcudart.so.11.0 and the loader takes it from $PREFIX/lib."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import yaml

from tests.tools.test_conda_package import BUILD_INFO, EXT_C, cudart_wheel, members, readelf_glibc
from tests.tools.wheelfactory import EXT_SUFFIX, PY, TAG, gcc, write_raw_wheel
from tools.release.conda import channel as conda_channel
from tools.release.conda.fixtures import build_fixture_channel, fixtures
from tools.release.conda.linking import providers
from tools.release.conda.package import make_channel, make_package
from tools.release.conda.variants import DEFAULT_VARIANTS, VARIANTS, find_compiler, variant
from tools.release.errors import ReleaseError
from tools.release.verify.prefix import cudart_wheel_for, host_python, package_modules, trace_problems
from tools.release.verify.trace import LoaderTrace

ROOT = Path(__file__).resolve().parents[2]
PYTAG = PY.replace(".", "")
SITE = f"lib/python{PY}/site-packages"


def variant_wheel(tmp: Path, soname: str | None, cuda_version: str = "", dist: str = "condapkg") -> Path:
    """A cyfes-shaped raw wheel: _ext (OpenMP) -> libcore.so -> `soname` (a stub at link time; none: CPU)."""
    flags: tuple[str, ...] = ()
    if soname:
        stub = gcc(tmp / "stub" / soname, {"s.c": "int cudart_stub(void) { return 0; }\n"}, f"-Wl,-soname,{soname}")
        flags = ("-Wl,--no-as-needed", f"-L{stub.parent}", f"-l:{soname}")
    core = gcc(tmp / "b" / "libcore.so", {"core.c": "int core_value(void) { return 41; }\n"},
               "-Wl,-soname,libcore.so", *flags, "-Wl,--enable-new-dtags,-rpath,$ORIGIN")
    ext = gcc(tmp / "b" / f"_ext{EXT_SUFFIX}", {"ext.c": EXT_C}, f"-I{sysconfig.get_paths()['include']}",
              "-fopenmp", f"-L{core.parent}", "-lcore", "-Wl,--enable-new-dtags,-rpath,$ORIGIN")
    files = {"condapkg/__init__.py": b"", f"condapkg/_ext{EXT_SUFFIX}": ext.read_bytes(),
             "condapkg/libcore.so": core.read_bytes(),
             "condapkg/_build_info.py": BUILD_INFO.format(on="ON" if soname else "OFF", ver=cuda_version).encode(),
             "condapkg/cli.py": b"def main():\n    print('condapkg cli ok')\n    return 0\n",
             f"{dist}-1.0.dist-info/entry_points.txt": b"[console_scripts]\ncondapkg = condapkg.cli:main\n",
             f"{dist}-1.0.dist-info/LICENSE": b"MIT test licence\n"}
    return write_raw_wheel(tmp / f"{dist}-1.0-{TAG}-{TAG}-linux_x86_64.whl", files, dist=dist,
                           requires=("numpy>=1.21",))


def index_of(path: Path) -> dict:
    return json.loads(members(path)["info/index.json"])


def test_table_matches_the_recipe_variants() -> None:
    cfg = yaml.safe_load((ROOT / "recipe/conda_build_config.yaml").read_text())
    recipe = {None if str(v) == "None" else str(v) for v in cfg["cuda_compiler_version"]}
    assert {v.cuda for v in DEFAULT_VARIANTS} == recipe
    legacy = yaml.safe_load((ROOT / "recipe/cuda118.yaml").read_text())["cuda_compiler_version"]
    assert {v.cuda for v in VARIANTS if not v.default} == {str(c) for c in legacy}
    for v in VARIANTS:
        assert v.name == ("cpu" if v.cuda is None else v.flavour.conda_variant)
        expected = "cpu" if v.cuda is None else "cuda" + v.cuda.replace(".", "")
        assert v.tag == expected
        if v.cuda is not None:
            assert providers(v.runtime_soname) == v.runtime_packages[-1:]
            assert v.runtime_soname.startswith(f"libcudart.so.{v.cuda.split('.')[0]}")


@pytest.mark.parametrize("tag, soname, depends, constrains", [
    ("cpu", None, [], []),
    ("cuda118", "libcudart.so.11.0", ["__cuda", "cudatoolkit >=11.8,<12.0a0"], ["__cuda >=11"]),
    ("cuda13x", "libcudart.so.13", ["__cuda", "cuda-cudart >=13.0,<14.0a0", "cuda-version >=13.0,<14"],
     ["__cuda >=13"]),
])
def test_package_of_each_variant(tmp_path: Path, tag: str, soname: str | None, depends: list[str],
                                 constrains: list[str]) -> None:
    v = variant(tag)
    (pkg,) = make_channel([variant_wheel(tmp_path, soname, v.cuda or "")], tmp_path / "ch", root=ROOT, variants=[v])
    index = index_of(pkg.path)
    # conda-forge's form, CUDA builds +200 (preferred)
    assert re.fullmatch(rf"{v.tag}_py{PYTAG}h[0-9a-f]{{7}}_{200 if soname else 0}", index["build"])
    assert index["build"] == v.build_string(PY, 200 if soname else 0)
    assert index["build_number"] == (200 if soname else 0)
    cuda_deps = sorted(d for d in index["depends"] if re.match(r"(__cuda|cuda|cudatoolkit)", d))
    assert cuda_deps == depends
    glibc = readelf_glibc(pkg.path)
    assert sorted(index["constrains"]) == sorted(constrains + [f"__glibc >={glibc}"])
    links = {(link.needed, link.detail) for link in pkg.links if link.kind == "dependency"}
    if soname:
        assert (soname, v.runtime_packages[-1]) in links


def test_smoke_python_is_not_one_that_imports_its_own_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The conda smoke runs on the prefix's site-packages through PYTHONPATH; an interpreter that already imports
    the package (a developer's editable install: an import hook ahead of PYTHONPATH) would test that copy instead,
    so verify takes the tool's own Python only when it finds none of the package's modules."""
    (pkg,) = make_channel([variant_wheel(tmp_path, None)], tmp_path / "ch", root=ROOT, variants=[variant("cpu")])
    modules = package_modules(pkg.path)
    assert modules == ("condapkg",)  # what the wheel put in site-packages; dist-info left out
    assert host_python(PY, modules) == Path(sys.executable)  # this venv has numpy and no condapkg
    copy = tmp_path / "elsewhere" / "condapkg"
    copy.mkdir(parents=True)
    (copy / "__init__.py").write_text("")
    monkeypatch.setenv("PYTHONPATH", str(copy.parent))  # now the tool's Python imports a copy of its own
    assert host_python(PY, modules) != Path(sys.executable)


def test_wheel_of_another_cuda_is_refused(tmp_path: Path) -> None:
    wheel = variant_wheel(tmp_path, "libcudart.so.13", "13.0.88")
    with pytest.raises(ReleaseError) as err:
        make_package(wheel, tmp_path / "out", root=ROOT, variant=variant("cuda118"))
    text = str(err.value)
    assert "says CUDA 13.0, variant cuda118 is CUDA 11.8" in text
    assert "needs libcudart.so.13, variant cuda118 ships libcudart.so.11.0" in text
    with pytest.raises(ReleaseError, match="variant cpu needs a CPU-only build"):
        make_package(wheel, tmp_path / "out", root=ROOT, variant=variant("cpu"))
    assert not list((tmp_path / "out").rglob("*.conda"))


def fake_nvcc(path: Path, release: str) -> Path:
    """An executable that answers `--version` as nvcc of `release` does (the compiler search reads only that)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\necho 'Cuda compilation tools, release {release}, V{release}.89'\n")
    path.chmod(0o755)
    return path


def test_compiler_search(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A variant's compiler is its flavour's toolchain (cuda_toolkit): the reason is kept when there is none."""
    v = variant("cuda118")
    assert v.flavour is not None and v.runtime_soname == "libcudart.so.11.0" and v.runtime_packages == ("cudatoolkit",)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # no toolchain cache
    monkeypatch.delenv("CYFES_CUDA_HOST_COMPILER", raising=False)
    wrong = fake_nvcc(tmp_path / "cuda12" / "nvcc", "12.9")
    monkeypatch.setenv("CYFES_NVCC_CU11", str(wrong))
    gone = find_compiler(v)
    assert gone.compiler is None and not gone.buildable
    assert f"CYFES_NVCC_CU11={wrong} is nvcc 12.9.89, not CUDA 11.8" in gone.reason
    nvcc = fake_nvcc(tmp_path / "cuda118" / "bin" / "nvcc", "11.8")
    gxx11 = tmp_path / "g++-11"
    gxx11.write_text("#!/bin/sh\necho 11\n")
    gxx11.chmod(0o755)
    monkeypatch.setenv("CYFES_NVCC_CU11", str(nvcc))
    monkeypatch.setenv("CYFES_CUDA_HOST_COMPILER", str(gxx11))
    found = find_compiler(v)
    assert found.buildable and found.compiler.nvcc == str(nvcc) and found.compiler.host_cxx == str(gxx11)
    assert find_compiler(variant("cpu")).buildable


@pytest.mark.parametrize("tag, runtime_package, runtime_wheel", [
    ("cuda13x", "cuda-cudart", cudart_wheel),
    pytest.param("cuda118", "cudatoolkit", lambda: cudart_wheel_for("11.8"), marks=pytest.mark.slow),
])
def test_package_installs_and_loads_the_runtime_from_the_prefix(tmp_path: Path, tag: str, runtime_package: str,
                                                                runtime_wheel) -> None:
    """py-rattler installs the variant's package from our channel next to the fixture channel, whose runtime package
    holds NVIDIA's real libcudart of that CUDA (cuda-cudart from 12 on, a cudatoolkit stand-in for 11.8); the loader
    takes libcudart and libgomp from $PREFIX/lib, and the entry point's shebang names the prefix's python."""
    v = variant(tag)
    (pkg,) = make_channel([variant_wheel(tmp_path, v.runtime_soname, f"{v.cuda}.89")], tmp_path / "ch", root=ROOT,
                          variants=[v])
    wheel = runtime_wheel()
    fxch = tmp_path / "fixtures"
    build_fixture_channel(fxch, fixtures({v.cuda: wheel}, {PY: sys.version.split()[0]}, [v.cuda]))
    records = conda_channel.solve([pkg.path.parent.parent, fxch], ["condapkg"], v.cuda)
    names = {r.name.normalized for r in records}
    assert {"condapkg", runtime_package, "libgomp", "python_abi"} <= names
    assert not names & ({"cuda-cudart", "cudatoolkit"} - {runtime_package}), names
    runtime = next(r for r in records if r.name.normalized == runtime_package)
    assert str(runtime.version).startswith(f"{v.cuda}.") and wheel.name.split("-")[1].startswith(f"{v.cuda}.")
    prefix = tmp_path / "prefix"
    conda_channel.install(records, prefix, tmp_path / "pkgs")
    env = {"PATH": "/usr/bin:/bin", "LD_DEBUG": "libs", "PYTHONPATH": str(prefix / SITE)}
    proc = subprocess.run([sys.executable, "-s", "-c", "import condapkg._ext as e; print(e.value())"],
                          env=env, capture_output=True, text=True)
    assert proc.stdout.strip() == "42", proc.stderr[-2000:]
    loaded = LoaderTrace.parse(proc.stderr).by_name()
    assert loaded[v.runtime_soname] == os.path.realpath(prefix / "lib" / v.runtime_soname)
    assert loaded["libgomp.so.1"] == os.path.realpath(prefix / "lib/libgomp.so.1")
    assert trace_problems("condapkg", loaded, prefix, cuda=True) == []
    script = prefix / "bin/condapkg"
    assert script.read_text().splitlines()[0] == f"#!{prefix}/bin/python"
    out = subprocess.run([sys.executable, str(script)], env={"PYTHONPATH": str(prefix / SITE)},
                         capture_output=True, text=True)
    assert out.stdout.strip() == "condapkg cli ok"


@pytest.mark.parametrize("symver", [False, True])
def test_glibc_constraint_follows_the_symbol_versions(tmp_path: Path, symver: bool) -> None:
    """exp() binds to GLIBC_2.29 when linked here; bound to its old version (what an older-glibc build does)
    the package's __glibc drops with it. The constraint is readelf's newest GLIBC_x.y, never anything else."""
    pin = '__asm__(".symver exp,exp@GLIBC_2.2.5");\n' if symver else ""
    src = pin + "#include <math.h>\ndouble use_exp(double x) { return exp(x); }\n"
    lib = gcc(tmp_path / "m" / "libexp.so", {"e.c": src}, "-fno-builtin", "-Wl,-soname,libexp.so", "-lm")
    wheel = variant_wheel(tmp_path, None)
    from tools.release.wheel.archive import read_wheel

    files = {n: m.data for n, m in read_wheel(wheel).members.items() if ".dist-info/" not in n}
    files["condapkg/libexp.so"] = lib.read_bytes()
    files["condapkg-1.0.dist-info/LICENSE"] = b"MIT test licence\n"
    wheel = write_raw_wheel(wheel, files, dist="condapkg", requires=("numpy>=1.21",))
    (pkg,) = make_channel([wheel], tmp_path / "ch", root=ROOT, variants=[variant("cpu")])
    glibc = [c for c in index_of(pkg.path)["constrains"] if c.startswith("__glibc")]
    assert glibc == [f"__glibc >={readelf_glibc(pkg.path)}"]
    out = subprocess.run(["readelf", "-V", "--wide", str(lib)], capture_output=True, text=True).stdout
    assert ("GLIBC_2.29" in out) is not symver
