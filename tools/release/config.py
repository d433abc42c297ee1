"""release.yaml as a typed, frozen model: one dataclass per section, a docstring per field.

Loading walks yaml's node tree (not the constructed objects) so every error can name the key and its line, and
so `3.10` stays the string "3.10" instead of the float 3.1. Unknown keys are rejected with a "did you mean";
every problem is collected and raised once as ConfigError.
"""
from __future__ import annotations

import difflib
import re
import typing
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from pathlib import Path

import yaml

from .errors import ConfigError, Problem
from .layouts import WHEEL_SCHEMES
from .program import SMOKE, SmokeProgram
from .targets import CUDA_FLAVOURS, DEFAULT_CUDA_FLAVOUR, CudaFlavour

# conda/variants.py's variant names, spelled from the same table (importing it would pull in the CUDA toolchain finder)
CONDA_VARIANTS = ("cpu",) + tuple(f.conda_variant for f in sorted(CUDA_FLAVOURS.values(), key=lambda f: f.toolkit))

CONFIG_NAME = "release.yaml"
CONFIG_MAX_BYTES = 1 << 20  # a release config is a page of text
DEFAULT_SMOKE = SMOKE
"""verify.smoke's default: the one smoke program (smoke.py) every wheel and conda prefix runs."""


@dataclass(frozen=True)
class CudaConfig:
    """How the GPU backend and its CUDA runtime ship."""

    enabled: bool = True
    """Build the CUDA library (CYFES_CUDA=ON); false builds CPU-only wheels (CYFES_CUDA=OFF)."""
    strategy: str = field(default="vendor", metadata={"choices": ("vendor", "pip", "static")})
    """vendor: auditwheel grafts libcudart into the wheel; pip: libcudart comes from NVIDIA's nvidia-cuda-runtime
    wheel (added to Requires-Dist, RPATH to where it installs); static: cudart linked into libcufes."""
    flavour: str = field(default=DEFAULT_CUDA_FLAVOUR, metadata={"choices": tuple(CUDA_FLAVOURS)})
    """Which CUDA the wheels' GPU backend is built with (a row of tools/release/targets.py): cu11 (CUDA 11.8:
    drivers from R450, SASS sm_60-sm_90) reaches the most machines; cu13 needs R580 and Turing or newer."""
    architectures: dict[str, str] = field(default_factory=dict, hash=False,
                                          metadata={"keys": tuple(CUDA_FLAVOURS)})
    """CMAKE_CUDA_ARCHITECTURES per flavour, e.g. {cu13: "75-real;80-real;90"}; a flavour not named uses its row of
    tools/release/targets.py (SASS for each, PTX for the newest)."""
    pip_requirement: str = ""
    """The Requires-Dist line the pip strategy adds; empty means the flavour's runtime wheel and range
    (CUDA minor-version compatibility allows any runtime of the same major, no older than the toolkit)."""

    @property
    def flavour_row(self) -> CudaFlavour:
        return CUDA_FLAVOURS[self.flavour]

    def architectures_for(self, flavour: CudaFlavour) -> str:
        return self.architectures.get(flavour.name) or flavour.cmake_architectures

    @property
    def requirement(self) -> str:
        return self.pip_requirement or self.flavour_row.pip_requirement


@dataclass(frozen=True)
class VerifyConfig:
    """What `verify` runs after installing an artifact."""

    enabled: bool = True
    """Verify every artifact the release builds (the `verify` command always verifies)."""
    smoke: str = DEFAULT_SMOKE
    """Python code run in the installed environment under LD_DEBUG=libs; it must exit 0."""
    smoke_command: tuple[str, ...] = ()
    """A program to run instead of `smoke` (argv; {python} is the installed environment's interpreter), e.g.
    [{python}, -m, mypkg.selftest]; it must exit 0."""
    report_mark: str = "CYFES-SMOKE "
    """Prefix of the one stdout line holding the smoke program's JSON facts; a program that prints none is judged
    by its exit code and loader trace alone."""
    entry_point: str = "cyfes"
    """The console script a conda prefix's bin/ must hold and run with --help; empty checks none."""


