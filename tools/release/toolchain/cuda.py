"""Find the CUDA compiler of a flavour (targets.CUDA_FLAVOURS), or fetch it into a per-user cache.

Why Debian's packages for CUDA 11.8: NVIDIA's PyPI compiler wheels for CUDA 11 and 12 hold only ptxas and libnvvm
(no nvcc), and CUDA 12/13 cannot give both Pascal/Volta SASS and an R450 driver floor. Debian bookworm's non-free
`nvidia-cuda-toolkit` 11.8.89 is a complete nvcc, and its host compiler g++-11 is in main. The .deb files are
downloaded with apt-get's own resolver but a private configuration (no root, nothing installed system-wide),
unpacked with dpkg-deb into ~/.cache/cyfes/cuda-11.8/ and rearranged into the layout of NVIDIA's toolkit (bin/,
include/, lib64/, nvvm/libdevice), which nvcc's profile and CMake's CUDA detection understand without patches.

Order of search for a flavour: $CYFES_NVCC_<FLAVOUR> (e.g. CYFES_NVCC_CU11), nvcc on PATH and the usual toolkit
places when their version matches, the cache, and last the fetch. A flavour with no fetch recipe (cu13: the system
toolkit or NVIDIA's wheels) stops with a message naming what to install.
"""
from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import ToolError
from ..targets import CUDA_FLAVOURS, CudaFlavour

Log = Callable[[str], None]

DEBIAN_MIRROR = "http://deb.debian.org/debian"
DEBIAN_KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
# Pinned so a mirror update cannot change the compiler under a release; gcc's packages follow bookworm.
CUDA_118_VERSION = "11.8.89~11.8.0-5~deb12u1"
CUDA_118_DEBS = ("nvidia-cuda-toolkit", "nvidia-cuda-dev", "libcudart11.0", "libnvvm4")
CUDA_118_UNVERSIONED = ("libcub-dev", "libthrust-dev", "libcu++-dev")
GCC_11_DEBS = ("gcc-11-base", "cpp-11", "libasan6", "libtsan0", "libgcc-11-dev", "gcc-11", "libstdc++-11-dev", "g++-11")
# What of nvidia-cuda-dev's 2.7 GB a CUDA runtime build needs; the math libraries' static archives are dropped.
KEEP_LIBS = re.compile(r"libcudart.*|libcudadevrt\.a|libculibos\.a|stubs|libnvvm.*")
TOOL_TIMEOUT_S = 3600
FETCHABLE = "cu11"
"""The flavour this module can fetch; others must be on the host."""
NVCC_PROFILE = """\
TOP = $(_HERE_)/..
NVVMIR_LIBRARY_DIR = $(TOP)/nvvm/libdevice
LD_LIBRARY_PATH += $(TOP)/lib64:
PATH += $(TOP)/nvvm/bin:$(_HERE_):
INCLUDES += "-I$(TOP)/include" $(_SPACE_)
LIBRARIES =+ $(_SPACE_) "-L$(TOP)/lib64/stubs" "-L$(TOP)/lib64"
"""


@dataclass(frozen=True)
class CudaToolchain:
    """A CUDA compiler that builds one flavour."""

    nvcc: Path
    version: str
    """nvcc's own version, e.g. "11.8.89"."""
    host_compiler: Path | None
    """The C++ compiler nvcc must use (None: nvcc's default)."""

    @property
    def library_dirs(self) -> tuple[Path, ...]:
        """Where this toolkit's libcudart lives, for tools that must find it (auditwheel grafts it from there)."""
        root = self.nvcc.resolve().parent.parent
        return tuple(d for d in (root / "lib64", root / "lib") if d.is_dir())


def nvcc_version(nvcc: Path | str) -> str | None:
    """"11.8.89" from `nvcc --version`, or None when it does not run."""
    try:
        out = subprocess.run([str(nvcc), "--version"], capture_output=True, text=True, timeout=60, check=False).stdout
    except OSError:
        return None
    m = re.search(r"release [\d.]+, V(\d+\.\d+\.\d+)", out)
    return m.group(1) if m else None


def _matches(version: str | None, flavour: CudaFlavour) -> bool:
    return version is not None and version.startswith(flavour.toolkit + ".")


def cache_dir(flavour: CudaFlavour) -> Path:
    """~/.cache/cyfes/cuda-<toolkit> (XDG_CACHE_HOME respected): outside the repository, shared by checkouts."""
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "cyfes" / f"cuda-{flavour.toolkit}"


