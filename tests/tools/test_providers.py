"""Providers as data: the table of NVIDIA's runtime wheels, extended by release.yaml and by provider wheels, and
`check`/`fix` on a third-party-style wheel whose extension links libcublas.so.12 and libcudart.so.12 from
nvidia-cublas-cu12 and nvidia-cuda-runtime-cu12 (stub libraries and stub provider wheels built here with gcc,
laid out as NVIDIA's real wheels are). The fixed wheel is installed with real pip in every scheme and imported
under the real loader (LD_DEBUG), which must take both libraries from the providers' directories.
"""
from __future__ import annotations

import json
import sysconfig
from pathlib import Path

import pytest

import wheelfactory as wf
from tools.release.config import ConfigError, parse_config
from tools.release.providers import KNOWN_PROVIDERS, NVIDIA_WHEELS, normalize, rows_from_record, table, who_provides
from tools.release.targets import CUDA_FLAVOURS
from tools.release.verify.schemes import verify_scheme

SCHEMES = ("venv", "user", "debian", "prefix", "target")
PLATLIB = f"lib/python{wf.PY}/site-packages"
TAG = "manylinux_2_17_x86_64"
REQUIRES = ("nvidia-cublas-cu12>=12.1", "nvidia-cuda-runtime-cu12>=12.1")
EXT_C = r"""
#define PY_SSIZE_T_CLEAN
#include <Python.h>
int cublasGetVersion_stub(void);
int cudaRuntimeGetVersion_stub(void);
static PyObject *value(PyObject *self, PyObject *args) {
    return PyLong_FromLong(cublasGetVersion_stub() + cudaRuntimeGetVersion_stub()); }
static PyMethodDef methods[] = {{"value", value, METH_NOARGS, ""}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef mod = {PyModuleDef_HEAD_INIT, "_k", NULL, -1, methods};
PyMODINIT_FUNC PyInit__k(void) { return PyModule_Create(&mod); }
"""
SMOKE = "import kpkg._k as k; assert k.value() == 12090 + 12010, k.value(); print('kpkg ok', k.value())"


# --- the table ------------------------------------------------------------------------------------------------

def test_table_rows_match_real_wheel_layouts():
    """Spot checks against the RECORD of NVIDIA's wheels on PyPI (cu11 11.8, cu12 12.9, CUDA 13.0/13.1)."""
    rows = {(r.dist, r.path): r.libraries for r in NVIDIA_WHEELS}
    assert rows[("nvidia-cublas-cu12", "nvidia/cublas/lib")] == ("libcublas.so.12", "libcublasLt.so.12",
                                                                   "libnvblas.so.12")
    assert rows[("nvidia-cuda-runtime-cu11", "nvidia/cuda_runtime/lib")][0] == "libcudart.so.11.0"
    assert rows[("nvidia-cublas", "nvidia/cu13/lib")][:2] == ("libcublas.so.13", "libcublasLt.so.13")
    assert rows[("nvidia-nvjitlink-cu12", "nvidia/nvjitlink/lib")] == ("libnvJitLink.so.12",)
    assert rows[("nvidia-nccl-cu12", "nvidia/nccl/lib")] == ("libnccl.so.2",)
    assert {r.dist for r in who_provides("libcurand.so.10")} == {"nvidia-curand-cu11", "nvidia-curand-cu12",
                                                                  "nvidia-curand"}
    assert len({normalize(r.dist) for r in NVIDIA_WHEELS}) == len(NVIDIA_WHEELS)  # one row per distribution


def test_table_agrees_with_the_cuda_flavours():
    """targets.py's pip strategy names each flavour's runtime wheel and directory; the table must say the same."""
    for f in CUDA_FLAVOURS.values():
        provs = {p.soname: p for p in KNOWN_PROVIDERS[f.pip_runtime]}
        assert provs[f.cudart_soname].where == f.pip_runtime_dir, f.name


