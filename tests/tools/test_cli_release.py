"""The CLI's contract: exit codes, the table, and that bad input never touches the output directory."""
from __future__ import annotations

import pytest

import wheelfactory as wf
from conftest import ROOT


def listing(d):
    return sorted(p.name for p in d.iterdir()) if d.exists() else None


def test_strict_unknown_python_is_bad_input(run_release):
    before = listing(ROOT / "dist")
    proc = run_release("wheel", "--python", "3.99", "--strict")
    assert proc.returncode == 2
    assert proc.stderr.strip().endswith("error: Python 3.99 not found on PATH or in pyenv (--strict)")
    assert listing(ROOT / "dist") == before


def test_malformed_config_stops_wheel_before_anything(run_release, tmp_path):
    cfg = tmp_path / "release.yaml"
    cfg.write_text("python: [3.11]\noutput: dist\nschemes: [venv, windows]\n")
    before = listing(ROOT / "dist")
    proc = run_release("--config", str(cfg), "wheel")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"error: In {cfg}, schemes (line 3): 'windows' is not allowed" in proc.stderr
    assert listing(ROOT / "dist") == before


def test_verify_command_table_and_exit_codes(seed, run_release, tmp_path):
    fixed = tmp_path / "fixed"
    assert run_release("fix", str(seed["repaired"]), "-o", str(fixed)).returncode == 0
    (good,) = fixed.glob("*.whl")
    ok = run_release("verify", "--smoke", wf.SMOKE, "--scheme", "venv", "--scheme", "target", str(good))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    row = next(ln for ln in ok.stdout.splitlines() if ln.startswith(good.name))
    assert "venv target(limitation)" in row and row.rstrip().endswith("ok")
    assert "seedpkg.libs" not in row or "libgraft" in row  # the vendored column lists grafted libraries
    bad = run_release("verify", "--smoke", wf.SMOKE, "--scheme", "venv", str(seed["repaired"]))
    assert bad.returncode == 1
    assert "FAILED: venv:" in bad.stdout and "libseed.so: cannot open shared object file" in bad.stdout


@pytest.mark.parametrize("args", [["fix", "x.whl"], ["nonsense"]])
def test_usage_errors_exit_2(run_release, args):
    assert run_release(*args).returncode == 2  # argparse's own exit code for usage errors
