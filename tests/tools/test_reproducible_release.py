"""The released artifacts do not depend on the directory they were built in: a second copy of this tree at another
path, built with the same SOURCE_DATE_EPOCH, gives the abi3 wheel, the sdist and the cuda118 conda package of
Python 3.12 byte for byte as `make dist` put them in dist/ (make dist sets SOURCE_DATE_EPOCH to the commit time).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def copy_tree(dest: Path) -> None:
    """The files git knows of, as they are in the working tree (uncommitted changes included)."""
    names = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, names):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name, follow_symlinks=False)


@pytest.mark.release
def test_artifacts_are_the_same_from_another_directory(tmp_path: Path) -> None:
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if not epoch:
        pytest.fail("SOURCE_DATE_EPOCH is not set: run through `make dist`, which sets it for the release and its tests")
    other = tmp_path / "somewhere" / "else" / "cyfes"
    copy_tree(other)
    config = yaml.safe_load((ROOT / "release.yaml").read_text())
    config.update(python=["3.11"], verify={"enabled": False})
    config["conda"].update(python=["3.12"], variants=["cuda13x"])  # one that make dist builds by default
    (other / "again.yaml").write_text(yaml.safe_dump(config))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    proc = subprocess.run([sys.executable, "-m", "tools.release", "--config", "again.yaml"], cwd=other, env=env,
                          capture_output=True, text=True, timeout=3600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    built = sorted(p for p in (other / "dist").rglob("*") if p.suffix in (".whl", ".gz", ".conda"))
    assert {p.suffix for p in built} == {".whl", ".gz", ".conda"}, built
    for path in built:
        twin = ROOT / "dist" / path.relative_to(other / "dist")
        assert twin.is_file(), f"{twin} is missing: build dist/ first"
        assert path.read_bytes() == twin.read_bytes(), f"{path.name} differs between {ROOT} and {other}"
