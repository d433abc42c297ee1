"""release.yaml's project-neutral keys: their defaults reproduce cyfes's build exactly, and they are checked."""
from __future__ import annotations

from pathlib import Path

import pytest

import wheelfactory as wf
from tools.release.config import ConfigError, ReleaseConfig, load_config, parse_config, smoke_program
from tools.release.pipeline import _abi3_verifiers, _raw_wheel_python, needs_openmp, package_name
from tools.release.targets import CUDA_FLAVOURS
from tools.release.toolchain.pythons import find_pythons
from tools.release.verify.smoke import smoke_report
from tools.release.wheel.build import CudaLibrary

ROOT = Path(__file__).resolve().parents[2]


def test_default_library_settings_are_cyfes_cmake_defines():
    """What the build passed before these keys existed, spelled out from the flavour's row."""
    f = CUDA_FLAVOURS["cu11"]
    lib = CudaLibrary(Path("/b/libcufes.so"), "Shared", f, "11.8.89")
    assert lib.settings() == [
        "cmake.define.CYFES_CUFES_LIBRARY=/b/libcufes.so", "cmake.define.CYFES_CUDA_RUNTIME=Shared",
        "cmake.define.CYFES_CUDA_VERSION=11.8.89", f"cmake.define.CYFES_CUDA_DRIVER_CUDA={f.driver_cuda}",
        f"cmake.define.CYFES_CUDA_DRIVER_MIN={f.driver_min}"]
    assert CudaLibrary(Path("/b/l.so"), "Static", f, "").settings(["v={nvcc_version}"]) == [f"v={f.toolkit}"]


def test_repository_release_yaml_keeps_cyfes_defaults():
    c = load_config(ROOT / "release.yaml")
    assert c.build == ReleaseConfig().build and c.openmp == "auto" and c.abi3 == "3.11"
    assert c.build.library.source == "cuda" and c.build.library.produces == ("lib/libcufes.so",)
    assert c.cuda.architectures_for(CUDA_FLAVOURS["cu13"]) == CUDA_FLAVOURS["cu13"].cmake_architectures
    assert smoke_program(c).is_default and smoke_program(c).entry_point == "cyfes"
    assert package_name(c, ROOT) == "cyfes"
    assert c.conda.home == "https://github.com/cyfes/cyfes" and ReleaseConfig().conda.home == ""


def test_architectures_per_flavour_and_smoke_command():
    c = parse_config('cuda: {architectures: {cu13: "75-real;90"}}\n'
                     'verify: {smoke_command: ["{python}", -m, pkg.selftest], report_mark: "PKG ", entry_point: ""}\n'
                     'name: pkg\n')
    assert c.cuda.architectures_for(CUDA_FLAVOURS["cu13"]) == "75-real;90"
    assert c.cuda.architectures_for(CUDA_FLAVOURS["cu11"]) == CUDA_FLAVOURS["cu11"].cmake_architectures
    p = smoke_program(c)
    assert p.argv("/env/bin/python") == ["/env/bin/python", "-m", "pkg.selftest"] and not p.is_default
    assert smoke_program(c, "print(1)").argv("py") == ["py", "-c", "print(1)"]  # --smoke wins over the command


@pytest.mark.parametrize("text, message", [
    ('cuda: {architectures: {cu31: "75"}}', "cuda.architectures.cu31 (line 1): unknown key; did you mean 'cu13'?"),
    ('cuda: {architectures: {cu13: "sm_75"}}', "expected a CMake architecture list"),
    ("build: {libary: {}}", "build.libary (line 1): unknown key; did you mean 'library'?"),
    ("build: {library: {produce: []}}", "did you mean 'produces'?"),
    ("openmp: always", "'always' is not allowed (allowed: auto, off)"),
    ("abi3: 3", "expected empty or a version like 3.11"),
    ("verify: {smoke_comand: [x]}", "did you mean 'smoke_command'?"),
])
def test_bad_keys_are_named(text, message):
    with pytest.raises(ConfigError) as exc:
        parse_config(text)
    assert message in str(exc.value)


def test_openmp_needed_only_by_an_elf_that_links_libgomp(seed, tmp_path):
    assert not needs_openmp(seed["raw"])  # the seed wheel has no OpenMP
    ext = wf.gcc(tmp_path / "b" / f"_ext{wf.EXT_SUFFIX}", {"e.c": "int f(void){return 0;}"}, "-fopenmp",
                 "-Wl,--no-as-needed", "-lgomp")
    raw = wf.write_raw_wheel(tmp_path / f"seedpkg-1.0-{wf.TAG}-{wf.TAG}-linux_x86_64.whl",
                             {f"seedpkg/_ext{wf.EXT_SUFFIX}": ext.read_bytes()})
    assert needs_openmp(raw)


def test_abi3_floor_from_config_and_custom_report_marks():
    assert _abi3_verifiers("p-1-cp311-cp311-linux_x86_64.whl", "3.11", "3.11") == {}  # not abi3
    assert _abi3_verifiers("p-1-cp311-abi3-linux_x86_64.whl", "3.11", "") == {}  # no abi3 floor
    assert smoke_report('PKG {"a": 1}\n', "PKG ") == {"a": 1}
    assert smoke_report("PKG not json\n", "PKG ") == {}  # a project's own convention never crashes verify
    assert smoke_report('X [1]\n', "X ") == {}


def test_conda_raw_wheels_of_abi3_pythons_are_built_by_the_floor():
    """A conda package of Python 3.12 comes from the raw wheel the abi3 floor's Python builds, whichever Pythons the
    release asks for: the same bytes from `make dist` (3.9-3.13) and from a release of 3.12 alone."""
    floor = find_pythons().get("3.11")
    if floor is None:
        pytest.skip("no CPython 3.11 here")
    assert _raw_wheel_python("3.12", "/x/python3.12", "3.11") == ("3.11", floor)
    assert _raw_wheel_python("3.11", "/x/python3.11", "3.11") == ("3.11", floor)
    assert _raw_wheel_python("3.10", "/x/python3.10", "3.11") == ("3.10", "/x/python3.10")  # below the floor
    assert _raw_wheel_python("3.12", "/x/python3.12", "") == ("3.12", "/x/python3.12")  # no abi3 wheel
