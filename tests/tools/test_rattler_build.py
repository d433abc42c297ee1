"""recipe/recipe.yaml built by rattler-build itself (py-rattler-build) against a local channel of TEST FIXTURE
stand-ins (tests/tools/rattler_fixtures.py): the recipe's build.sh really runs pip/scikit-build-core/CMake/gcc,
rattler-build relinks the extension and runs its overlinking check (the recipe makes overlinking an error).
The package must pass `python -m tools.release check`, install with py-rattler, and compute a FES that matches
a float64 numpy reference with libgomp (and libcudart) loaded from $PREFIX/lib. The CPU variant, and the CUDA 13.0
variant where this machine has nvcc 13.0, for the Python running the tests."""
from __future__ import annotations

import json
import os
import posixpath
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.tools.rattler_fixtures import build_channel, build_recipe, glibc_version, tool_version, variant_config
from tests.tools.test_conda_package import members
from tools.release.conda import channel as conda_channel
from tools.release.conda.archive import read_conda
from tools.release.conda.variants import find_compiler, variant_of_cuda
from tools.release.elf.model import read_elf
from tools.release.verify.trace import LoaderTrace

pytestmark = pytest.mark.release

ROOT = Path(__file__).resolve().parents[2]
PY = f"{sys.version_info.major}.{sys.version_info.minor}"
PYTAG = PY.replace(".", "")
SITE = f"lib/python{PY}/site-packages"
SMOKE = r"""
import json, sys, numpy as np, cyfes
if sys.argv[1] == "cuda":
    import cyfes.engine._gpu  # loads libcufes and libcudart: their RPATHs are what is tested
rng = np.random.default_rng(7)
s = rng.normal(size=(1500, 2)); bias = rng.uniform(0.0, 3.0, 1500)
res = cyfes.fes(s, sigma=0.3, bias=bias, temperature=300, bins=(18, 15), device="cpu", tolerance=0)
pts = res.points()
logw = bias / res.kT
e = -0.5 * (((pts[:, None, :] - s[None, :, :]) / 0.3) ** 2).sum(-1) + logw[None, :]
m = e.max(1)
ref = -res.kT * (m + np.log(np.exp(e - m[:, None]).sum(1)))
ref -= ref.min()
print("SMOKE " + json.dumps({"max_diff": float(np.abs(res.values.ravel() - ref).max()), "span": float(ref.max()),
                            "cyfes": cyfes.__file__, "backend": res.backend}))
"""


