"""Find the CUDA compiler of a flavour (targets.CUDA_FLAVOURS), or fetch it into a per-user cache.

Why Debian's packages: NVIDIA's PyPI compiler wheels for CUDA 11 and 12 hold only ptxas and libnvvm (no nvcc).
Debian's non-free `nvidia-cuda-toolkit` is a complete nvcc: 11.8.89 in bookworm (cu11, with its host compiler
g++-11 from bookworm's main) and 12.4.131 in trixie (cu12; nvcc 12.4 takes g++ up to 13, so the host's g++ serves
where it is old enough). The .deb files are downloaded with apt-get's own resolver but a private configuration (no
root, nothing installed system-wide), unpacked with dpkg-deb into ~/.cache/cyfes/cuda-<toolkit>/ and rearranged
into the layout of NVIDIA's toolkit (bin/, include/, lib64/, nvvm/libdevice), which nvcc's profile and CMake's CUDA
detection understand without patches. Both suites package CUDA in the same layout, so one code path serves both;
DEBIAN_TOOLKITS holds what differs. What was fetched (package, version, URL, SHA256) is kept beside the toolkit
in packages.json: runtime_source reads it, for the SBOM of a wheel that vendors this toolkit's libcudart.

Order of search for a flavour: $CYFES_NVCC_<FLAVOUR> (e.g. CYFES_NVCC_CU11), nvcc on PATH and the usual toolkit
places when their version matches, the cache, and last the fetch. A flavour with no fetch recipe (cu13: the system
toolkit or NVIDIA's wheels) stops with a message naming what to install.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import ToolError
from ..targets import CudaFlavour

Log = Callable[[str], None]

DEBIAN_MIRROR = "http://deb.debian.org/debian"
# The Debian release number of a suite: the distro qualifier of a package's purl (debian-13).
DEBIAN_RELEASES = {"bookworm": "12", "trixie": "13"}
MANIFEST = "packages.json"
"""In a fetched toolkit's cache dir: what was downloaded, from where, with which hashes (write_manifest)."""
DEBIAN_KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")


@dataclass(frozen=True)
class DebianToolkit:
    """Where a flavour's toolkit comes from in Debian: the suite and the packages, pinned so a mirror update
    cannot change the compiler under a release (the header-only CUB/Thrust/libcu++ follow the suite)."""

    suite: str
    pinned: tuple[tuple[str, str], ...]
    """(package, version): the compiler and runtime packages."""
    unversioned: tuple[str, ...] = ("libcub-dev", "libthrust-dev", "libcu++-dev")
    host_compiler: tuple[str, ...] = ()
    """gcc packages of the same suite unpacked into gcc/, for an nvcc that refuses the host's g++."""

    def apt_names(self) -> list[str]:
        return [f"{p}={v}" for p, v in self.pinned] + list(self.unversioned) + list(self.host_compiler)


_CUDA_118 = "11.8.89~11.8.0-5~deb12u1"
# Keyed by toolkit version: the fetch serves the flavour whose toolkit it is, and nothing else (cuda12x's CUDA 12.9).
DEBIAN_TOOLKITS: dict[str, DebianToolkit] = {
    "11.8": DebianToolkit(
        "bookworm", tuple((p, _CUDA_118) for p in ("nvidia-cuda-toolkit", "nvidia-cuda-dev", "libcudart11.0",
                                                  "libnvvm4")),
        host_compiler=("gcc-11-base", "cpp-11", "libasan6", "libtsan0", "libgcc-11-dev", "gcc-11",
                       "libstdc++-11-dev", "g++-11")),
    # trixie's compiler packages are 12.4.131, its runtime and headers 12.4.127 (both CUDA 12.4.1)
    "12.4": DebianToolkit(
        "trixie", (("nvidia-cuda-toolkit", "12.4.131~12.4.1-2"), ("nvidia-cuda-dev", "12.4.127~12.4.1-2"),
                   ("libcudart12", "12.4.127~12.4.1-2"), ("libnvvm4", "12.4.131~12.4.1-2"))),
}
# What of nvidia-cuda-dev's 2.7 GB a CUDA runtime build needs; the math libraries' static archives are dropped.
KEEP_LIBS = re.compile(r"libcudart.*|libcudadevrt\.a|libculibos\.a|stubs|libnvvm.*")
TOOL_TIMEOUT_S = 3600
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
        root = toolkit_root(self.nvcc)
        return tuple(d for d in (root / "lib64", root / "lib") if d.is_dir())


