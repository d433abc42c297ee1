"""`verify PKG.conda`: install a .conda into a fresh conda prefix with py-rattler and run the smoke program there.

The fixture channel (conda/fixtures.py) stands in for conda-forge; the one smoke program (smoke.py) runs with the
host's matching Python on that prefix's site-packages under the loader's trace (smoke.run_smoke), to prove from the trace that libcudart and libgomp were loaded from
$PREFIX/lib and nothing from a system CUDA installation. The answer is verify's `InstallResult`, scheme "conda".
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

from ..conda.archive import read_conda
from ..conda.channel import index_channel, install, repodata, solve
from ..conda.fixtures import HOST_PROVIDED, build_fixture_channel, fixtures
from ..conda.info import python_of, read_package_info
from ..conda.meta import SUBDIR
from ..elf.loader import SYSTEM_LIBRARIES
from ..elf.model import ELF_MAGIC
from ..errors import Problem, VerifyError
from ..layouts import layout
from ..program import SMOKE, SmokeProgram, as_program
from ..toolchain.pythons import which_python
from .schemes import WHEELHOUSE, clean_env, fill_wheelhouse
from .smoke import CPU_TOLERANCE, SMOKE_TIMEOUT_S, InstallResult, judge_run, run_smoke

FIXTURE_CHANNEL = Path("build/release/conda-fixtures")
"""Where the release writes the TEST FIXTURE channel: never under dist/, never published."""
NUMPY_CACHE = Path("build/release/conda-numpy")
# What must come from the environment's $PREFIX/lib, not from the host.
ENV_LIBRARIES = ("libcudart.so", "libgomp.so")
HOST_CUDA_MARKERS = ("/usr/local/cuda", "/opt/cuda", "/usr/lib/cuda")
def package_index(path: Path) -> dict:
    """index.json, after conda/info.py checked it (name, version and build name files here) and paths.json."""
    entries = read_conda(path)
    python_of(path.name, read_package_info(path.name, entries))
    return json.loads(entries["info/index.json"].data)


def host_python(python: str, modules: tuple[str, ...] = ()) -> Path:
    """The host's CPython X.Y to run the smoke test with: the interpreter running this tool when it is X.Y, has
    numpy (the GPU host's system Python) and imports none of the package's `modules` itself, else
    toolchain.pythons.which_python (pyenv, then PATH). A copy of the package in the tool's own environment (a
    developer's editable install) would shadow the prefix's: its import hook comes before PYTHONPATH."""
    here = Path(sys.executable)
    if f"{sys.version_info[0]}.{sys.version_info[1]}" == python and has_numpy(here) and not finds_any(here, modules):
        return here
    found = which_python(python)
    if found is None:
        raise VerifyError([f"no CPython {python} on PATH or in pyenv to verify the conda package with"])
    return Path(found)


def has_numpy(python: Path) -> bool:
    return subprocess.run([str(python), "-s", "-c", "import numpy"], capture_output=True).returncode == 0


def finds_any(python: Path, modules: tuple[str, ...]) -> bool:
    """Whether `python` (without the user site, as the smoke runs) finds any of these top-level modules."""
    if not modules:
        return False
    code = "import importlib.util as u, sys; sys.exit(any(u.find_spec(m) for m in sys.argv[1:]))"
    return subprocess.run([str(python), "-s", "-c", code, *modules], capture_output=True).returncode != 0


def package_modules(pkg: Path) -> tuple[str, ...]:
    """The top-level modules a .conda installs into site-packages (cyfes: "cyfes"), dist-info and .pth aside."""
    names = set()
    for name in read_conda(pkg):
        m = re.match(r"lib/python3\.\d+/site-packages/([^/]+?)(?:\.py)?(/|$)", name)
        if m and not m.group(1).endswith((".dist-info", ".egg-info", ".pth", ".libs")) and m.group(1).isidentifier():
            names.add(m.group(1))
    return tuple(sorted(names))


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
    return str(target.resolve())  # the smoke runs in its own directory: PYTHONPATH must not be relative


def trace_problems(label: str, loaded: dict[str, str], prefix: Path, cuda: bool,
                   openmp: bool = True) -> list[Problem]:
    """The environment's runtimes were loaded from $PREFIX/lib: libcudart for a CUDA package, libgomp for one that
    depends on the OpenMP runtime (a package without OpenMP is not asked for it)."""
    libdir = os.path.realpath(prefix / "lib")
    problems = []
    for lib in ENV_LIBRARIES:
        if (lib == "libcudart.so" and not cuda) or (lib == "libgomp.so" and not openmp):
            continue
        hits = {n: p for n, p in loaded.items() if n.startswith(lib)}
        if not hits:
            problems.append(Problem(label, lib, "never loaded (the loader trace has no `calling init` for it)"))
        problems += [Problem(label, n, f"loaded from {p}, not from $PREFIX/lib ({libdir})")
                     for n, p in hits.items() if os.path.dirname(p) != libdir]
    problems += [Problem(label, n, f"loaded from the host's CUDA installation: {p}")
                 for n, p in loaded.items() if p.startswith(HOST_CUDA_MARKERS)]
    return problems


def smoke_env(prefix: Path, site: str, extra_path: str | None) -> dict[str, str]:
    """Only the prefix's site-packages (and numpy's directory for a host Python without it) on the path."""
    env = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root"), "PYTHONNOUSERSITE": "1",
           "PYTHONPATH": ":".join(p for p in (str(prefix / site), extra_path) if p)}
    if "CUDA_VISIBLE_DEVICES" in os.environ:
        env["CUDA_VISIBLE_DEVICES"] = os.environ["CUDA_VISIBLE_DEVICES"]
    return env


def check_entry_point(python: Path, prefix: Path, name: str, site: str, extra: str | None) -> tuple[str, list[Problem]]:
    """bin/<name> must have had the prefix placeholder replaced by the installer, and must run."""
    script = prefix / "bin" / name
    first = script.read_text().splitlines()[0]
    if first != f"#!{prefix}/bin/python":
        return first, [Problem(str(script), "", f"shebang {first!r} does not name this prefix's python")]
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": ":".join(p for p in (str(prefix / site), extra) if p)}
    proc = subprocess.run([str(python), str(script), "--help"], env=env, capture_output=True, text=True,
                          timeout=SMOKE_TIMEOUT_S)
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
    targets = [(*package_target(package_index(p)), package_modules(p)) for p in pkgs]
    pythons = {py: python_full_version(host_python(py, mods)) for py, _, mods in targets}
    cudas = sorted({c for _, c, _ in targets if c})
    wheel = cudart_wheel or {c: cudart_wheel_for(c) for c in cudas}
    shutil.rmtree(out, ignore_errors=True)
    build_fixture_channel(out, fixtures(wheel, pythons, cudas))
    return out


def payload_elf_names(pkg: Path) -> set[str]:
    """File names of the package's own ELF files: where the trace's closure starts."""
    return {os.path.basename(n) for n, e in read_conda(pkg).items()
            if not n.startswith("info/") and e.link is None and e.data[:4] == ELF_MAGIC}


def verify_package(pkg: Path, channel: Path, fixture_channel: Path, work: Path, cache: Path,
                   code: str | SmokeProgram = SMOKE) -> InstallResult:
    """Install `pkg` (which lives in `channel`) into a fresh prefix under `work` and run the smoke program there."""
    start = time.monotonic()
    index = package_index(pkg)
    python, cuda = package_target(index)
    interpreter = host_python(python, package_modules(pkg))
    prefix = work / "prefix"
    records = solve([channel, fixture_channel], [f"{index['name']} =={index['version']} {index['build']}"], cuda)
    install(records, prefix, work / "pkgs")
    site = layout("conda", python).site_packages
    result = InstallResult(pkg.name, "conda", python, root=str(prefix))
    extra = numpy_path(interpreter, cache)
    run_dir = work / "cwd"
    run_dir.mkdir(parents=True, exist_ok=True)
    rc, out, trace = run_smoke(str(interpreter), code, smoke_env(prefix, site, extra), run_dir)
    program = as_program(code)
    judge_run(result, rc, out, trace, payload_elf_names(pkg), prefix, SYSTEM_LIBRARIES | frozenset(HOST_PROVIDED),
              program.mark)
    if rc == 0:
        if program.is_default:  # cyfes's report; a project's own program is judged by its exit code and trace
            result.fail(*smoke_problems(pkg.name, result.smoke, prefix))
        openmp = any(d.split()[0] in ("libgomp", "_openmp_mutex") for d in index.get("depends", []))
        result.fail(*trace_problems(pkg.name, result.loaded, prefix, cuda is not None, openmp))
        if program.entry_point:
            result.entry_point, problems = check_entry_point(interpreter, prefix, program.entry_point, site, extra)
            result.fail(*problems)
    result.seconds = time.monotonic() - start
    return result


def smoke_problems(label: str, smoke: dict, prefix: Path) -> list[Problem]:
    """The smoke report must exist, match numpy, and name a cyfes imported from the prefix."""
    if not smoke:
        return [Problem(label, "smoke test", "printed no report line")]
    problems = []
    if smoke["cpu_vs_numpy"] > CPU_TOLERANCE:
        problems.append(Problem(label, "smoke test", f"CPU FES differs from numpy by {smoke['cpu_vs_numpy']}"))
    if not os.path.realpath(smoke["cyfes"]).startswith(os.path.realpath(prefix) + "/"):
        problems.append(Problem(label, "smoke test", f"imported cyfes from {smoke['cyfes']}, not from the prefix"))
    return problems


def verify_packages(pkgs: list[Path], channel: Path, fixture_channel: Path, cache: Path,
                    work: Path | None = None, code: str | SmokeProgram = SMOKE) -> list[InstallResult]:
    """Verify each package in its own fresh prefix; `cache` keeps numpy installs for host Pythons between runs."""
    with tempfile.TemporaryDirectory(prefix="cyfes-conda-verify-") as tmp:
        base = work or Path(tmp)
        return [verify_package(p, channel, fixture_channel, base / p.stem, cache, code) for p in pkgs]


def fixtures_cover(channel: Path, python: str, cuda: str | None) -> bool:
    """Whether an existing fixture channel has the stand-ins a package of (python, cuda) needs."""
    try:
        records = repodata(channel)["packages.conda"].values()
    except (OSError, ValueError, KeyError):
        return False
    have = {(r["name"], ".".join(r["version"].split(".")[:2])) for r in records}
    runtime = "cuda-version" if cuda is None or int(cuda.split(".")[0]) >= 12 else "cudatoolkit"
    return ("python", python) in have and (cuda is None or (runtime, cuda) in have)


def verify_artifact(pkg: Path, log: Callable[[str], None] = lambda s: None,
                    code: str | SmokeProgram = SMOKE) -> InstallResult:
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
        return verify_package(pkg, channel, fixtures, Path(tmp) / "work", NUMPY_CACHE, code)
