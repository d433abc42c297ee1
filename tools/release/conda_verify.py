"""Verify a cyfes `.conda`: install it with py-rattler into a fresh prefix (with the fixture channel standing in
for conda-forge), run the host's matching Python on that prefix's site-packages under the loader's trace
(LD_DEBUG=libs), import cyfes, call backends(), compute a small FES (checked against numpy), and prove from the
trace that libcudart and libgomp were loaded from $PREFIX/lib and nothing from a system CUDA installation.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .conda_archive import read_conda
from .conda_info import python_of, read_package_info
from .conda_channel import index_channel, install, repodata, solve
from .conda_meta import SUBDIR
from .conda_fixtures import build_fixture_channel, fixtures
from .errors import Problem, VerifyError
from .interpreters import which_python
from .verify import SMOKE_TIMEOUT_S, WHEELHOUSE, clean_env, fill_wheelhouse, loaded_objects

FIXTURE_CHANNEL = Path("build/release/conda-fixtures")
"""Where the release writes the TEST FIXTURE channel: never under dist/, never published."""
NUMPY_CACHE = Path("build/release/conda-numpy")
# What must come from the environment's $PREFIX/lib, not from the host.
ENV_LIBRARIES = ("libcudart.so", "libgomp.so")
HOST_CUDA_MARKERS = ("/usr/local/cuda", "/opt/cuda", "/usr/lib/cuda")
SMOKE = r"""
import json, math, sys
import numpy as np
import cyfes
backends = cyfes.backends()
rng = np.random.default_rng(0)
samples = rng.normal(size=(2000, 2))
res = cyfes.fes(samples, sigma=0.3, bins=24, device="cpu")
# independent float64 reference: F = -kT log sum_j exp(-|x - s_j|^2 / 2 sigma^2), shifted to min 0
pts = res.points()
d2 = (((pts[:, None, :] - samples[None, :, :]) / 0.3) ** 2).sum(-1)
m = (-0.5 * d2).max(1)
ref = -res.kT * (m + np.log(np.exp(-0.5 * d2 - m[:, None]).sum(1)))
ref -= ref.min()
out = {"cyfes": cyfes.__file__, "numpy": np.__version__, "backends": backends,
       "cpu_vs_numpy": float(np.max(np.abs(res.values.ravel() - ref)))}
if backends["cuda"]["usable"]:
    gpu = cyfes.fes(samples, sigma=0.3, bins=24, device="gpu")
    out["gpu_vs_cpu"] = float(np.max(np.abs(gpu.values - res.values)))
print("CYFES-SMOKE " + json.dumps(out, default=str))
"""


@dataclass
class CondaVerifyResult:
    package: str
    prefix: str
    loaded: dict[str, str] = field(default_factory=dict)
    """SONAME (file name) -> path the loader opened it from."""
    smoke: dict = field(default_factory=dict)
    entry_point: str = ""
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def package_index(path: Path) -> dict:
    """index.json, after conda_info checked it (name, version and build name files here) and paths.json."""
    entries = read_conda(path)
    python_of(path.name, read_package_info(path.name, entries))
    return json.loads(entries["info/index.json"].data)


def host_python(python: str) -> Path:
    """The host's CPython X.Y to run the smoke test with: the interpreter running this tool when it is X.Y and
    has numpy (the GPU host's system Python), else interpreters.which_python (pyenv, then PATH)."""
    here = Path(sys.executable)
    if f"{sys.version_info[0]}.{sys.version_info[1]}" == python and has_numpy(here):
        return here
    found = which_python(python)
    if found is None:
        raise VerifyError([f"no CPython {python} on PATH or in pyenv to verify the conda package with"])
    return Path(found)


def has_numpy(python: Path) -> bool:
    return subprocess.run([str(python), "-s", "-c", "import numpy"], capture_output=True).returncode == 0


def python_full_version(python: Path) -> str:
    return subprocess.run([str(python), "-c", "import platform; print(platform.python_version())"],
                          capture_output=True, text=True, check=True).stdout.strip()


def numpy_path(python: Path, cache: Path) -> str | None:
    """numpy for the host Python: its own if importable (the GPU host's), else a pip --target directory filled
    from the release wheelhouse (verify.fill_wheelhouse), so reruns work offline."""
    if has_numpy(python):
        return None
    version = python_full_version(python)
    target = cache / f"numpy-{version}"
    if not (target / "numpy").is_dir():
        xy = ".".join(version.split(".")[:2])
        fill_wheelhouse(["numpy>=1.21"], xy, WHEELHOUSE)
        proc = subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-index", "--find-links",
                               str(WHEELHOUSE), "--target", str(target), "numpy>=1.21"],
                              capture_output=True, text=True, env=clean_env())
        if proc.returncode != 0:
            raise VerifyError([f"pip could not install numpy for {python}: {proc.stderr.strip()[-400:]}"])
    return str(target)