@dataclass(frozen=True)
class LibraryStep:
    """An optional shared library built once before the per-Python wheels (cyfes: libcufes from cuda/ with CMake),
    handed to each wheel build through a config setting so that no Python recompiles it."""

    source: str = "cuda"
    """CMake source directory of the library (cmake -S); empty: no library step."""
    name: str = "cufes"
    """Short name for its build directory and log (build/release/<name>-<flavour>-<runtime>)."""
    cmake_args: tuple[str, ...] = ("-DCYFES_CUDA_RUNTIME={runtime}",)
    """Extra arguments of the CMake configure step; {runtime} is Shared or Static."""
    command: tuple[str, ...] = ()
    """A command to run instead of CMake's configure/build/install (argv; {prefix} is the install prefix to fill,
    {nvcc} the CUDA compiler, {architectures} the CMake architecture list, {runtime} Shared or Static)."""
    produces: tuple[str, ...] = ("lib/libcufes.so",)
    """The libraries the step installs, relative to its prefix; the first is passed to the wheel builds."""
    cuda_only: bool = True
    """Run the step only when cuda.enabled (a GPU library); false runs it for CPU-only releases too."""


@dataclass(frozen=True)
class BuildConfig:
    """How a wheel is built: one PEP 517 build per Python (`pip wheel --no-deps`, isolated)."""

    config_settings: tuple[str, ...] = ("build-dir={build_dir}", "cmake.define.CYFES_CUDA={cuda}")
    """PEP 517 config settings of every wheel build; {build_dir} is its fixed build directory (so reruns reuse
    the cache), {cuda} is ON or OFF."""
    library_settings: tuple[str, ...] = (
        "cmake.define.CYFES_CUFES_LIBRARY={library}", "cmake.define.CYFES_CUDA_RUNTIME={runtime}",
        "cmake.define.CYFES_CUDA_VERSION={nvcc_version}", "cmake.define.CYFES_CUDA_DRIVER_CUDA={driver_cuda}",
        "cmake.define.CYFES_CUDA_DRIVER_MIN={driver_min}")
    """Config settings added when the library step ran: {library} its path; the CUDA facts {runtime},
    {nvcc_version}, {driver_cuda}, {driver_min} for the package to record (it cannot ask a compiler it does not run)."""
    clean_env: tuple[str, ...] = ("CYFES_CUDA", "CYFES_CUDA_RUNTIME", "CYFES_CUFES_LIBRARY")
    """Environment variables removed from the build's environment (they would override the config settings)."""
    library: LibraryStep = LibraryStep()
    """The optional pre-built shared library."""


@dataclass(frozen=True)
class CondaConfig:
    """Conda packages (tools.release.conda; fields may be added by the conda half)."""

    enabled: bool = True
    """Build conda packages in a full release."""
    build_number: int = 0
    """The package's build number (index.json)."""
    home: str = ""
    """index.json's home URL; empty: the wheel's Home-page or first Project-URL, else none."""
    channel: str = "dist/conda"
    """Local channel directory the packages are written and indexed to."""
    python: tuple[str, ...] = ()
    """Python versions to package; empty means the top-level `python` list."""
    depends: tuple[str, ...] = ()
    """Extra run dependencies (conda match specs) added to index.json."""
    variants: tuple[str, ...] = ()
    """Variants to build (cpu, cuda12x, cuda13x, and the opt-in legacy cuda118); each must be buildable here.
    Empty: cpu, cuda12x and cuda13x where this machine has their compiler, the others shown as skipped."""


@dataclass(frozen=True)
class ArchiveLimits:
    """Bounds on what reading one wheel or .conda may take (tools/release/archive.py applies them while streaming).

    The defaults hold real CUDA wheels with room to spare (a cyfes wheel has ~40 members, libcufes is ~10 MB; a
    wheel vendoring cuBLAS holds members of several hundred MB) and stop archives built to exhaust memory or disk."""

    members: int = 10_000
    """Most entries one archive may hold (a .conda counts the members of both of its tars)."""
    member_bytes: int = 2 << 30
    """Largest uncompressed size of one member, in bytes (2 GiB)."""
    total_bytes: int = 4 << 30
    """Largest uncompressed size of all members together, in bytes (4 GiB); big members are spooled to
    anonymous temporary files, so this bounds temporary disk use, not memory."""