@pytest.fixture(scope="module", params=["None", "13.0"], ids=["cpu", "cuda130"])
def built(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    cuda = None if request.param == "None" else request.param
    if cuda and find_compiler(variant_of_cuda(cuda)).compiler is None:
        pytest.skip(f"CUDA {cuda} variant: {find_compiler(variant_of_cuda(cuda)).reason}")
    work = tmp_path_factory.mktemp(f"rattler-{request.param}")
    stand_ins = work / "stand-ins"
    build_channel(stand_ins, Path(sys.executable), ROOT / "build/conda/rattler-wheels", cuda)
    variants = variant_config(ROOT / "recipe/conda_build_config.yaml", work / "variants.yaml", PY, request.param)
    return build_recipe(ROOT / "recipe/recipe.yaml", variants, stand_ins, work / "out"), stand_ins, cuda


def test_index_json_depends(built) -> None:
    build, _, cuda = built
    index = json.loads(members(build.package)["info/index.json"])
    gcc = tool_version(["gcc", "-dumpfullversion"]).split(".")[0]
    tag = "cpu" if cuda is None else "cuda" + cuda.replace(".", "")
    assert re.fullmatch(rf"{tag}_py{PYTAG}h[0-9a-f]{{7}}_{0 if cuda is None else 200}", index["build"])
    cuda_run = set() if cuda is None else {"__cuda", "cuda-version >=13.0,<14", "cuda-cudart >=13.0,<14.0a0"}
    assert set(index["depends"]) == {
        "python", "numpy >=1.21", f"python_abi {PY}.* *_cp{PYTAG}",  # the run_export of the python stand-in
        "libgomp", "_openmp_mutex >=4.5",  # recipe run
        f"libgcc >={gcc}", f"libstdcxx >={gcc}", f"__glibc >={glibc_version()},<3.0.a0"} | cuda_run
    assert index.get("constrains", []) == ([] if cuda is None else ["__cuda >=13"])


def test_rpaths_are_prefix_relative(built, tmp_path: Path) -> None:
    """rattler-build's relinking: each ELF's run path is $ORIGIN-relative and reaches $PREFIX/lib."""
    build, _, cuda = built
    elves = {n: e for n, e in read_conda(build.package).items() if e.data[:4] == b"\x7fELF"}
    # From 3.11 the build is the Limited-API one (pyproject's wheel.py-api), whose modules end in .abi3.so.
    ext = "abi3" if tuple(int(x) for x in PY.split(".")) >= (3, 11) else f"cpython-{PYTAG}-x86_64-linux-gnu"
    # one extension per Cython source of the tree, where the source lies (_gpu only in a CUDA build)
    sources = [p.relative_to(ROOT / "src").with_suffix("") for p in (ROOT / "src/cyfes").rglob("*.pyx")]
    expected = {f"{SITE}/{m.as_posix()}.{ext}.so" for m in sources if cuda or m.name != "_gpu"}
    if cuda:
        expected.add(f"{SITE}/cyfes/engine/libcufes.so")
    assert set(elves) == expected
    for name, entry in elves.items():
        path = tmp_path / "elf.so"
        path.write_bytes(entry.data)
        elf = read_elf(path, label=name)
        entries = elf.rpath + elf.runpath
        assert entries and all(e.startswith("$ORIGIN") for e in entries), entries
        assert "lib" in {posixpath.normpath(posixpath.join(posixpath.dirname(name), e[len("$ORIGIN/"):]))
                         for e in entries if e.startswith("$ORIGIN/")}
        assert "libgomp.so.1" in elf.needed or "libcudart.so.13" in elf.needed or "libcufes.so" in elf.needed


def test_linking_check_ran_and_attributed_libgomp(built) -> None:
    build, _, cuda = built
    text = "\n".join(build.logs)
    assert "links against" in text, text[-3000:]
    assert "libgomp.so.1 (libgomp)" in text
    if cuda:
        assert "libcudart.so.13 (cuda-cudart)" in text
    assert "Overlinking" not in text


def test_our_check_passes(built) -> None:
    build, _, _ = built
    proc = subprocess.run([sys.executable, "-m", "tools.release", "check", str(build.package)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "OK" in proc.stdout


def test_installs_and_computes_with_the_prefix_libgomp(built, tmp_path: Path) -> None:
    build, stand_ins, cuda = built
    conda_channel.index_channel(build.channel)
    index = json.loads(members(build.package)["info/index.json"])
    # a driverless host stands in for __cuda of the package's CUDA, as conda-forge's CPU test runners do
    records = conda_channel.solve([build.channel, stand_ins], [f"cyfes =={index['version']} {index['build']}"], cuda)
    prefix = tmp_path / "prefix"
    conda_channel.install(records, prefix, tmp_path / "pkgs")
    proc = subprocess.run([str(prefix / "bin/python"), "-s", "-c", SMOKE, "cuda" if cuda else "cpu"],
                          capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "LD_DEBUG": "libs", "HOME": str(tmp_path)}, timeout=300)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("SMOKE ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    smoke = json.loads(lines[-1][6:])
    assert smoke["max_diff"] < 1e-9 * max(1.0, smoke["span"]) and smoke["span"] > 1.0
    assert os.path.realpath(smoke["cyfes"]).startswith(os.path.realpath(prefix) + "/")
    for lib in ["libgomp.so.1"] + (["libcudart.so.13"] if cuda else []):
        found = [p for p in LoaderTrace.parse(proc.stderr).loaded if os.path.basename(p) == lib]
        assert found and os.path.dirname(os.path.realpath(found[0])) == os.path.realpath(prefix / "lib"), lib
    script = prefix / "bin/cyfes"
    # pip writes a /bin/sh trampoline when the build prefix is too long for a shebang; the installer put this
    # prefix's python into it
    assert f"{prefix}/bin/python" in script.read_text()
    assert subprocess.run([str(script), "--help"], capture_output=True, timeout=120).returncode == 0