def loaded_libraries(trace: str) -> dict[str, str]:
    """file name -> real path of each object the loader initialised (verify.loaded_objects reads the trace)."""
    found: dict[str, str] = {}
    for path in loaded_objects(trace):
        found.setdefault(os.path.basename(path), os.path.realpath(path))
    return found


def trace_problems(label: str, loaded: dict[str, str], prefix: Path, cuda: bool) -> list[Problem]:
    libdir = os.path.realpath(prefix / "lib")
    problems = []
    for lib in ENV_LIBRARIES:
        if lib == "libcudart.so" and not cuda:
            continue
        hits = {n: p for n, p in loaded.items() if n.startswith(lib)}
        if not hits:
            problems.append(Problem(label, lib, "never loaded (the loader trace has no `calling init` for it)"))
        problems += [Problem(label, n, f"loaded from {p}, not from $PREFIX/lib ({libdir})")
                     for n, p in hits.items() if os.path.dirname(p) != libdir]
    problems += [Problem(label, n, f"loaded from the host's CUDA installation: {p}")
                 for n, p in loaded.items() if p.startswith(HOST_CUDA_MARKERS)]
    return problems


def run_smoke(python: Path, prefix: Path, site: str, extra_path: str | None) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root"), "LD_DEBUG": "libs",
           "PYTHONPATH": ":".join(p for p in (str(prefix / site), extra_path) if p), "PYTHONNOUSERSITE": "1"}
    if "CUDA_VISIBLE_DEVICES" in os.environ:
        env["CUDA_VISIBLE_DEVICES"] = os.environ["CUDA_VISIBLE_DEVICES"]
    return subprocess.run([str(python), "-s", "-c", SMOKE], env=env, capture_output=True, text=True,
                          timeout=SMOKE_TIMEOUT_S)


def check_entry_point(python: Path, prefix: Path, name: str, site: str, extra: str | None) -> tuple[str, list[Problem]]:
    """bin/<name> must have had the prefix placeholder replaced by the installer, and must run."""
    script = prefix / "bin" / name
    first = script.read_text().splitlines()[0]
    if first != f"#!{prefix}/bin/python":
        return first, [Problem(str(script), "", f"shebang {first!r} does not name this prefix's python")]
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": ":".join(p for p in (str(prefix / site), extra) if p)}
    proc = subprocess.run([str(python), str(script), "--help"], env=env, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        return first, [Problem(str(script), "", f"`{name} --help` failed: {proc.stderr.strip()[-300:]}")]
    return first, []


def package_target(index: dict) -> tuple[str, str | None]:
    """(Python "X.Y", CUDA "major.minor" or None) of a package, from its index.json depends."""
    python = re.search(r"python >=(\d+\.\d+),", " ".join(index["depends"])).group(1)
    pins = [d for d in index["depends"] if d.startswith(("cuda-version ", "cudatoolkit "))]
    return python, pins[0].split(">=")[1].split(",")[0] if pins else None


def runtime_project(major: int) -> str:
    """NVIDIA's PyPI name of the CUDA runtime: -cu11/-cu12 suffixes up to 12, plain from 13 on."""
    return "nvidia-cuda-runtime" if major >= 13 else f"nvidia-cuda-runtime-cu{major}"


def cudart_wheel_for(cuda: str) -> Path:
    """NVIDIA's CUDA runtime wheel of CUDA major.minor `cuda`, from the release wheelhouse (PyPI once)."""
    major, minor = (int(x) for x in cuda.split(".")[:2])
    project = runtime_project(major)
    pattern = f"{project.replace('-', '_')}-{major}.{minor}.*.whl"
    if not list(WHEELHOUSE.glob(pattern)):
        fill_wheelhouse([f"{project}>={major}.{minor},<{major}.{minor + 1}"], "3.12", WHEELHOUSE)
    found = sorted(WHEELHOUSE.glob(pattern))
    if not found:
        raise VerifyError([f"no {pattern} in {WHEELHOUSE} (pip download {project} for CUDA {cuda})"])
    return found[-1]


def prepare_fixtures(pkgs: list[Path], out: Path, cudart_wheel: Path | dict[str, Path] | None = None) -> Path:
    """One fixture channel for every Python and CUDA version among `pkgs`, rebuilt from scratch in `out`."""
    targets = [package_target(package_index(p)) for p in pkgs]
    pythons = {py: python_full_version(host_python(py)) for py, _ in targets}
    cudas = sorted({c for _, c in targets if c})
    wheel = cudart_wheel or {c: cudart_wheel_for(c) for c in cudas}
    shutil.rmtree(out, ignore_errors=True)
    build_fixture_channel(out, fixtures(wheel, pythons, cudas))
    return out


def verify_package(pkg: Path, channel: Path, fixture_channel: Path, work: Path, cache: Path) -> CondaVerifyResult:
    """Install `pkg` (which lives in `channel`) into a fresh prefix under `work` and run the smoke test there."""
    index = package_index(pkg)
    python, cuda = package_target(index)
    interpreter = host_python(python)
    prefix = work / "prefix"
    records = solve([channel, fixture_channel], [f"{index['name']} =={index['version']} {index['build']}"])
    install(records, prefix, work / "pkgs")
    site = f"lib/python{python}/site-packages"
    result = CondaVerifyResult(pkg.name, str(prefix))
    extra = numpy_path(interpreter, cache)
    proc = run_smoke(interpreter, prefix, site, extra)
    result.loaded = loaded_libraries(proc.stderr)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("CYFES-SMOKE ")]
    if proc.returncode != 0 or not lines:
        tail = "\n".join(ln for ln in proc.stderr.splitlines() if not re.match(r"^\s*\d+:", ln))[-600:]
        result.problems.append(Problem(pkg.name, "smoke test", f"failed (exit {proc.returncode}): {tail}"))
        return result
    result.smoke = json.loads(lines[-1].split(" ", 1)[1])
    if result.smoke["cpu_vs_numpy"] > 1e-6:
        result.problems.append(Problem(pkg.name, "smoke test", f"CPU FES differs from numpy by {result.smoke['cpu_vs_numpy']}"))
    if not os.path.realpath(result.smoke["cyfes"]).startswith(os.path.realpath(prefix) + "/"):
        result.problems.append(Problem(pkg.name, "smoke test", f"imported cyfes from {result.smoke['cyfes']}, "
                                       "not from the prefix"))
    result.problems += trace_problems(pkg.name, result.loaded, prefix, cuda is not None)
    result.entry_point, probs = check_entry_point(interpreter, prefix, "cyfes", site, extra)
    result.problems += probs
    return result


