"""The real cyfes conda package (slow): a raw wheel of this tree for the venv's Python (shared CUDA runtime when a
CUDA compiler is found), packaged, installed with py-rattler into a fresh prefix next to the fixture channel, then
imported, asked for its backends and used for a small FES under the loader's trace."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.tools.test_conda_package import cudart_wheel, members
from tools.release.conda.package import make_channel
from tools.release.verify.prefix import prepare_fixtures, verify_packages

ROOT = Path(__file__).resolve().parents[2]
PY = f"{sys.version_info.major}.{sys.version_info.minor}"
BUILD_DIR = ROOT / "build/conda/test-wheel"  # kept between runs: CMake rebuilds only what changed

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def channel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("raw")
    env = dict(os.environ, CYFES_CUDA_RUNTIME="Shared")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out),
                    f"-Cbuild-dir={BUILD_DIR}", str(ROOT)], check=True, env=env, cwd=ROOT)
    (wheel,) = out.glob("cyfes-*.whl")
    ch = tmp_path_factory.mktemp("conda") / "channel"
    make_channel([wheel], ch, root=ROOT, pythons=[PY])  # the venv's Python: the wheel may be abi3
    return ch


def test_real_package_links_only_declared_libraries(channel: Path) -> None:
    (pkg,) = (channel / "linux-64").glob("cyfes-*.conda")
    got = members(pkg)
    index = json.loads(got["info/index.json"])
    # conda-forge's build string: the variant's tag, then pyXY and the variant's hash (cuda130_py312h1a2b3c4_200)
    assert index["name"] == "cyfes" and re.fullmatch(rf"(cpu|cuda\d+)_py{PY.replace('.', '')}h[0-9a-f]{{7}}_\d+",
                                                     index["build"])
    assert f"lib/python{PY}/site-packages/cyfes/__init__.py" in got and "bin/cyfes" in got
    assert not [n for n in got if "libcudart" in n or "libgomp" in n]
    if "cuda" in index["build"]:
        assert {"cuda-cudart", "cuda-version", "libstdcxx", "libgomp"} <= {d.split()[0] for d in index["depends"]}


def test_real_package_installs_and_loads_from_the_prefix(channel: Path, tmp_path: Path) -> None:
    (pkg,) = (channel / "linux-64").glob("cyfes-*.conda")
    fixture_channel = prepare_fixtures([pkg], tmp_path / "fixtures", cudart_wheel())
    (result,) = verify_packages([pkg], channel, fixture_channel, ROOT / "build/conda/cache", tmp_path)
    assert result.ok, result.problems
    lib = os.path.realpath(Path(result.root) / "lib")
    assert os.path.dirname(result.loaded["libgomp.so.1"]) == lib
    if "cuda" in pkg.name:
        assert os.path.dirname(result.loaded["libcudart.so.13"]) == lib
        assert result.smoke["backends"]["cuda"]["built"] is True
    assert not [p for p in result.loaded.values() if p.startswith("/usr/local/cuda")]
    assert result.smoke["cpu_vs_numpy"] < 1e-6
    assert result.entry_point == f"#!{result.root}/bin/python"


def test_tool_and_recipe_declare_the_same_run_requirements(channel: Path) -> None:
    """The package the tool makes and the recipe's variant of the same CUDA agree on every run requirement
    (the tool adds what conda-build's run_exports would: python_abi, libgcc, libstdcxx, libgomp)."""
    from tests.tools.test_recipe import HASH, render_meta, spec_set, variants

    (pkg,) = (channel / "linux-64").glob("cyfes-*.conda")
    index = json.loads(members(pkg)["info/index.json"])
    cuda = next((d.split(">=")[1].split(",")[0] for d in index["depends"] if d.startswith("cuda-version")), "None")
    (variant,) = [v for v in variants() if v["cuda_compiler_version"] == cuda]
    recipe_run = spec_set(render_meta(variant, PY)["requirements"]["run"]) - {"python"}
    tool = spec_set(index["depends"])
    # an unversioned recipe spec (libgomp) is met by the tool's versioned one (libgomp >=12)
    assert {s for s in recipe_run if s not in tool and (" " in s or s not in {t.split()[0] for t in tool})} == set()
    # the same build string but for the hash, which the render leaves as a placeholder (test_conda_recipe_render
    # checks the real one)
    assert re.sub(r"h[0-9a-f]{7}_", f"h{HASH}_", index["build"]) == render_meta(variant, PY)["build"]["string"]
    assert spec_set(render_meta(variant, PY)["requirements"].get("run_constrained", [])) <= spec_set(index["constrains"])