@dataclass(frozen=True)
class ProviderConfig:
    """A distribution that installs shared libraries the package links against (a row added to the provider
    table of tools/release/providers.py; a row of the same distribution there is replaced)."""

    dist: str = ""
    """Its name as Requires-Dist spells it, e.g. nvidia-cublas-cu12."""
    path: str = ""
    """Where its libraries land, relative to site-packages, e.g. nvidia/cublas/lib."""
    libraries: tuple[str, ...] = ()
    """The SONAMEs it installs there, e.g. [libcublas.so.12, libcublasLt.so.12]."""


@dataclass(frozen=True)
class ReleaseConfig:
    """The whole of release.yaml."""

    name: str = ""
    """The package's name in reports; empty reads [project] name from ./pyproject.toml."""
    python: tuple[str, ...] = ()
    """CPython versions "X.Y" to build for; empty means every CPython >= 3.9 found on PATH or in pyenv."""
    abi3: str = "3.11"
    """The Limited API floor of the package's abi3 wheel (pyproject's wheel.py-api): that wheel is also verified
    with every later supported CPython installed here; empty: the package builds no abi3 wheel."""
    build: BuildConfig = BuildConfig()
    """How wheels are built."""
    openmp: str = field(default="auto", metadata={"choices": ("auto", "off")})
    """auto: vendor Debian 11's libgomp (glibc 2.17) when an ELF of the built wheel needs libgomp.so.1, and fetch
    it only then; off: never (auditwheel grafts whatever libgomp the host has)."""
    cuda: CudaConfig = CudaConfig()
    """The CUDA backend and runtime strategy."""
    exclude: tuple[str, ...] = ()
    """SONAMEs (globs allowed) auditwheel must not graft; the target system must provide them."""
    manylinux: str = "auto"
    """auditwheel --plat: auto (the best this build allows) or a policy such as manylinux_2_34."""
    schemes: tuple[str, ...] = WHEEL_SCHEMES
    """Install schemes every wheel must work in (RPATHs are planned for all of them, verify installs each)."""
    output: str = "dist"
    """Where finished wheels go (relative to the repository root)."""
    verify: VerifyConfig = VerifyConfig()
    """Post-build verification."""
    conda: CondaConfig = CondaConfig()
    """Conda packages."""
    limits: ArchiveLimits = ArchiveLimits()
    """Bounds on reading any wheel or .conda (the tool's own and any given to check, fix or verify)."""
    providers: tuple[ProviderConfig, ...] = ()
    """Libraries other wheels provide, beyond NVIDIA's runtime wheels: a list of {dist, path, libraries}."""

    @property
    def conda_pythons(self) -> tuple[str, ...]:
        return self.conda.python or self.python


def smoke_program(config: ReleaseConfig, code: str | None = None) -> SmokeProgram:
    """release.yaml's verify section as the program verify runs (--smoke replaces its snippet and command)."""
    v = config.verify
    return SmokeProgram(code=code or v.smoke, command=() if code else v.smoke_command, mark=v.report_mark,
                        entry_point=v.entry_point)