def verify_packages(pkgs: list[Path], channel: Path, fixture_channel: Path, cache: Path,
                    work: Path | None = None) -> list[CondaVerifyResult]:
    """Verify each package in its own fresh prefix; `cache` keeps numpy installs for host Pythons between runs."""
    with tempfile.TemporaryDirectory(prefix="cyfes-conda-verify-") as tmp:
        base = work or Path(tmp)
        return [verify_package(p, channel, fixture_channel, base / p.stem, cache) for p in pkgs]


def fixtures_cover(channel: Path, python: str, cuda: str | None) -> bool:
    """Whether an existing fixture channel has the stand-ins a package of (python, cuda) needs."""
    try:
        records = repodata(channel)["packages.conda"].values()
    except (OSError, ValueError, KeyError):
        return False
    have = {(r["name"], ".".join(r["version"].split(".")[:2])) for r in records}
    runtime = "cuda-version" if cuda is None or int(cuda.split(".")[0]) >= 12 else "cudatoolkit"
    return ("python", python) in have and (cuda is None or (runtime, cuda) in have)


def verify_artifact(pkg: Path, log: Callable[[str], None] = lambda s: None) -> CondaVerifyResult:
    """`verify PKG.conda`: its own channel when it sits in one (else a temporary one), the release's fixture
    channel when it covers the package (else fixtures built now), a fresh prefix in a temp dir."""
    pkg = pkg.resolve()
    index = package_index(pkg)
    python, cuda = package_target(index)
    with tempfile.TemporaryDirectory(prefix="cyfes-conda-verify-") as tmp:
        channel = pkg.parent.parent
        if not (pkg.parent.name == SUBDIR and (pkg.parent / "repodata.json").is_file()):
            channel = Path(tmp) / "channel"
            (channel / SUBDIR).mkdir(parents=True)
            # the indexer trusts file names: name-version-build.conda
            pkg = Path(shutil.copy2(pkg, channel / SUBDIR / f"{index['name']}-{index['version']}-{index['build']}.conda"))
            index_channel(channel)
        fixtures = FIXTURE_CHANNEL
        if not fixtures_cover(FIXTURE_CHANNEL, python, cuda):
            log(f"conda: building TEST FIXTURES for Python {python}, CUDA {cuda or 'none'}")
            fixtures = prepare_fixtures([pkg], Path(tmp) / "fixtures")
        log(f"conda: verify {pkg.name}: py-rattler install from {channel} + fixtures {fixtures}, smoke under LD_DEBUG")
        return verify_package(pkg, channel, fixtures, Path(tmp) / "work", NUMPY_CACHE)