def test_lookup_is_pep503_normalised_and_extendable():
    extra = rows_from_record("acme-blas", ["acme/lib/libacme.so.3", "acme/__init__.py", "acme/lib/libacme_lt.so.3.1",
                                           "acme-1.0.data/data/lib/libnotthere.so.1"])
    assert [(r.path, r.libraries) for r in extra] == [("acme/lib", ("libacme.so.3", "libacme_lt.so.3.1"))]
    t = table(extra=extra)
    assert [(p.soname, p.where, p.package) for p in t["acme-blas"]] == [
        ("libacme.so.3", "{platlib}/acme/lib", "acme-blas"), ("libacme_lt.so.3.1", "{platlib}/acme/lib", "acme-blas")]
    replaced = table(extra=rows_from_record("nvidia_cublas_cu12", ["nvidia/cublas/lib64/libcublas.so.12"]))
    assert [p.where for p in replaced["nvidia-cublas-cu12"]] == ["{platlib}/nvidia/cublas/lib64"]
    assert t["nvidia-cublas-cu12"] == KNOWN_PROVIDERS["nvidia-cublas-cu12"]


def test_release_yaml_providers_key():
    c = parse_config("providers:\n  - dist: acme-blas\n    path: acme/lib\n    libraries: [libacme.so.3]\n")
    assert [(p.dist, p.path, p.libraries) for p in c.providers] == [("acme-blas", "acme/lib", ("libacme.so.3",))]
    with pytest.raises(ConfigError) as err:
        parse_config("providers:\n  - {dist: acme-blas, path: ../up, libraries: [libacme.so.3], pth: 1}\n"
                     "  - {dist: x}\n")
    assert [str(p) for p in err.value.problems] == [
        "In release.yaml, providers[0].path (line 2): '../up' is not allowed: expected a relative path inside "
        "site-packages",
        "In release.yaml, providers[0].pth (line 2): unknown key; did you mean 'path'? (allowed: dist, path, "
        "libraries)",
        "In release.yaml, providers[1] (line 3): needs path, libraries"]


# --- a wheel that links two provided libraries -------------------------------------------------------------------

@pytest.fixture(scope="module")
def kpkg(tmp_path_factory) -> dict[str, Path]:
    """The stub libraries, the provider wheels (wheelhouse) and the package's wheel (no RPATH to the providers)."""
    tmp = tmp_path_factory.mktemp("kpkg")
    stubs = tmp / "stubs"
    cublas = wf.gcc(stubs / "libcublas.so.12", {"cublas.c": "int cublasGetVersion_stub(void) { return 12090; }\n"},
                    "-Wl,-soname,libcublas.so.12")
    cudart = wf.gcc(stubs / "libcudart.so.12", {"cudart.c": "int cudaRuntimeGetVersion_stub(void) { return 12010; }\n"},
                    "-Wl,-soname,libcudart.so.12")
    house = tmp / "wheelhouse"
    house.mkdir()
    for dist, member, lib in (("nvidia_cublas_cu12", "nvidia/cublas/lib/libcublas.so.12", cublas),
                              ("nvidia_cuda_runtime_cu12", "nvidia/cuda_runtime/lib/libcudart.so.12", cudart)):
        wf.write_raw_wheel(house / f"{dist}-12.9.0-py3-none-{TAG}.whl", {member: lib.read_bytes()}, dist=dist,
                           version="12.9.0", tag=f"py3-none-{TAG}")
    inc = sysconfig.get_paths()["include"]
    ext = wf.gcc(tmp / "b" / f"_k{wf.EXT_SUFFIX}", {"k.c": EXT_C}, f"-I{inc}", f"-L{stubs}", "-l:libcublas.so.12",
                 "-l:libcudart.so.12")
    wheel = wf.write_raw_wheel(tmp / f"kpkg-1.0-{wf.TAG}-{wf.TAG}-{TAG}.whl",
                               {"kpkg/__init__.py": b"", f"kpkg/_k{wf.EXT_SUFFIX}": ext.read_bytes()}, dist="kpkg",
                               tag=f"{wf.TAG}-{wf.TAG}-{TAG}", requires=REQUIRES)
    return {"wheel": wheel, "wheelhouse": house, "dir": tmp, "cublas": house / f"nvidia_cublas_cu12-12.9.0-py3-none-{TAG}.whl"}


def _check(run_release, wheel: Path, *extra: str):
    proc = run_release("check", "--json", *extra, str(wheel))
    (report,) = json.loads(proc.stdout)
    return proc, report


