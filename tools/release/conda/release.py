"""The conda half of a release: .conda packages per Python and variant, indexed, verified, as rows of the table.

Per buildable variant (variants.py) reuse or build a raw wheel per Python, package each (package.py), index the
channel, verify each package in a fresh prefix (verify/prefix.py), and give the release table its rows."""
from __future__ import annotations

import json
from pathlib import Path

from ..artifact import open_conda
from ..config import smoke_program
from ..errors import BadInputError, ReleaseError, raise_if_any
from ..report import Row, conda_row
from ..verify.smoke import InstallResult
from ..wheel.archive import read_wheel
from .meta import SUBDIR
from .package import Progress, make_channel
from .variants import Availability, CondaVariant, availability

SOURCES = ("pyproject.toml", "CMakeLists.txt", "cmake", "cuda", "src")


def shared_runtime_strategy(strategy: str) -> str:
    """Conda packages link the environment's libcudart, so they come from a shared-runtime build: the wheel
    strategies vendor and pip build one (they differ only after the raw wheel); static does not, so use vendor's."""
    return "vendor" if strategy == "static" else strategy


def newest_source(root: Path) -> float:
    paths = [root / s for s in SOURCES]
    files = [f for p in paths for f in ([p] if p.is_file() else p.rglob("*")) if f.is_file()]
    return max((f.stat().st_mtime for f in files), default=0.0)


def built_with_cuda(wheel: Path) -> bool:
    """Whether a raw wheel has the GPU backend (a CPU-only build of the same Python must not be reused)."""
    return any(n.endswith("/_build_info.py") and b'CUDA = "ON"' in m.data for n, m in read_wheel(wheel).members.items())


def conda_wheels(pythons: dict[str, str], avail: Availability, strategy: str, root: Path,
                 log: Progress, config=None) -> dict[str, Path]:
    """Python -> raw wheel of variant `avail`: the one the wheel half just built when it is of this variant's CUDA
    flavour (raw wheels are kept per flavour, build.raw_wheel_dir) and newer than every source file, else built
    now with the build step's functions (libcufes compiled once per variant)."""
    from ..wheel.build import build_cuda_library, build_wheel, raw_wheels

    from ..config import ReleaseConfig
    config = config or ReleaseConfig()  # release.yaml's build section (defaults: cyfes's)
    v = avail.variant
    strategy = shared_runtime_strategy(strategy)
    newest = newest_source(root)
    flavour = v.flavour.name if v.flavour else "cpu"
    have = {ver: w for ver, w in raw_wheels(strategy, flavour=flavour).items()
            if w.stat().st_mtime > newest and built_with_cuda(w) == (v.flavour is not None)}
    cuda_lib = None
    for version, exe in pythons.items():
        if version not in have and _abi3_for(have, version):
            have[version] = _abi3_for(have, version)
        if version in have:
            log(f"conda [{v.tag}]: reusing the raw wheel of this build: {have[version]}")
            continue
        if v.flavour is not None and cuda_lib is None:
            cuda_lib = build_cuda_library(strategy, log=log, flavour=v.flavour.name, step=config.build.library,
                                          cuda=config.cuda)
        have[version] = build_wheel(exe, version, cuda_lib, strategy, log=log, build=config.build)
    return {ver: have[ver] for ver in pythons}


def _abi3_for(have: dict[str, Path], version: str) -> Path | None:
    """A raw abi3 wheel built with an older Python serves `version` too (no rebuild per Python)."""
    key = tuple(int(x) for x in version.split("."))
    return next((w for v, w in sorted(have.items()) if "-abi3-" in w.name
                 and tuple(int(x) for x in v.split(".")) <= key), None)


def package_row(path: Path, result: InstallResult | None) -> Row:
    """A .conda's line of the release table, read from the package itself (the release and `verify` alike):
    its build and glibc floor, and the conda packages its libraries come from."""
    pkg = open_conda(path)
    index = json.loads(pkg.data("info/index.json"))
    glibc = next((c.split(">=")[1] for c in index.get("constrains", []) if c.startswith("__glibc")), "?")
    deps = sorted({link.detail for link in pkg.links() if link.kind == "dependency"})
    return conda_row(path, f"{SUBDIR} {index['build']} glibc>={glibc}", deps, result)


