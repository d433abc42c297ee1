"""CUDA flavours as data (tools/release/targets.py) and what the release builds from them.

Fast tests: the table agrees with the CMake table that source builds use, and the modules that used to hard-code
CUDA 13 read the table. Release tests (`pytest -m release`, run by `make dist` after the release is built): the
libcufes inside dist/'s wheels carries SASS for every architecture of the configured flavour and its PTX (read by
NVIDIA's cuobjdump from the nvidia-cuda-cuobjdump wheel), needs that flavour's libcudart SONAME, and the wheel's
_build_info records the flavour's CUDA version and driver floor.
"""
from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import ROOT
from tools.release.conda.variants import find_compiler, variant
from tools.release.config import load_config, parse_config
from tools.release.elf.model import read_elf
from tools.release.errors import ConfigError, ToolError
from tools.release.providers import KNOWN_PROVIDERS
from tools.release.targets import CUDA_FLAVOURS, flavour_for_requirement
from tools.release.toolchain.cuda import find_toolchain
from tools.release.wheel.auditwheel import excludes_for, providers_for


def cmake_driver_table() -> dict[str, tuple[str, str]]:
    text = (ROOT / "cmake" / "CyfesCudaDriver.cmake").read_text()
    return {m[0]: (m[1], m[2]) for m in re.findall(r'"(\d+):([\d.]+):([\d.]+)"', text)}


def test_cmake_driver_floors_equal_the_flavour_table() -> None:
    table = cmake_driver_table()
    for f in CUDA_FLAVOURS.values():
        assert table[f.toolkit.split(".")[0]] == (f.driver_cuda, f.driver_min), f.name


def test_cu11_reaches_pascal_to_hopper_from_r450() -> None:
    cu11 = CUDA_FLAVOURS["cu11"]
    assert cu11.cmake_architectures == "60-real;70-real;75-real;80-real;86-real;89-real;90"
    assert (cu11.cudart_soname, cu11.driver_cuda_number, cu11.driver_branch) == ("libcudart.so.11.0", 11000, "R450")
    assert CUDA_FLAVOURS["cu13"].cmake_architectures == "75-real;80-real;86-real;89-real;90"


def test_release_yaml_selects_cu11_and_derives_the_pip_requirement() -> None:
    cfg = load_config(ROOT / "release.yaml")
    assert cfg.cuda.flavour == "cu11"
    assert cfg.cuda.requirement == "nvidia-cuda-runtime-cu11>=11.8,<12"
    assert parse_config("cuda: {flavour: cu13}").cuda.requirement == "nvidia-cuda-runtime>=13.0,<14"
    with pytest.raises(ConfigError, match=r"cuda.flavour \(line 1\): 'cu10' is not allowed \(allowed: cu11, cu12, cu13\)"):
        parse_config("cuda: {flavour: cu10}", "release.yaml")


def test_pip_strategy_providers_follow_the_flavour() -> None:
    (p11,) = providers_for("pip", "nvidia-cuda-runtime-cu11>=11.8,<12")
    assert (p11.soname, p11.where) == ("libcudart.so.11.0", "{platlib}/nvidia/cuda_runtime/lib")
    (p13,) = providers_for("pip", "nvidia-cuda-runtime>=13.0,<14")
    assert (p13.soname, p13.where) == ("libcudart.so.13", "{platlib}/nvidia/cu13/lib")
    assert providers_for("vendor", "nvidia-cuda-runtime-cu11") == []
    assert {"libcudart.so.11.0", "libcudart.so.13"} <= set(excludes_for("pip", []))
    assert p11 in KNOWN_PROVIDERS["nvidia-cuda-runtime-cu11"]
    assert flavour_for_requirement("nvidia_cuda_runtime_cu11 >=11.8") is CUDA_FLAVOURS["cu11"]
    assert flavour_for_requirement("numpy") is None


def fake_nvcc(tmp: Path, version: str) -> Path:
    """TEST FIXTURE: a script that answers `--version` like nvcc does."""
    exe = tmp / "bin" / "nvcc"
    exe.parent.mkdir(parents=True)
    exe.write_text(f"#!/bin/sh\necho 'Cuda compilation tools, release {version[:4]}, V{version}'\n")
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    return exe