def _host_compiler(flavour: CudaFlavour, cached: Path | None) -> Path | None:
    """nvcc 11.8 refuses gcc newer than 11: $CYFES_CUDA_HOST_COMPILER, else g++-11 (cached or on PATH), else None
    when the default g++ is old enough for nvcc; ToolError when there is no g++ this nvcc accepts."""
    if os.environ.get("CYFES_CUDA_HOST_COMPILER"):
        return Path(os.environ["CYFES_CUDA_HOST_COMPILER"])
    if flavour.host_gcc_max is None:
        return None
    name = f"g++-{flavour.host_gcc_max}"
    if cached is not None and (cached / "gcc" / "usr" / "bin" / name).is_file():
        return cached / "gcc" / "usr" / "bin" / name
    found = shutil.which(name)
    if found:
        return Path(found)
    major = default_gxx_major()
    if major is not None and major <= flavour.host_gcc_max:
        return None
    raise ToolError([f"nvcc {flavour.toolkit} needs g++ <= {flavour.host_gcc_max} as its host compiler, and none was "
                     f"found (the default g++ is {major if major is not None else 'missing'}): install {name} or set "
                     "CYFES_CUDA_HOST_COMPILER"])


def default_gxx_major() -> int | None:
    """The major version of the g++ nvcc runs when given no host compiler (the first on PATH); None without one."""
    try:
        out = subprocess.run(["g++", "-dumpversion"], capture_output=True, text=True, timeout=60, check=False).stdout
    except OSError:
        return None
    m = re.match(r"(\d+)", out.strip())
    return int(m.group(1)) if m else None


def _candidates(flavour: CudaFlavour) -> list[Path]:
    env = os.environ.get(f"CYFES_NVCC_{flavour.name.upper()}")
    if env:
        return [Path(env)]
    found = [shutil.which("nvcc"), f"/usr/local/cuda-{flavour.toolkit}/bin/nvcc", "/usr/local/cuda/bin/nvcc",
             "/usr/lib/nvidia-cuda-toolkit/bin/nvcc"]
    return [Path(p) for p in dict.fromkeys(found) if p and os.path.exists(p)]


def find_toolchain(flavour: CudaFlavour, fetch: bool = True, log: Log = lambda s: None) -> CudaToolchain:
    """The toolchain for `flavour`; fetched into the cache when allowed and nothing on the host matches."""
    env = os.environ.get(f"CYFES_NVCC_{flavour.name.upper()}")
    for nvcc in _candidates(flavour):
        version = nvcc_version(nvcc)
        if _matches(version, flavour):
            return CudaToolchain(nvcc, version, _host_compiler(flavour, cache_dir(flavour)))
        if env:
            raise ToolError([f"CYFES_NVCC_{flavour.name.upper()}={env} is nvcc {version or '(does not run)'}, "
                             f"not CUDA {flavour.toolkit}"])
    cached = cache_dir(flavour)
    if not (cached / "toolkit" / "bin" / "nvcc").is_file():
        if not fetch or flavour.name != FETCHABLE:
            raise ToolError([missing_message(flavour)])
        fetch_cuda_118(cached, log)
    nvcc = cached / "toolkit" / "bin" / "nvcc"
    version = nvcc_version(nvcc)
    if not _matches(version, flavour):
        raise ToolError([f"the cached CUDA toolkit {cached} does not run (nvcc {version}); delete it to fetch again"])
    return CudaToolchain(nvcc, version, _host_compiler(flavour, cached))


def missing_message(flavour: CudaFlavour) -> str:
    if flavour.name == "cu11":
        return (f"no CUDA {flavour.toolkit} compiler found and it cannot be fetched here (needs apt-get and "
                f"{DEBIAN_KEYRING}): install CUDA {flavour.toolkit} (NVIDIA's cuda-toolkit-11-8, or Debian 12's "
                f"non-free nvidia-cuda-toolkit) with g++-11, or set CYFES_NVCC_CU11 to its nvcc")
    return (f"no CUDA {flavour.toolkit} compiler (nvcc {flavour.toolkit}) found: install the CUDA {flavour.toolkit} "
            f"toolkit, or set CYFES_NVCC_{flavour.name.upper()} to its nvcc, or choose cuda.flavour: cu11 in "
            "release.yaml")


# ------------------------------------------------------------------------------------------------ fetch
def _apt_options(state: Path) -> list[str]:
    """A private apt: our own sources list, lists and cache under `state`; the host's apt is left alone."""
    opts = {"Dir::Etc::SourceList": state / "sources.list", "Dir::Etc::SourceParts": state / "sources.list.d",
            "Dir::State::Lists": state / "lists", "Dir::Cache": state / "cache", "Dir::State::status": "/dev/null",
            "Debug::NoLocking": "1"}
    if os.geteuid() == 0:  # apt drops root to _apt for downloads, and _apt cannot write to root's home
        opts["APT::Sandbox::User"] = "root"
    return [f"-o{k}={v}" for k, v in opts.items()]