VALIDATORS: dict[str, typing.Callable[[object], str | None]] = {
    "python": lambda v: None if re.fullmatch(r"3\.\d{1,2}", str(v)) else "a CPython version like 3.12",
    "schemes": lambda v: None if v in WHEEL_SCHEMES else f"one of {', '.join(WHEEL_SCHEMES)}",
    "manylinux": lambda v: None if re.fullmatch(r"auto|linux|manylinux_2_\d+|manylinux\d+|manylinux2014", str(v))
    else "auto, linux or a policy such as manylinux_2_34",
    "conda.variants": lambda v: None if v in CONDA_VARIANTS else f"a conda variant: {', '.join(CONDA_VARIANTS)}",
    "abi3": lambda v: None if v == "" or re.fullmatch(r"3\.\d{1,2}", str(v)) else "empty or a version like 3.11",
    "cuda.architectures": lambda v: None if re.fullmatch(r"(\d+(-real|-virtual)?)(;\d+(-real|-virtual)?)*|all|all-major|native", str(v))
    else "a CMake architecture list such as 75-real;90",
    "conda.python": lambda v: None if re.fullmatch(r"3\.\d{1,2}", str(v)) else "a CPython version like 3.12",
}
# Keys of list items ("providers[0].path") are checked by their name after the index.
ITEM_VALIDATORS: dict[str, typing.Callable[[object], str | None]] = {
    "providers.dist": lambda v: None if re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?", str(v))
    else "a distribution name",
    "providers.path": lambda v: None if re.fullmatch(r"[^/\\][^\\]*", str(v)) and ".." not in str(v).split("/")
    else "a relative path inside site-packages",
    "providers.libraries": lambda v: None if re.fullmatch(r"[A-Za-z0-9._+-]+\.so(\.[0-9]+)*", str(v))
    else "a SONAME such as libcublas.so.12",
}


