"""Hostile command lines and release.yaml files: exit 2 with one line naming the argument or file and the problem,
nothing written or left behind; SIGTERM and SIGINT in the middle of `fix` leave no staging directory."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

import hostile as h


def workdir(tmp_path: Path) -> tuple[Path, Path]:
    work, marker = tmp_path / "work", tmp_path / "ran"
    (work / "in").mkdir(parents=True)
    (work / "tmp").mkdir()
    return work, marker


def honest_wheel(d: Path, marker: Path, build: str = "", extra: dict | None = None) -> Path:
    name = h.WHEEL_NAME if not build else h.WHEEL_NAME.replace("-py3", f"-{build}-py3")
    return h.write_wheel(d / name, {**h.wheel_files(marker), **(extra or {})})


def refused(proc, line: str, work: Path, before: dict, marker: Path) -> None:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.splitlines() == [f"error: {line}"], proc.stderr
    assert h.snapshot(work) == before
    assert not marker.exists()


def test_fix_two_inputs_of_one_name(cyfes_release, tmp_path):
    work, marker = workdir(tmp_path)
    for d in ("a", "b"):
        (work / d).mkdir()
        honest_wheel(work / d, marker)
    before = h.snapshot(work)
    proc = h.run_tool(cyfes_release, work, "fix", f"a/{h.WHEEL_NAME}", f"b/{h.WHEEL_NAME}", "-o", "out")
    refused(proc, f"In a/{h.WHEEL_NAME} and b/{h.WHEEL_NAME}: the same file name twice; outputs are named after "
                  "their input, so one would overwrite the other", work, before, marker)


def test_fix_output_is_an_existing_file(cyfes_release, tmp_path):
    work, marker = workdir(tmp_path)
    honest_wheel(work / "in", marker)
    (work / "out").write_text("keep me\n")
    before = h.snapshot(work)
    proc = h.run_tool(cyfes_release, work, "fix", f"in/{h.WHEEL_NAME}", "-o", "out")
    refused(proc, "In -o out: exists and is not a directory", work, before, marker)


def test_fix_output_in_a_missing_directory(cyfes_release, tmp_path):
    work, marker = workdir(tmp_path)
    honest_wheel(work / "in", marker)
    before = h.snapshot(work)
    proc = h.run_tool(cyfes_release, work, "fix", f"in/{h.WHEEL_NAME}", "-o", "no/such/out")
    refused(proc, f"In -o no/such/out: {work}/no/such is not a directory", work, before, marker)


def test_fix_output_where_nothing_can_be_written(cyfes_release, tmp_path):
    """/proc takes no new directories, whoever we are (root passes os.access, so mkdtemp's error is the one)."""
    work, marker = workdir(tmp_path)
    honest_wheel(work / "in", marker)
    before = h.snapshot(work)
    proc = h.run_tool(cyfes_release, work, "fix", f"in/{h.WHEEL_NAME}", "-o", "/proc/cyfes-out")
    assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1, proc.stderr
    assert proc.stderr.startswith("error: In -o /proc/cyfes-out") and "Traceback" not in proc.stderr
    assert h.snapshot(work) == before and not marker.exists()


def test_fix_output_onto_its_input(cyfes_release, tmp_path):
    work, marker = workdir(tmp_path)
    honest_wheel(work / "in", marker)
    before = h.snapshot(work)
    proc = h.run_tool(cyfes_release, work, "fix", f"in/{h.WHEEL_NAME}", "-o", "in")
    refused(proc, f"In -o in: would overwrite the input in/{h.WHEEL_NAME}", work, before, marker)


def test_fix_dry_run_creates_nothing(cyfes_release, tmp_path):
    work, marker = workdir(tmp_path)
    honest_wheel(work / "in", marker)
    before = h.snapshot(work)
    proc = h.run_tool(cyfes_release, work, "fix", "--dry-run", f"in/{h.WHEEL_NAME}", "-o", "out")
    assert proc.returncode == 0, proc.stderr
    assert f"would write {h.WHEEL_NAME}" in proc.stdout
    assert h.snapshot(work) == before and not marker.exists()


def test_fix_publishes_and_leaves_nothing_else(cyfes_release, tmp_path):
    """The control for the tests above: a good run writes the output and nothing besides it."""
    work, marker = workdir(tmp_path)
    honest_wheel(work / "in", marker)
    before = h.snapshot(work)
    proc = h.run_tool(cyfes_release, work, "fix", f"in/{h.WHEEL_NAME}", "-o", "out")
    assert proc.returncode == 0, proc.stderr
    after = h.snapshot(work)
    assert {k: v for k, v in after.items() if not k.startswith("out")} == before
    assert sorted(k for k in after if k.startswith("out")) == ["out", f"out/{h.WHEEL_NAME}"]
    assert (work / "out" / h.WHEEL_NAME).read_bytes() == (work / "in" / h.WHEEL_NAME).read_bytes()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_during_fix_leaves_no_staging(cyfes_release, signum, tmp_path):
    work, marker = workdir(tmp_path)
    big = {"seedpkg/blob.bin": os.urandom(12 << 20)}  # incompressible: each wheel takes a moment to re-read
    names = [honest_wheel(work / "in", marker, str(i), big).name for i in range(1, 7)]
    before = h.snapshot(work)
    proc = subprocess.Popen([str(cyfes_release), "fix", *(f"in/{n}" for n in names), "-o", "out"], cwd=work,
                            env=h.tool_env(work / "tmp"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not any(p.name.startswith(".release-staging-") for p in work.iterdir()):
        assert proc.poll() is None, "finished before its staging directory was seen"
        assert time.monotonic() < deadline
        time.sleep(0.005)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signum, err
    assert err.splitlines() == [f"interrupted by {signal.Signals(signum).name}; temporary files removed"]
    assert h.snapshot(work) == before and not marker.exists()


# --- release.yaml -------------------------------------------------------------------------------------------------

DEEP = "python: " + "[" * 3000 + "]" * 3000 + "\n"
CONFIGS = {
    "duplicate-key": ("output: dist\nverify:\n  enabled: true\noutput: /etc\n",
                      "In release.yaml, output (line 4): key given twice"),
    "duplicate-nested-key": ("cuda:\n  strategy: vendor\n  strategy: pip\n",
                             "In release.yaml, cuda.strategy (line 3): key given twice"),
    "nested-3000": (DEEP, "In release.yaml: not valid YAML: nested too deeply"),
    "hex-integer": ("conda:\n  build_number: 0x10\n",
                    "In release.yaml, conda.build_number (line 2): must be a non-negative decimal integer, not '0x10'"),
    "huge-integer": ("limits:\n  members: " + "9" * 5000 + "\n",
                     "In release.yaml, limits.members (line 2): must be a non-negative decimal integer, not '"
                     + "9" * 40 + "'"),
    "mapping-key": ("? {python: 1}\n: 3.12\n",
                    "In release.yaml, <top> (line 1): keys must be plain names, not a list, mapping, number or null"),
    "list-key": ("cuda:\n  ? [enabled]\n  : true\n",
                 "In release.yaml, cuda (line 2): keys must be plain names, not a list, mapping, number or null"),
    "not-utf8": (b"output: \xff\n", "In release.yaml: cannot be read ('utf-8' codec can't decode byte 0xff in "
                                    "position 8: invalid start byte)"),
}


@pytest.mark.parametrize("case", sorted(CONFIGS))
def test_hostile_release_yaml(cyfes_release, case, tmp_path):
    work, marker = workdir(tmp_path)
    honest_wheel(work / "in", marker)
    text, line = CONFIGS[case]
    (work / "release.yaml").write_bytes(text if isinstance(text, bytes) else text.encode())
    before = h.snapshot(work)
    refused(h.run_tool(cyfes_release, work, "fix", f"in/{h.WHEEL_NAME}", "-o", "out"), line, work, before, marker)


@pytest.mark.parametrize("where, line", [("missing.yaml", "In missing.yaml: no such file"),
                                         ("in", "In in: not a regular file")])
def test_config_path_missing_or_a_directory(cyfes_release, where, line, tmp_path):
    work, marker = workdir(tmp_path)
    honest_wheel(work / "in", marker)
    before = h.snapshot(work)
    proc = h.run_tool(cyfes_release, work, "--config", where, "check", f"in/{h.WHEEL_NAME}")
    refused(proc, line, work, before, marker)