def toolkit_root(nvcc: Path) -> Path:
    """The toolkit an nvcc belongs to, as nvcc's own profile sets it (TOP in a --dryrun); an nvcc on PATH may be a
    wrapper script (/usr/local/bin/nvcc running /usr/local/cuda-13.0/bin/nvcc), whose own folder is not it."""
    try:
        out = subprocess.run([str(nvcc), "--dryrun", "-c", "-x", "cu", os.devnull, "-o", os.devnull],
                             capture_output=True, text=True, timeout=60, check=False).stderr
    except OSError:
        out = ""
    m = re.search(r"^#\$ TOP=(.+)$", out, re.M)
    return Path(m.group(1)).resolve() if m else nvcc.resolve().parent.parent


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
    """nvcc refuses a gcc newer than it knows (11.8: 11, 12.4: 13): $CYFES_CUDA_HOST_COMPILER, else g++-<max> (cached
    or on PATH), else None
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
        if not fetch or flavour.toolkit not in DEBIAN_TOOLKITS:
            raise ToolError([missing_message(flavour)])
        fetch_toolkit(flavour, cached, log)
    if not (cached / MANIFEST).is_file():
        log(f"CUDA {flavour.toolkit}: {cached} has no {MANIFEST} (fetched before it was written), so SBOMs give its "
            "libcudart no origin; delete it to fetch it again")
    nvcc = cached / "toolkit" / "bin" / "nvcc"
    version = nvcc_version(nvcc)
    if not _matches(version, flavour):
        raise ToolError([f"the cached CUDA toolkit {cached} does not run (nvcc {version}); delete it to fetch again"])
    return CudaToolchain(nvcc, version, _host_compiler(flavour, cached))


def missing_message(flavour: CudaFlavour) -> str:
    debian = DEBIAN_TOOLKITS.get(flavour.toolkit)
    if debian is not None:
        nvidia = "cuda-toolkit-" + flavour.toolkit.replace(".", "-")
        gxx = f" with g++-{flavour.host_gcc_max} or older" if flavour.host_gcc_max else ""
        return (f"no CUDA {flavour.toolkit} compiler found and it cannot be fetched here (needs apt-get and "
                f"{DEBIAN_KEYRING}): install CUDA {flavour.toolkit} (NVIDIA's {nvidia}, or Debian {debian.suite}'s "
                f"non-free nvidia-cuda-toolkit){gxx}, or set CYFES_NVCC_{flavour.name.upper()} to its nvcc")
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


def download_debs(flavour: CudaFlavour, dest: Path, log: Log) -> list[Path]:
    """The flavour's CUDA (and host compiler) .deb files from its Debian suite (main + non-free) into `dest`."""
    debian = DEBIAN_TOOLKITS[flavour.toolkit]
    if not shutil.which("apt-get") or not shutil.which("dpkg-deb") or not DEBIAN_KEYRING.is_file():
        raise ToolError([missing_message(flavour)])
    state = dest / "apt"
    for sub in ("lists/partial", "cache/archives/partial", "sources.list.d"):
        (state / sub).mkdir(parents=True, exist_ok=True)
    (state / "sources.list").write_text(
        f"deb [signed-by={DEBIAN_KEYRING}] {DEBIAN_MIRROR} {debian.suite} main contrib non-free\n", encoding="utf-8")
    what = f"CUDA {flavour.toolkit}"
    log(f"{what}: apt-get update (private lists in {state})")
    _run(["apt-get", *_apt_options(state), "update"], f"apt-get update for Debian {debian.suite} non-free")
    pkgs = debian.apt_names()
    uris = _print_uris(["apt-get", *_apt_options(state), "download", "--print-uris", *pkgs], what)
    log(f"{what}: downloading {len(pkgs)} Debian packages (about 1 GB) to {dest}")
    _run(["apt-get", *_apt_options(state), "download", *pkgs], f"apt-get download of {what}", cwd=dest)
    debs = sorted(dest.glob("*.deb"))
    write_manifest(dest / MANIFEST, package_manifest(debian.suite, debs, uris))
    return debs


# ------------------------------------------------------------------------------------------------ manifest
_URI_LINE = re.compile(r"'(?P<url>[^']+)' (?P<file>\S+) \d+ SHA256:(?P<sha>[0-9a-f]{64})")
_RUNTIME = re.compile(r"-\S+ .*/libcudart\.so\.\d+\.\d+\.\d+$")
"""A regular file (not a link) libcudart.so.<x.y.z> in `dpkg-deb -c`'s listing: the runtime auditwheel grafts."""


def parse_print_uris(text: str) -> dict[str, tuple[str, str]]:
    """.deb file name -> (URL, SHA256 in Debian's signed index), from `apt-get download --print-uris`."""
    return {m["file"]: (m["url"], m["sha"]) for m in map(_URI_LINE.fullmatch, text.splitlines()) if m}


def _print_uris(cmd: list[str], what: str) -> dict[str, tuple[str, str]]:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TOOL_TIMEOUT_S, check=False)
    if proc.returncode != 0:
        raise ToolError([f"apt-get download --print-uris of {what} failed: {proc.stderr.strip()[-500:]}"])
    return parse_print_uris(proc.stdout)