class _Loader:
    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[Problem] = []

    def fail(self, key: str, node: yaml.Node, message: str) -> None:
        self.problems.append(Problem(self.source, f"{key or '<top>'} (line {node.start_mark.line + 1})", message))

    def section(self, cls: type, node: yaml.Node, prefix: str) -> dict[str, object]:
        if not isinstance(node, yaml.MappingNode):
            self.fail(prefix, node, f"must be a mapping with keys {', '.join(f.name for f in fields(cls))}")
            return {}
        hints, known, values = typing.get_type_hints(cls), {f.name: f for f in fields(cls)}, {}
        seen: set[str] = set()
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != "tag:yaml.org,2002:str":
                self.fail(prefix, key_node, "keys must be plain names, not a list, mapping, number or null")
                continue
            key, dotted = key_node.value, f"{prefix}.{key_node.value}" if prefix else key_node.value
            if key in seen:
                self.fail(dotted, key_node, "key given twice")
                continue
            seen.add(key)
            if key not in known:
                close = difflib.get_close_matches(key, list(known), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                self.fail(dotted, key_node, f"unknown key{hint} (allowed: {', '.join(known)})")
                continue
            value = self.value(hints[key], value_node, dotted, known[key])
            if value is not MISSING:
                values[key] = value
        return values

    def value(self, tp, node: yaml.Node, key: str, f) -> object:
        if is_dataclass(tp):
            return tp(**self.section(tp, node, key))
        if typing.get_origin(tp) is dict:
            return self.mapping(node, key, f)
        if typing.get_origin(tp) is tuple:
            if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null":
                return ()
            if not isinstance(node, yaml.SequenceNode):
                self.fail(key, node, "must be a list")
                return MISSING
            item = typing.get_args(tp)[0]
            if is_dataclass(item):
                return tuple(self.record(item, n, f"{key}[{i}]") for i, n in enumerate(node.value))
            items = [self.scalar(str, n, key, f) for n in node.value]
            return MISSING if MISSING in items else tuple(items)
        return self.scalar(tp, node, key, f)

    def mapping(self, node: yaml.Node, key: str, f) -> object:
        """A mapping of names to strings (cuda.architectures: flavour -> CMake list); keys are checked by choice."""
        if not isinstance(node, yaml.MappingNode):
            self.fail(key, node, "must be a mapping")
            return MISSING
        out: dict[str, str] = {}
        for k, v in node.value:
            name = self.scalar(str, k, f"{key} key", None)
            value = self.scalar(str, v, key, None)
            if name is MISSING or value is MISSING:
                continue
            allowed = f.metadata.get("keys", ())
            if allowed and name not in allowed:
                close = difflib.get_close_matches(name, list(allowed), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                self.fail(f"{key}.{name}", k, f"unknown key{hint} (allowed: {', '.join(allowed)})")
                continue
            out[name] = value
        return out

    def record(self, cls: type, node: yaml.Node, key: str) -> object:
        """One mapping of a list of records; every field is required (a record has no sensible default)."""
        values = self.section(cls, node, key)
        given = {k.value for k, _ in node.value if isinstance(k, yaml.ScalarNode)} if isinstance(
            node, yaml.MappingNode) else set()
        missing = [f.name for f in fields(cls) if f.name not in given]
        if isinstance(node, yaml.MappingNode) and missing:
            self.fail(key, node, f"needs {', '.join(missing)}")
        return cls(**values)  # only kept when no problem was found (parse_config raises otherwise)

    def scalar(self, tp, node: yaml.Node, key: str, f) -> object:
        if not isinstance(node, yaml.ScalarNode):
            self.fail(key, node, f"must be a single {tp.__name__}")
            return MISSING
        raw, tag = node.value, node.tag.rsplit(":", 1)[-1]
        if tp is bool:
            if tag != "bool":
                self.fail(key, node, f"must be true or false, not {raw!r}")
                return MISSING
            return raw.lower() in ("true", "yes", "on")
        if tp is int:
            # YAML 1.1 also reads 0x10, 0o17, 1_000 and 60-base 1:30 as integers: too surprising in a config
            if tag != "int" or not re.fullmatch(r"\d{1,18}", raw):
                self.fail(key, node, f"must be a non-negative decimal integer, not {raw[:40]!r}")
                return MISSING
            return int(raw)
        return self.check_choice(raw, node, key, f)

    def check_choice(self, raw: str, node: yaml.Node, key: str, f) -> object:
        choices = f.metadata.get("choices") if f is not None else None
        if choices and raw not in choices:
            self.fail(key, node, f"{raw!r} is not allowed (allowed: {', '.join(choices)})")
            return MISSING
        check = VALIDATORS.get(key) or ITEM_VALIDATORS.get(re.sub(r"\[\d+\]", "", key))
        why = check and check(raw)
        if why:
            self.fail(key, node, f"{raw!r} is not allowed: expected {why}")
            return MISSING
        return raw


def parse_config(text: str, source: str = CONFIG_NAME) -> ReleaseConfig:
    """Parse release.yaml text; ConfigError lists every problem with key and line."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except RecursionError as exc:  # PyYAML composes nested collections recursively
        raise ConfigError([Problem(source, "", "not valid YAML: nested too deeply")]) from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        if isinstance(exc, yaml.reader.ReaderError):  # a character YAML does not allow: no mark, a position
            mark, why = None, f"character {exc.character!r} is not allowed"
            line = f"line {text.count(chr(10), 0, exc.position) + 1}"
        else:
            why, line = str(getattr(exc, "problem", None) or exc), f"line {mark.line + 1}" if mark else ""
        raise ConfigError([Problem(source, line, f"not valid YAML: {' '.join(why.split())}")]) from exc
    if node is None:
        return ReleaseConfig()
    loader = _Loader(source)
    values = loader.section(ReleaseConfig, node, "")
    if loader.problems:
        raise ConfigError(loader.problems)
    return ReleaseConfig(**values)


def load_config(path: str | Path | None = None) -> ReleaseConfig:
    """release.yaml: `path` must exist when given; without it, ./release.yaml or else the defaults."""
    if path is None:
        if not Path(CONFIG_NAME).is_file():
            return ReleaseConfig()
        path = CONFIG_NAME
    path = Path(path)
    if not path.exists():
        raise ConfigError([Problem(str(path), "", "no such file")])
    if not path.is_file():
        raise ConfigError([Problem(str(path), "", "not a regular file")])
    try:
        with path.open("rb") as f:
            raw = f.read(CONFIG_MAX_BYTES + 1)
        if len(raw) > CONFIG_MAX_BYTES:
            raise ConfigError([Problem(str(path), "", f"larger than {CONFIG_MAX_BYTES} bytes")])
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError([Problem(str(path), "", f"cannot be read ({why})")]) from exc
    return parse_config(text, str(path))
