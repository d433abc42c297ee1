"""The command contract a CI step relies on: cibuildwheel's repair-wheel-command and a `check --json` gate.

cibuildwheel substitutes {wheel} (the built wheel) and {dest_dir} (a fresh, empty directory) into the configured
string without quoting and runs it through a shell; afterwards it expects exactly one wheel in {dest_dir}. These
tests run the strings documented in docs/release-tool.md that way, with the installed console script.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

SCRIPT = Path(sys.executable).parent / "cyfes-release"
# the [tool.cibuildwheel.linux] example of docs/release-tool.md, word for word
REPAIR = "cyfes-release fix {wheel} -o {dest_dir} && cyfes-release check {dest_dir}/*.whl"
GATE = "cyfes-release check --json {wheel}"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "release-tool.md"

pytestmark = pytest.mark.skipif(not SCRIPT.exists(), reason="cyfes-release not installed (pip install -e ./tools)")


def cibuildwheel_run(template: str, wheel: Path, dest_dir: Path) -> subprocess.CompletedProcess:
    """What cibuildwheel does with repair-wheel-command: plain substitution, then `sh -c`."""
    command = template.replace("{wheel}", str(wheel)).replace("{dest_dir}", str(dest_dir))
    env = {"PATH": f"{SCRIPT.parent}:/usr/bin:/bin", "HOME": str(dest_dir.parent)}
    return subprocess.run(["sh", "-c", command], capture_output=True, text=True, env=env, timeout=600)


def test_docs_show_the_tested_command():
    text = DOCS.read_text()
    assert f'repair-wheel-command = "{REPAIR}"' in text and GATE.replace("{wheel}", "dist/*.whl") in text


def test_repair_command_leaves_one_fixed_wheel_and_a_passing_gate(seed, tmp_path):
    built = tmp_path / "built"
    built.mkdir()
    wheel = Path(shutil.copy(seed["repaired"], built))
    dest = tmp_path / "repaired"
    dest.mkdir()
    proc = cibuildwheel_run(REPAIR, wheel, dest)
    assert proc.returncode == 0, proc.stderr
    (out,) = dest.glob("*.whl")  # cibuildwheel's own requirement
    assert out.name == wheel.name
    assert f"{out.name}: OK (5 layouts" in proc.stdout  # the check half ran on the fixed wheel
    gate = cibuildwheel_run(GATE, out, dest)
    assert gate.returncode == 0
    (report,) = json.loads(gate.stdout)
    assert report["ok"] is True and report["artifact"] == out.name
    assert all(f["severity"] != "problem" for f in report["findings"])
    # the fixed extension's RPATH now reaches libseed where each scheme installs it (the input's did not)
    ext = f"seedpkg/_ext{sysconfig.get_config_var('EXT_SUFFIX')}"
    with zipfile.ZipFile(out) as zf, zipfile.ZipFile(wheel) as zi:
        assert zf.read(ext) != zi.read(ext)
        # fix changed the wheel, so it also wrote the SBOM of what auditwheel vendored; the gate reports the same
        doc = json.loads(zf.read("seedpkg-1.0.dist-info/sboms/cyfes-release.cdx.json"))
        libs = {n: hashlib.sha256(zf.read(n)).hexdigest() for n in zf.namelist() if n.startswith("seedpkg.libs/")}
    assert libs and {c["hashes"][0]["content"] for c in doc["components"][1:]} == set(libs.values())
    assert {v["member"]: v["sha256"] for v in report["vendored"]} == libs


def test_gate_fails_the_step_on_a_broken_wheel(seed, tmp_path):
    """`check --json` on auditwheel's own output (RPATH into the wheel, not the install) exits 1: the step fails."""
    dest = tmp_path / "d"
    dest.mkdir()
    proc = cibuildwheel_run(GATE, seed["repaired"], dest)
    assert proc.returncode == 1
    (report,) = json.loads(proc.stdout)
    assert report["ok"] is False
    assert any(f["severity"] == "problem" and "libseed" in f["message"] for f in report["findings"])


def test_repair_command_on_a_missing_wheel_is_bad_input(tmp_path):
    dest = tmp_path / "d"
    dest.mkdir()
    proc = cibuildwheel_run("cyfes-release fix {wheel} -o {dest_dir}", tmp_path / "nope-1.0-py3-none-any.whl", dest)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "nope-1.0-py3-none-any.whl" in proc.stderr
    assert list(dest.iterdir()) == []