def skipped_row(avail: Availability, result: str = "") -> Row:
    """The visible line for a variant this machine cannot build (or whose build failed: `result`)."""
    return Row(f"cyfes conda variant {avail.variant.tag}", f"{SUBDIR} *_{avail.variant.tag}_*",
               result=result or f"SKIPPED: {avail.reason}")


def chosen_variants(config) -> list[Availability]:
    """release.yaml's conda.variants (each must be buildable here), else every variant this machine can build
    (cpu always; CUDA ones when cuda.enabled and their nvcc is found), the others listed as skipped."""
    explicit = tuple(config.conda.variants)
    avail = availability(explicit, fetch=True)
    if not config.cuda.enabled and not explicit:
        avail = [a if a.variant.cuda is None else Availability(a.variant, None, "cuda.enabled is false in "
                                                               "release.yaml") for a in avail]
    missing = [a for a in avail if explicit and not a.buildable]
    raise_if_any([f"conda variant {a.variant.tag} (listed in conda.variants): {a.reason}" for a in missing],
                 ReleaseError)
    return avail


def release(config, pythons: dict[str, str], progress: Progress) -> tuple[list[Row], bool]:
    """The conda half of `python -m tools.release [conda]`: one package per Python ("X.Y" -> interpreter) and
    buildable variant in release.yaml's conda.channel, indexed, each verified in a fresh prefix when
    verify.enabled; variants this machine cannot build get a SKIPPED row naming why."""
    from ..verify.prefix import FIXTURE_CHANNEL, NUMPY_CACHE, prepare_fixtures, verify_packages

    root = Path(".")
    avail = chosen_variants(config)
    wheels: list[Path] = []
    variants: list[CondaVariant | None] = []
    versions: list[str] = []
    failed: list[Row] = []
    for a in avail:
        if not a.buildable:
            progress(f"conda [{a.variant.tag}]: SKIPPED: {a.reason}")
            continue
        progress(f"conda [{a.variant.tag}]: " + (f"nvcc {a.compiler.nvcc}" + (f", host compiler {a.compiler.host_cxx}"
                 if a.compiler.host_cxx else "") if a.compiler else "CPU only (CYFES_CUDA=OFF)"))
        try:
            built_wheels = conda_wheels(pythons, a, config.cuda.strategy, root, progress, config)
        except BadInputError:
            raise
        except ReleaseError as exc:  # one variant's compiler failing must not hide the others
            progress(f"conda [{a.variant.tag}] failed: {exc}")
            failed.append(skipped_row(a, "FAILED: " + str(exc).strip().splitlines()[0]))
            continue
        wheels += built_wheels.values()
        versions += built_wheels.keys()
        variants += [a.variant] * len(built_wheels)
    channel = Path(config.conda.channel)
    built = make_channel(wheels, channel, config.conda.build_number, tuple(config.conda.depends), root, progress,
                         variants=variants, pythons=versions, home=config.conda.home)
    results = {}
    if config.verify.enabled and built:
        progress(f"conda: fixture channel (TEST FIXTURES, never published) in {FIXTURE_CHANNEL}")
        fixtures = prepare_fixtures([p.path for p in built], FIXTURE_CHANNEL)
        for pkg in built:
            progress(f"conda: verify {pkg.path.name}: py-rattler install into a fresh prefix, smoke under LD_DEBUG")
            (results[pkg.path.name],) = verify_packages([pkg.path], channel, fixtures, NUMPY_CACHE,
                                                        code=smoke_program(config))
    rows = [package_row(p.path, results.get(p.path.name)) for p in built] + failed
    rows += [skipped_row(a) for a in avail if not a.buildable]
    return rows, not failed and all(r.ok for r in results.values())
