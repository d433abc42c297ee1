"""The seed problem end to end with real tools: a library installed through .data/data/lib needs a library
auditwheel grafted. The repaired wheel fails `check`; `fix` repairs it; the fixed wheel loads in every scheme
with real installs (pip into a venv, --user via PYTHONUSERBASE, --prefix, --target, Debian via installer)."""
from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path

import pytest

import wheelfactory as wf
from tools.release.elf.model import read_elf
from tools.release.verify.schemes import verify_scheme

SCHEMES = ("venv", "user", "prefix", "debian", "target")


def sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def fixed(seed, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("fixed")
    from conftest import release
    proc = release("fix", str(seed["repaired"]), "-o", str(out))
    assert proc.returncode == 0, proc.stderr + proc.stdout
    (wheel,) = out.glob("*.whl")
    return wheel


def test_auditwheel_output_fails_check(seed, run_release):
    proc = run_release("check", "--json", str(seed["repaired"]))
    assert proc.returncode == 1, proc.stderr
    (report,) = json.loads(proc.stdout)
    problems = {(f["file"], f["message"].split(",")[0]) for f in report["findings"] if f["severity"] == "problem"}
    assert ("seedpkg/_ext.cpython-311-x86_64-linux-gnu.so".replace("311", wf.TAG[2:]), "needs libseed.so") in problems
    assert any(f["message"] == "entry '$ORIGIN/../../../seedpkg.libs' points to no directory of the install in any "
               "scheme" for f in report["findings"])


def test_raw_wheel_check_names_the_build_host_library(seed, run_release):
    proc = run_release("check", str(seed["raw"]))
    assert proc.returncode == 1
    assert "needs libgraft.so, not found after install" in proc.stdout


def test_fix_writes_rpaths_for_every_scheme_and_check_passes(fixed, run_release, tmp_path):
    with zipfile.ZipFile(fixed) as zf:
        names = zf.namelist()
        zf.extractall(tmp_path)
    assert names[-1].endswith(".dist-info/RECORD")
    ext = read_elf(tmp_path / f"seedpkg/_ext{wf.EXT_SUFFIX}")
    seed_lib = read_elf(tmp_path / "seedpkg-1.0.data/data/lib/libseed.so")
    assert ext.rpath == ("$ORIGIN/../../..", "$ORIGIN/../seedpkg.libs") and ext.runpath == ()
    assert seed_lib.rpath == (f"$ORIGIN/python{wf.PY}/site-packages/seedpkg.libs",
                              f"$ORIGIN/python{wf.PY}/dist-packages/seedpkg.libs")
    proc = run_release("check", str(fixed))
    assert proc.returncode == 0, proc.stdout
    assert "LIMITATION" in proc.stdout and "pip install --target does not install .data/data files" in proc.stdout


@pytest.mark.parametrize("scheme", SCHEMES)
def test_fixed_wheel_loads_in_every_scheme(fixed, seed, scheme, tmp_path):
    result = verify_scheme(fixed, scheme, wf.base_python(), wf.SMOKE, wheelhouse=tmp_path)
    if scheme == "target":  # pip --target drops .data/data/lib: said plainly, not a failure
        assert result.status == "limitation" and "seedpkg-1.0.data/data/lib/libseed.so" in result.detail
        return
    assert result.status == "ok", result.detail
    assert result.detail == "seed ok" and not result.outside
    names = {Path(p).name for p in result.inside}
    assert {f"_ext{wf.EXT_SUFFIX}", "libseed.so"} <= names and any(n.startswith("libgraft-") for n in names)


def test_auditwheel_output_fails_to_load(seed, tmp_path):
    result = verify_scheme(seed["repaired"], "venv", wf.base_python(), wf.SMOKE, wheelhouse=tmp_path)
    assert result.status == "failed" and "libseed.so: cannot open shared object file" in result.detail


def test_fix_is_idempotent_and_right_wheels_are_untouched(fixed, run_release, tmp_path):
    proc = run_release("fix", str(fixed), "-o", str(tmp_path))
    assert proc.returncode == 0 and "already right, copied unchanged" in proc.stdout
    assert (tmp_path / fixed.name).read_bytes() == fixed.read_bytes()


def test_fix_twice_from_scratch_is_byte_identical(seed, run_release, tmp_path):
    env = dict(os.environ, SOURCE_DATE_EPOCH="1700000000")
    outs = []
    for n in ("a", "b"):
        proc = run_release("fix", str(seed["repaired"]), "-o", str(tmp_path / n), env=env)
        assert proc.returncode == 0, proc.stderr
        outs.append(next((tmp_path / n).glob("*.whl")))
    assert sha(outs[0]) == sha(outs[1])
    with zipfile.ZipFile(outs[0]) as zf:
        assert {i.date_time for i in zf.infolist()} == {(2023, 11, 14, 22, 13, 20)}
        assert {i.external_attr >> 16 for i in zf.infolist()} <= {0o100644, 0o100755}


def test_fix_dry_run_writes_nothing(seed, run_release, tmp_path):
    out = tmp_path / "out"
    proc = run_release("fix", "--dry-run", str(seed["repaired"]), "-o", str(out))
    assert proc.returncode == 0 and "would write" in proc.stdout and "added '$ORIGIN/../../..'" in proc.stdout
    assert not out.exists() or not any(out.iterdir())