def _dpkg_deb(*args: str) -> str:
    proc = subprocess.run(["dpkg-deb", *args], capture_output=True, text=True, timeout=TOOL_TIMEOUT_S, check=False)
    if proc.returncode != 0:
        raise ToolError([f"dpkg-deb {' '.join(args)} failed: {proc.stderr.strip()[-500:]}"])
    return proc.stdout


def package_manifest(suite: str, debs: list[Path], uris: dict[str, tuple[str, str]]) -> dict:
    """Per .deb: its package and version (its control file), the URL apt downloaded it from, the SHA256 of
    Debian's index and of the file as downloaded; and which package holds the CUDA runtime library."""
    packages, runtime = [], None
    for deb in debs:
        fields = dict(line.split(": ", 1) for line in _dpkg_deb("-f", str(deb), "Package", "Version").splitlines())
        url, index_sha = uris.get(deb.name, ("", ""))
        packages.append({"name": fields["Package"], "version": fields["Version"], "file": deb.name,
                         "url": url, "index_sha256": index_sha,
                         "sha256": hashlib.sha256(deb.read_bytes()).hexdigest()})
        if any(_RUNTIME.match(line) for line in _dpkg_deb("-c", str(deb)).splitlines()):
            runtime = packages[-1]["name"]
    return {"suite": suite, "distro": f"debian-{DEBIAN_RELEASES[suite]}", "packages": packages,
            "libcudart": runtime}


def write_manifest(path: Path, manifest: dict) -> None:
    path.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n", encoding="utf-8")


@dataclass(frozen=True)
class RuntimeSource:
    """Where a toolkit's CUDA runtime library (libcudart) came from: a Debian package the tool fetched (url set)
    or the build host's own toolkit (host_path set)."""

    soname: str
    """The runtime's soname, e.g. libcudart.so.12: what a grafted copy's name starts with."""
    package: str
    version: str
    url: str = ""
    sha256: str = ""
    """Of the .deb as downloaded (equal to the index's: apt checks it)."""
    distro: str = ""
    """e.g. debian-13."""
    host_path: str = ""


def runtime_source(lib_dir: Path) -> RuntimeSource | None:
    """The source of the libcudart in `lib_dir` (a CudaToolchain.library_dirs entry); None where it is not a
    toolkit's, or a fetched toolkit without a manifest (fetched before manifests were written: refetch it)."""
    root = lib_dir.parent
    real = next((p for p in sorted(lib_dir.glob("libcudart.so.*")) if not p.is_symlink()), None)
    if not (root / "bin" / "nvcc").is_file() or real is None:
        return None
    soname = ".".join(real.name.split(".")[:3])  # libcudart.so.12.4.127 -> libcudart.so.12
    manifest = root.parent / MANIFEST
    if root.name == "toolkit" and root.parent.name.startswith("cuda-"):  # fetched: <cache>/cuda-<toolkit>/toolkit
        return _fetched_source(json.loads(manifest.read_text(encoding="utf-8")), soname) if manifest.is_file() else None
    version = nvcc_version(root / "bin" / "nvcc")
    return RuntimeSource(soname, "cuda-toolkit", version, host_path=str(root)) if version else None


def _fetched_source(manifest: dict, soname: str) -> RuntimeSource | None:
    pkg = next((p for p in manifest["packages"] if p["name"] == manifest["libcudart"]), None)
    if pkg is None:
        return None
    return RuntimeSource(soname, pkg["name"], pkg["version"], pkg["url"], pkg["sha256"], manifest["distro"])


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


def fetch_toolkit(flavour: CudaFlavour, target: Path, log: Log) -> None:
    """Download, unpack and assemble the flavour's Debian toolkit (and host compiler, if it has one) into `target`
    (toolkit/ and gcc/); idempotent, locked against a concurrent fetch, and renamed into place only when complete."""
    target.parent.mkdir(parents=True, exist_ok=True)
    what = f"CUDA {flavour.toolkit}"
    with open(target.parent / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (target / "toolkit" / "bin" / "nvcc").is_file():
            return
        with tempfile.TemporaryDirectory(prefix=f".{target.name}-", dir=target.parent) as tmp:
            work = Path(tmp)
            debs = download_debs(flavour, work / "debs", log)
            log(f"{what}: unpacking {len(debs)} packages")
            gcc_debs = [d for d in debs if d.name.split("_")[0] in DEBIAN_TOOLKITS[flavour.toolkit].host_compiler]
            _extract(gcc_debs, work / "out" / "gcc")
            _extract([d for d in debs if d not in gcc_debs], work / "staged")
            assemble_toolkit(work / "staged", work / "out" / "toolkit")
            os.replace(work / "debs" / MANIFEST, work / "out" / MANIFEST)  # the .deb files themselves go
            shutil.rmtree(target, ignore_errors=True)
            os.replace(work / "out", target)
    log(f"{what}: toolkit ready in {target}")