def fake_gxx(path: Path, version: str) -> Path:
    """TEST FIXTURE: a script that answers `-dumpversion` like g++ does."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\necho {version}\n")
    path.chmod(0o755)
    return path


def test_explicit_nvcc_of_the_wrong_version_is_refused(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("CYFES_CUDA_HOST_COMPILER", str(fake_gxx(tmp_path / "gcc" / "g++-11", "11")))
    monkeypatch.setenv("CYFES_NVCC_CU11", str(fake_nvcc(tmp_path, "12.4.131")))
    with pytest.raises(ToolError, match=r"CYFES_NVCC_CU11=.*/nvcc is nvcc 12.4.131, not CUDA 11.8"):
        find_toolchain(CUDA_FLAVOURS["cu11"])
    monkeypatch.setenv("CYFES_NVCC_CU11", str(fake_nvcc(tmp_path / "ok", "11.8.89")))
    chain = find_toolchain(CUDA_FLAVOURS["cu11"])
    assert (chain.version, chain.nvcc.name) == ("11.8.89", "nvcc")


@pytest.mark.parametrize("default_gxx, ok", [("12.2.0", False), ("11.4.0", True), (None, False)])
def test_host_compiler_is_one_nvcc_accepts(tmp_path, monkeypatch, default_gxx, ok) -> None:
    """nvcc 11.8 takes g++ <= 11: without g++-11 anywhere, the default g++ serves only when it is old enough;
    otherwise the toolchain search itself says what to install."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # no cached g++-11
    monkeypatch.delenv("CYFES_CUDA_HOST_COMPILER", raising=False)
    monkeypatch.setenv("CYFES_NVCC_CU11", str(fake_nvcc(tmp_path / "cuda", "11.8.89")))
    path = tmp_path / "path"
    path.mkdir()
    if default_gxx:
        fake_gxx(path / "g++", default_gxx)
    monkeypatch.setenv("PATH", str(path))  # the fakes run through their #!/bin/sh; no other g++ is found
    if ok:
        assert find_toolchain(CUDA_FLAVOURS["cu11"]).host_compiler is None  # nvcc's default g++ is fine
    else:
        with pytest.raises(ToolError, match=rf"nvcc 11.8 needs g\+\+ <= 11 as its host compiler, and none was found "
                                            rf"\(the default g\+\+ is {default_gxx[:2] if default_gxx else 'missing'}\): "
                                            r"install g\+\+-11"):
            find_toolchain(CUDA_FLAVOURS["cu11"])


def test_missing_toolkit_names_what_to_install(tmp_path, monkeypatch) -> None:
    """No CUDA 11.8 anywhere and fetching not allowed: one message naming what to install (never a silent skip)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("CYFES_NVCC_CU11", raising=False)
    if os.path.exists("/usr/local/cuda-11.8/bin/nvcc") or os.path.exists("/usr/lib/nvidia-cuda-toolkit/bin/nvcc"):
        pytest.skip("this host has a CUDA 11.8 toolkit installed")
    with pytest.raises(ToolError, match=r"no CUDA 11.8 compiler found .* install CUDA 11.8 .* g\+\+-11"):
        find_toolchain(CUDA_FLAVOURS["cu11"], fetch=False)


def test_cu12_wheels_take_nvcc_124_and_its_conda_variant_nvcc_129(tmp_path, monkeypatch) -> None:
    """cu12's wheels are compiled by CUDA 12.4 (fetchable from Debian trixie) with cu11's GPU list; its conda
    variant cuda12x stays conda-forge's 12.9, so the same nvcc 12.4 serves the one and is refused by the other."""
    cu12 = CUDA_FLAVOURS["cu12"]
    assert cu12.cmake_architectures == CUDA_FLAVOURS["cu11"].cmake_architectures
    assert (cu12.pip_requirement, cu12.driver_min, cu12.conda_tag) == ("nvidia-cuda-runtime-cu12>=12.4,<13",
                                                                        "525.60.13", "cuda129")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("CYFES_CUDA_HOST_COMPILER", str(fake_gxx(tmp_path / "gcc" / "g++-12", "12")))
    nvcc = fake_nvcc(tmp_path, "12.4.131")
    monkeypatch.setenv("CYFES_NVCC_CU12", str(nvcc))
    assert find_toolchain(cu12).version == "12.4.131"
    conda = find_compiler(variant("cuda12x"))
    assert conda.compiler is None and f"CYFES_NVCC_CU12={nvcc} is nvcc 12.4.131, not CUDA 12.9" in conda.reason


# ------------------------------------------------------------------------------------------------ release
def cuobjdump() -> str | None:
    """NVIDIA's cuobjdump from the nvidia-cuda-cuobjdump wheel (requirements-dev), else one on PATH."""
    exe = Path(sys.prefix) / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages" / \
        "nvidia" / "cu13" / "bin" / "cuobjdump"
    return str(exe) if exe.is_file() else shutil.which("cuobjdump")


def released_wheels() -> list[Path]:
    cfg = load_config(ROOT / "release.yaml")
    wheels = sorted((ROOT / cfg.output).glob("cyfes-*.whl"))
    if not wheels or not cfg.cuda.enabled:
        pytest.skip(f"no GPU wheels in {cfg.output}/ (run make dist)")
    return wheels