def test_check_says_provided_only_if_preloaded(kpkg, run_release):
    proc, report = _check(run_release, kpkg["wheel"], "--scheme", "venv", "--scheme", "user")
    assert proc.returncode == 1
    res = {r["needed"]: r for r in report["resolutions"][f"venv-{wf.PY}"]}
    assert res["libcublas.so.12"]["status"] == "preloaded"
    assert res["libcublas.so.12"]["found"] == f"{PLATLIB}/nvidia/cublas/lib/libcublas.so.12"
    assert res["libcudart.so.12"]["found"] == f"{PLATLIB}/nvidia/cuda_runtime/lib/libcudart.so.12"
    messages = {f["message"] for f in report["findings"]}
    assert (f"needs libcublas.so.12, provided by nvidia-cublas-cu12 at {PLATLIB}/nvidia/cublas/lib only if "
            "preloaded: no RPATH entry reaches it (fix adds one)") in messages
    assert not any("not found after install" in m for m in messages)
    text = run_release("check", "--scheme", "venv", str(kpkg["wheel"])).stdout
    assert f"provided only if preloaded: nvidia-cublas-cu12 at {PLATLIB}/nvidia/cublas/lib" in text


def test_undeclared_provider_is_not_found(kpkg, run_release, tmp_path):
    """Without Requires-Dist the libraries are nobody's: the loader's plain answer."""
    bare = wf.write_raw_wheel(tmp_path / kpkg["wheel"].name, _members(kpkg["wheel"]), dist="kpkg",
                              tag=f"{wf.TAG}-{wf.TAG}-{TAG}")
    proc, report = _check(run_release, bare, "--scheme", "venv")
    assert proc.returncode == 1
    assert {r["status"] for r in report["resolutions"][f"venv-{wf.PY}"] if r["needed"].startswith("libcu")} == {
        "missing"}


def _members(wheel: Path) -> dict[str, bytes]:
    import zipfile
    with zipfile.ZipFile(wheel) as z:
        return {n: z.read(n) for n in z.namelist() if ".dist-info/" not in n}