def _run(cmd: list[str], what: str, cwd: Path | None = None) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, timeout=TOOL_TIMEOUT_S, check=False)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-8:]
        raise ToolError([f"{what} failed: " + "\n    ".join(tail)])


def download_debs(dest: Path, log: Log) -> list[Path]:
    """The CUDA 11.8 and g++-11 .deb files from Debian bookworm (main + non-free) into `dest`."""
    if not shutil.which("apt-get") or not shutil.which("dpkg-deb") or not DEBIAN_KEYRING.is_file():
        raise ToolError([missing_message(CUDA_FLAVOURS["cu11"])])
    state = dest / "apt"
    for sub in ("lists/partial", "cache/archives/partial", "sources.list.d"):
        (state / sub).mkdir(parents=True, exist_ok=True)
    (state / "sources.list").write_text(
        f"deb [signed-by={DEBIAN_KEYRING}] {DEBIAN_MIRROR} bookworm main contrib non-free\n", encoding="utf-8")
    log(f"CUDA 11.8: apt-get update (private lists in {state})")
    _run(["apt-get", *_apt_options(state), "update"], "apt-get update for Debian bookworm non-free")
    pkgs = [f"{p}={CUDA_118_VERSION}" for p in CUDA_118_DEBS] + list(CUDA_118_UNVERSIONED) + list(GCC_11_DEBS)
    log(f"CUDA 11.8: downloading {len(pkgs)} Debian packages (about 0.9 GB) to {dest}")
    _run(["apt-get", *_apt_options(state), "download", *pkgs], "apt-get download of CUDA 11.8", cwd=dest)
    return sorted(dest.glob("*.deb"))


def _extract(debs: list[Path], into: Path) -> None:
    into.mkdir(parents=True, exist_ok=True)
    for deb in debs:
        _run(["dpkg-deb", "-x", str(deb), str(into)], f"dpkg-deb -x {deb.name}")


def assemble_toolkit(staged: Path, toolkit: Path) -> None:
    """Debian's scattered CUDA files (usr/bin, usr/lib/nvidia-cuda-toolkit, usr/include, usr/lib/<triplet>)
    rearranged into NVIDIA's layout, with an nvcc.profile relative to nvcc itself."""
    usr, bindir = staged / "usr", toolkit / "bin"
    bindir.mkdir(parents=True)
    debian_bin = usr / "lib" / "nvidia-cuda-toolkit" / "bin"
    for tool in ("nvcc", "cicc", "crt"):
        shutil.move(str(debian_bin / tool), bindir / tool)
    for tool in ("ptxas", "fatbinary", "nvlink", "cudafe++", "bin2c", "nvprune", "cuobjdump", "nvdisasm", "cu++filt"):
        shutil.move(str(usr / "bin" / tool), bindir / tool)
    (bindir / "nvcc.profile").write_text(NVCC_PROFILE, encoding="utf-8")
    (toolkit / "nvvm").mkdir()
    shutil.move(str(usr / "lib" / "nvidia-cuda-toolkit" / "libdevice"), toolkit / "nvvm" / "libdevice")
    shutil.move(str(usr / "include"), toolkit / "include")
    shutil.rmtree(toolkit / "include" / "c++", ignore_errors=True)  # gcc's, kept with gcc
    (toolkit / "lib64").mkdir()
    for lib in (usr / "lib" / "x86_64-linux-gnu").iterdir():
        if KEEP_LIBS.fullmatch(lib.name):
            shutil.move(str(lib), toolkit / "lib64" / lib.name)


def fetch_cuda_118(target: Path, log: Log) -> None:
    """Download, unpack and assemble CUDA 11.8 + g++-11 into `target` (toolkit/ and gcc/); idempotent, locked
    against a concurrent fetch, and renamed into place only when complete."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (target / "toolkit" / "bin" / "nvcc").is_file():
            return
        with tempfile.TemporaryDirectory(prefix=f".{target.name}-", dir=target.parent) as tmp:
            work = Path(tmp)
            debs = download_debs(work / "debs", log)
            log(f"CUDA 11.8: unpacking {len(debs)} packages")
            gcc_debs = [d for d in debs if d.name.split("_")[0] in GCC_11_DEBS]
            _extract(gcc_debs, work / "out" / "gcc")
            _extract([d for d in debs if d not in gcc_debs], work / "staged")
            assemble_toolkit(work / "staged", work / "out" / "toolkit")
            shutil.rmtree(target, ignore_errors=True)
            os.replace(work / "out", target)
    log(f"CUDA 11.8: toolkit ready in {target}")