def member(wheel: Path, name: str, tmp: Path) -> Path:
    with zipfile.ZipFile(wheel) as zf:
        (path,) = [n for n in zf.namelist() if n.endswith(name)]
        out = tmp / Path(path).name
        out.write_bytes(zf.read(path))
    return out


def fatbinary(lib: Path) -> tuple[set[str], set[str]]:
    """(SASS archs, PTX archs) of a library's fatbinary, from cuobjdump's listing."""
    exe = cuobjdump()
    if exe is None:
        pytest.skip("no cuobjdump (pip install nvidia-cuda-cuobjdump)")
    text = subprocess.run([exe, "--list-elf", "--list-ptx", str(lib)], capture_output=True, text=True,
                          check=True).stdout
    sass = {m for line in text.splitlines() if line.startswith("ELF file") for m in re.findall(r"sm_\d+", line)}
    ptx = {m for line in text.splitlines() if line.startswith("PTX file") for m in re.findall(r"sm_\d+", line)}
    return sass, ptx


@pytest.mark.release
def test_released_libcufes_carries_the_flavours_sass_ptx_and_runtime(tmp_path) -> None:
    flavour = CUDA_FLAVOURS[load_config(ROOT / "release.yaml").cuda.flavour]
    for wheel in released_wheels():
        lib = member(wheel, "cyfes/engine/libcufes.so", tmp_path)
        sass, ptx = fatbinary(lib)
        assert sass == {f"sm_{a}" for a in flavour.sass}, wheel.name
        assert ptx == {f"sm_{flavour.ptx}"}, wheel.name
        # vendored: auditwheel names the graft after its file, libcudart-<hash>.so.11.8.89; pip: the SONAME itself
        major = flavour.cudart_soname.split(".so.")[1].split(".")[0]
        needed = [n for n in read_elf(lib, lib.name).needed if n.startswith("libcudart")]
        assert len(needed) == 1 and re.fullmatch(rf"libcudart(-[0-9a-f]{{8}})?\.so\.{major}(\.[\d.]+)?", needed[0]), needed
        info = member(wheel, "cyfes/_build_info.py", tmp_path).read_text()
        assert f'CUDA_VERSION = "{flavour.toolkit}.' in info
        assert f'CUDA_DRIVER_CUDA = "{flavour.driver_cuda}"' in info and f'"{flavour.driver_min}"' in info


@pytest.mark.release
def test_release_build_dir_libcufes_needs_the_flavour_soname() -> None:
    """Before auditwheel: the library as nvcc + CMake linked it names the flavour's runtime SONAME exactly."""
    flavour = CUDA_FLAVOURS[load_config(ROOT / "release.yaml").cuda.flavour]
    lib = ROOT / "build" / "release" / f"cufes-{flavour.name}-shared" / "install" / "lib" / "libcufes.so"
    if not lib.is_file():
        pytest.skip(f"{lib} not built (run make dist)")
    assert flavour.cudart_soname in read_elf(lib, lib.name).needed


# ------------------------------------------------------------------------------------------------ fetched cu12
@pytest.mark.slow
def test_fetched_cuda_124_builds_libcufes_with_the_cu12_sass_and_ptx(tmp_path) -> None:
    """Debian trixie's nvcc 12.4.131, fetched (or taken from the cache) by toolchain/cuda.py, builds cuda/ for the
    cu12 architectures: cuobjdump lists SASS for exactly the table's architectures, PTX for its PTX arch, and the
    library needs libcudart.so.12. About 5 minutes on 2 cores (first fetch: about 1 GB download)."""
    flavour = CUDA_FLAVOURS["cu12"]
    if shutil.which("cmake") is None:
        pytest.skip("no cmake on PATH")
    try:
        chain = find_toolchain(flavour, fetch=True)
    except ToolError as exc:
        pytest.skip(f"CUDA {flavour.toolkit} cannot be fetched or found here: {exc}")
    assert chain.version == "12.4.131"
    host = [f"-DCMAKE_CUDA_HOST_COMPILER={chain.host_compiler}"] if chain.host_compiler else []
    subprocess.run(["cmake", "-S", str(ROOT / "cuda"), "-B", str(tmp_path), f"-DCMAKE_CUDA_COMPILER={chain.nvcc}",
                    f"-DCMAKE_CUDA_ARCHITECTURES={flavour.cmake_architectures}", "-DCMAKE_BUILD_TYPE=Release", *host],
                   check=True, capture_output=True)
    subprocess.run(["cmake", "--build", str(tmp_path), f"-j{os.cpu_count() or 1}"], check=True, capture_output=True)
    lib = tmp_path / "libcufes.so"
    sass, ptx = fatbinary(lib)
    assert sass == {f"sm_{a}" for a in (60, 70, 75, 80, 86, 89, 90)} == {f"sm_{a}" for a in flavour.sass}
    assert ptx == {"sm_90"}
    assert "libcudart.so.12" in read_elf(lib, lib.name).needed