@pytest.fixture(scope="module")
def fixed(kpkg, tmp_path_factory) -> tuple[Path, dict]:
    from conftest import release
    out = tmp_path_factory.mktemp("fixed")
    proc = release("fix", "--json", str(kpkg["wheel"]), "-o", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (report,) = json.loads(proc.stdout)
    return out / kpkg["wheel"].name, report


def test_fix_adds_an_rpath_per_declared_provider(fixed, run_release):
    wheel, report = fixed
    assert report["written"] and report["ok"] and report["output"] == str(wheel)
    plan = report["rpath"][f"kpkg/_k{wf.EXT_SUFFIX}"]
    # both providers, $ORIGIN-relative from kpkg/ (site-packages/kpkg -> site-packages/nvidia/...)
    assert plan["new_rpath"] == ["$ORIGIN/../nvidia/cublas/lib", "$ORIGIN/../nvidia/cuda_runtime/lib"]
    proc, check = _check(run_release, wheel)
    assert proc.returncode == 0, check["findings"]
    for label, res in check["resolutions"].items():
        got = {r["needed"]: (r["status"], r["found"]) for r in res if r["needed"].startswith("libcu")}
        (ext,) = {r["file"] for r in res}
        site = str(Path(ext).parent.parent)  # the extension sits in <site-packages>/kpkg/
        site = "" if site == "." else site + "/"
        assert got == {"libcublas.so.12": ("provided", f"{site}nvidia/cublas/lib/libcublas.so.12"),
                       "libcudart.so.12": ("provided", f"{site}nvidia/cuda_runtime/lib/libcudart.so.12")}, label
    line = next(x for x in check["libraries"] if x["needed"] == "libcublas.so.12")
    assert (line["status"], line["resolved"]) == ("provided", f"{len(check['layouts'])}/{len(check['layouts'])}")
    text = run_release("check", "--scheme", "venv", str(wheel)).stdout
    assert f"provided by nvidia-cublas-cu12 at {PLATLIB}/nvidia/cublas/lib" in text


@pytest.mark.parametrize("scheme", SCHEMES)
def test_fixed_wheel_loads_from_the_providers_under_the_real_loader(fixed, kpkg, scheme):
    """Real pip installs the wheel and the provider wheels; the import must load both stubs from the install."""
    result = verify_scheme(fixed[0], scheme, wf.base_python(), SMOKE, kpkg["wheelhouse"])
    assert result.status == "ok", (result.status, result.detail, result.problems)
    assert result.detail == "kpkg ok 24100"
    for lib, sub in (("libcublas.so.12", "nvidia/cublas/lib"), ("libcudart.so.12", "nvidia/cuda_runtime/lib")):
        path = result.loaded[lib]
        assert path.startswith(result.root + "/") and path.endswith(f"/{sub}/{lib}"), result.loaded


def test_unfixed_wheel_fails_to_import_in_a_venv(kpkg):
    """The reference for the test above: the same install without fix does not load (nothing preloads)."""
    result = verify_scheme(kpkg["wheel"], "venv", wf.base_python(), SMOKE, kpkg["wheelhouse"])
    assert result.status == "failed" and "libcublas.so.12" in result.detail, result.detail


# --- fix's exit codes ------------------------------------------------------------------------------------------

def test_fix_writes_nothing_while_a_problem_remains(kpkg, run_release, tmp_path):
    """A library no declared dependency provides stays a problem: exit 1 and an empty output directory."""
    bare = wf.write_raw_wheel(tmp_path / kpkg["wheel"].name, _members(kpkg["wheel"]), dist="kpkg",
                              tag=f"{wf.TAG}-{wf.TAG}-{TAG}", requires=REQUIRES[:1])
    out = tmp_path / "out"
    proc = run_release("fix", str(bare), "-o", str(out))
    assert proc.returncode == 1
    assert not out.exists() or list(out.iterdir()) == []
    assert "wrote nothing: " in proc.stderr and "--allow-problems" in proc.stderr
    assert "needs libcudart.so.12, not found after install" in proc.stdout
    js = run_release("fix", "--json", str(bare), "-o", str(out))
    assert js.returncode == 1
    (report,) = json.loads(js.stdout)
    assert (report["written"], report["output"], report["ok"]) == (False, None, False)
    assert report["rpath"][f"kpkg/_k{wf.EXT_SUFFIX}"]["new_rpath"] == ["$ORIGIN/../nvidia/cublas/lib"]
    allowed = run_release("fix", "--allow-problems", "--json", str(bare), "-o", str(out))
    assert allowed.returncode == 1
    (report,) = json.loads(allowed.stdout)
    assert report["written"] and Path(report["output"]) == out / bare.name and (out / bare.name).is_file()


def test_provider_wheel_flag_places_an_undeclared_table_entry(kpkg, run_release, tmp_path):
    """--provider-wheel reads where a wheel's libraries land from its RECORD; a relocated provider is followed."""
    moved = wf.write_raw_wheel(tmp_path / f"nvidia_cublas_cu12-12.9.0-py3-none-{TAG}.whl",
                               {"nvidia/cublas/lib64/libcublas.so.12": b"\x7fELF-not-read"},
                               dist="nvidia_cublas_cu12", version="12.9.0", tag=f"py3-none-{TAG}")
    proc, report = _check(run_release, kpkg["wheel"], "--scheme", "venv", "--provider-wheel", str(moved))
    res = {r["needed"]: r for r in report["resolutions"][f"venv-{wf.PY}"]}
    assert res["libcublas.so.12"]["found"] == f"{PLATLIB}/nvidia/cublas/lib64/libcublas.so.12"
    out = tmp_path / "out"
    fix = run_release("fix", "--json", "--provider-wheel", str(moved), str(kpkg["wheel"]), "-o", str(out))
    assert fix.returncode == 0, fix.stdout
    (report,) = json.loads(fix.stdout)
    assert report["rpath"][f"kpkg/_k{wf.EXT_SUFFIX}"]["new_rpath"][0] == "$ORIGIN/../nvidia/cublas/lib64"
    bad = run_release("check", "--provider-wheel", str(tmp_path / "nope.whl"), str(kpkg["wheel"]))
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "nope.whl" in bad.stderr


def test_release_yaml_row_replaces_the_table_row(kpkg, run_release, tmp_path):
    cfg = tmp_path / "release.yaml"
    cfg.write_text("providers:\n  - {dist: NVIDIA_cublas.cu12, path: vendor/blas, libraries: [libcublas.so.12]}\n")
    proc = run_release("--config", str(cfg), "check", "--json", "--scheme", "venv", str(kpkg["wheel"]))
    (report,) = json.loads(proc.stdout)
    res = {r["needed"]: r for r in report["resolutions"][f"venv-{wf.PY}"]}
    assert res["libcublas.so.12"]["found"] == f"{PLATLIB}/vendor/blas/libcublas.so.12"
    assert res["libcudart.so.12"]["found"] == f"{PLATLIB}/nvidia/cuda_runtime/lib/libcudart.so.12"  # table row kept


# --- a provider already installed in the site-packages below --user ---------------------------------------------

def _user_install_over_venv(kpkg, wheel: Path, tmp: Path) -> tuple[str, dict[str, str], Path]:
    """A venv with --system-site-packages holding the providers, then `pip install --user` of the package: pip
    finds the providers satisfied below and installs only the package into the user site."""
    import subprocess
    venv, user = tmp / "venv", tmp / "userbase"
    subprocess.run([wf.base_python(), "-m", "venv", "--system-site-packages", str(venv)], check=True, timeout=300)
    py = str(venv / "bin" / "python")
    pip = [py, "-m", "pip", "--disable-pip-version-check", "install", "-q", "--no-index", "--find-links",
           str(kpkg["wheelhouse"])]
    subprocess.run([*pip, "nvidia-cublas-cu12", "nvidia-cuda-runtime-cu12"], check=True, capture_output=True,
                   timeout=300)
    env = {k: v for k, v in __import__("os").environ.items() if k not in ("PYTHONPATH", "LD_LIBRARY_PATH",
                                                                          "PYTHONNOUSERSITE", "VIRTUAL_ENV")}
    env["PYTHONUSERBASE"] = str(user)
    proc = subprocess.run([*pip, "--user", str(wheel)], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return py, env, user / "lib" / f"python{wf.PY}" / "site-packages"


def test_user_install_over_a_venv_that_has_the_providers(fixed, kpkg, run_release, tmp_path):
    """What check calls a limitation of the user scheme happens under real pip and the real loader: the fixed
    wheel's RPATH looks beside the package, the providers sit in the venv's site-packages, the import fails, and
    it works once the providers are preloaded."""
    import subprocess
    py, env, user_site = _user_install_over_venv(kpkg, fixed[0], tmp_path)
    assert (user_site / "kpkg").is_dir() and not (user_site / "nvidia").exists()
    plain = subprocess.run([py, "-c", SMOKE], capture_output=True, text=True, env=env, timeout=120)
    assert plain.returncode != 0 and "libcublas.so.12: cannot open shared object file" in plain.stderr
    preload = ("import ctypes, os, sys; site = next(p for p in sys.path if os.path.isdir(p + '/nvidia')); "
               "[ctypes.CDLL(f'{site}/nvidia/{d}/lib/{n}', ctypes.RTLD_GLOBAL) for d, n in "
               "(('cublas', 'libcublas.so.12'), ('cuda_runtime', 'libcudart.so.12'))]; " + SMOKE)
    warm = subprocess.run([py, "-c", preload], capture_output=True, text=True, env=env, timeout=120)
    assert warm.returncode == 0 and warm.stdout.strip() == "kpkg ok 24100", warm.stderr
    proc, report = _check(run_release, fixed[0], "--scheme", "user", "--scheme", "venv")
    assert proc.returncode == 0  # a limitation, said plainly; no RPATH can do better
    limits = {(f["scheme"], f["message"].split(":")[0]) for f in report["findings"] if f["severity"] == "limitation"}
    assert limits == {(f"user-{wf.PY}", "needs libcublas.so.12 from nvidia-cublas-cu12"),
                      (f"user-{wf.PY}", "needs libcudart.so.12 from nvidia-cuda-runtime-cu12")}
