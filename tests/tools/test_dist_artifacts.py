"""What `make dist` wrote to dist/, checked by independent tools: the set of artifacts targets.py promises, the
glibc floor read from the symbol versions (ours, and auditwheel's tag), `twine check`, `check-wheel-contents`
and `abi3audit`. Run by `make dist` (`pytest -m release`); an empty dist/ fails."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tools.release.targets import PYTHONS, build_pythons

ROOT = Path(__file__).resolve().parents[2]
DIST = ROOT / "dist"
BIN = Path(sys.executable).parent
FLOOR = (2, 17)  # the newest glibc a released wheel may need: manylinux2014 (CentOS 7), as the README promises

pytestmark = pytest.mark.release


def wheels() -> list[Path]:
    found = sorted(DIST.glob("cyfes-*.whl"))
    if not found:
        pytest.fail(f"no wheels in {DIST}: run `make dist` first")
    return found


def tool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / args[0]), *args[1:]], capture_output=True, text=True, timeout=600, check=False)


def test_one_wheel_per_build_python_and_an_sdist():
    tags = {w.name.split("-")[2] + "-" + w.name.split("-")[3] for w in wheels()}
    want = {p.wheel_tag for p in PYTHONS if p.version in build_pythons()}
    assert want <= tags, f"missing wheels: {sorted(want - tags)}"
    assert list(DIST.glob("cyfes-*.tar.gz")), "no sdist in dist/"


def test_glibc_floor_of_each_wheel(run_release):
    for wheel in wheels():
        out = run_release("check", "--json", str(wheel))
        assert out.returncode == 0, out.stdout + out.stderr
        (report,) = json.loads(out.stdout)
        floor = tuple(int(x) for x in report["glibc"]["glibc"].split("."))
        assert floor <= FLOOR, f"{wheel.name} needs glibc {report['glibc']}"
        # auditwheel's tag, computed from the same symbol versions, must not claim an older glibc than they need
        tag = [int(x) for x in wheel.name.split("manylinux_")[1].split("_")[:2]]
        assert tuple(tag) <= FLOOR and tuple(tag) >= floor[:2], (wheel.name, report["glibc"])
        assert not [p for p in report["findings"] if p["severity"] == "problem"]


def test_twine_check_passes_on_every_artifact():
    artifacts = [str(p) for p in wheels() + sorted(DIST.glob("cyfes-*.tar.gz"))]
    out = tool("twine", "check", "--strict", *artifacts)
    assert out.returncode == 0, out.stdout + out.stderr


def test_check_wheel_contents_passes():
    # W009 (more than one top-level library) and W010 (a top-level library with no .py files) are what every
    # auditwheel-repaired wheel gets for its `cyfes.libs/` folder of grafted libraries; everything else counts.
    out = tool("check-wheel-contents", "--ignore", "W009,W010", *map(str, wheels()))
    assert out.returncode == 0, out.stdout + out.stderr


def test_abi3_wheel_uses_only_the_limited_api():
    abi3 = [w for w in wheels() if "-abi3-" in w.name]
    assert abi3, "no abi3 wheel in dist/"
    out = tool("abi3audit", "--strict", "--report", *map(str, abi3))
    assert out.returncode == 0, out.stdout + out.stderr
    report = json.loads(out.stdout)
    objects = [so for spec in report["specs"].values() for so in spec["wheel"]]
    assert {so["name"] for so in objects} >= {"_cpu.abi3.so"}
    for so in objects:
        r = so["result"]
        assert r["is_abi3"] and r["is_abi3_baseline_compatible"] and not r["non_abi3_symbols"], so
        assert r["computed"] == r["baseline"] == "3.11" and not r["future_abi3_objects"], so
