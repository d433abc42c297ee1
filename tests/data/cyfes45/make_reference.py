"""Write the CyFES 4.5 reference files of tests/workflows/test_compat.py with CyFES 4.5's OWN command line code.

CyFES 4.5's `cyfes/__main__.py` and `cyfes/utils.py` are taken from its wheel (CyFES==4.5, cp310, from PyPI)
and run unchanged: its argument parsing, readers, grid (`np.linspace`, float32 -cmin/-cmax, -e, -intg), -a/-b,
clip, `save_cube`, `cube2xyz` and `save2dat`. Only its GPU kernels (the compiled `cyfes.wrapper`, which needs
CUDA) are replaced by the numpy functions below, which do what the wrapper's Cython source (kept as comments in
the wheel's wrapper.c) and the PTX of its libcufes.so do, in float64 direct sums:

    weight_j = exp(V_j / kT)                 kT = 0.596128107 (kcal/mol), V the bias column
    height_j = weight_j / (15.74961 * bw0 * bw1 * bw2)
    dis_j(x) = height_j * exp(-|x/bw - s_j/bw|^2 / 2)
    F(x)     = -kT * log(sum_j dis_j(x) / N);   F -= min(F)
    V(x)     = kT * sum_j prod_d exp(-(x_d - s_jd)^2 / 2 bw_d^2)          (FastBias, for -oV / -oF)

with 4.5's float32 device exp: each exp(t) is computed as a float32 and is exactly 0 once
trunc(float32(t) * float32(log2 e)) <= -150 (t <= -103.97; a grid point 14.42 sigma away from every sample
then has F = +inf, written as 450) and +inf once it is >= 128. The values themselves are float64 here; the
device's float32 rounding (about 1e-7 relative per term) is below the 6 digits written except, rarely, in the
last one.

Grid order: 4.5 computes on `np.meshgrid(x, y, z)` (y slowest) and reorders with
`.reshape((gx, gy, gz)).swapaxes(0, 1)`, right only when gx == gy. With `--order correct` (the default) the
numpy kernel hands 4.5 its values pre-arranged so that after that reordering the file is x slowest, z fastest:
what CyFES 4.5 would write without the bug, and what cyfes writes. `--order 4.5` keeps 4.5's own order.

    python tests/data/cyfes45/make_reference.py [--wheel cyfes-4.5-cp310-...whl]

Without --wheel, `pip download CyFES==4.5` fetches the cp310 manylinux wheel (running needs numpy and an
installed cyfes).
`--kernels gpu` (a machine with an NVIDIA GPU) runs 4.5's REAL CUDA kernels instead of the numpy ones: that is
how the files in gpu/ were made, to check the numpy kernels (see README.md here).
"""
from __future__ import annotations

import argparse
import logging
import os
import runpy
import subprocess
import sys
import tempfile
import types
import zipfile
from pathlib import Path

import numpy as np

# CyFES 4.5's float32 exp rule, from the one copy in the package. Imported before load_cyfes45 gives the name
# "cyfes" in sys.modules to 4.5's own package.
from cyfes.workflows.cyfes45 import exp45

HERE = Path(__file__).resolve().parent
KT = 0.596128107
SQRT2PI3 = 15.74961

#: name -> the CyFES 4.5 command line (run in HERE).
CASES = {
    # gx == gy: 4.5's own order is right; default range of the data, -e edge, void corners (450)
    "case1": "-i xyz_bias.txt -g 6,6,4 -e 1.5 -sigma 0.3 -o case1.cub -odat case1.dat",
    # gx != gy (4.5 would scramble it), csv, -ic order, rbias replacing the bias, -s, float32 -cmin/-cmax, -e,
    # -intg, -a/-b
    "case2": "-i xyz_bias.csv -ic 2,0,1 -ib 3 -ir 4 -no_rbias false -s 45 -g 3,5,4 -cmin=-1.3,-2.1,-1.5 "
             "-cmax 6.2,6.55,5.1 -e 0.25 -intg true -sigma 0.6 -a 2 -b -1 -o case2.cub -odat case2.dat",
    # float32 path, no bias at all, only the .dat (4.5 writes and removes a temporary cube)
    "case3": "-i xyz_bias.txt -no_bias true -f32 true -g 4,4,4 -cmin 0.1,0.2,0.3 -cmax 3.9,4.1,3.3 -sigma 0.5 "
             "-odat case3.dat",
    # the sink-method outputs -oV / -oF
    "case4": "-i xyz_bias.txt -g 4,4,4 -sigma 0.8 -oV case4_V.dat -oF case4_F.dat",
}


def path_fes(rpath: np.ndarray, cv: np.ndarray, bw: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """FastPathFES: rpath and cv already divided by bw."""
    rpath, cv, bw, bias = (np.asarray(a, dtype=np.float64) for a in (rpath, cv, bw, bias))
    height = exp45(bias / KT) / (SQRT2PI3 * bw[0] * bw[1] * bw[2])
    res = np.empty(len(rpath))
    for i, x in enumerate(rpath):
        d2 = ((x[None, :] - cv) ** 2).sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            res[i] = -KT * np.log(np.sum(height * exp45(-0.5 * d2)) / len(cv))
    with np.errstate(invalid="ignore"):
        return res - np.min(res)


def fast_bias(rpath: np.ndarray, cv: np.ndarray, bw: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """FastBias: kT * sum_j prod_d exp(-(x_d - s_jd)^2 / 2), per axis (rpath, cv divided by bw)."""
    rpath, cv = np.asarray(rpath, dtype=np.float64), np.asarray(cv, dtype=np.float64)
    res = np.empty(len(rpath))
    for i, x in enumerate(rpath):
        e = exp45(-0.5 * (x[None, :] - cv) ** 2)
        res[i] = KT * np.sum(e[:, 0] * e[:, 1] * e[:, 2])
    return res


def gpu_kernels(wheel: Path, dest: Path) -> dict:
    """CyFES 4.5's real GPU kernels (its libcufes.so / libcufes.1.so from the wheel, CUDA 10.2, PTX for sm_30),
    driven through ctypes exactly as its Cython wrapper drives them (FastPathFES, FastPathFES_f32, FastBias).
    Only for checking the numpy kernels above on a machine with an NVIDIA GPU (--kernels gpu)."""
    import ctypes

    with zipfile.ZipFile(wheel) as zf:
        for name in zf.namelist():
            base = Path(name).name
            if base.startswith(("libcufes", "libcudart")):
                (dest / base).write_bytes(zf.read(name))
    cudart = next(dest.glob("libcudart*"))
    ctypes.CDLL(str(cudart), mode=ctypes.RTLD_GLOBAL)
    lib = ctypes.CDLL(str(dest / "libcufes.so"), mode=ctypes.RTLD_GLOBAL)
    lib32 = ctypes.CDLL(str(dest / "libcufes.1.so"))
    P, I, D, F = ctypes.c_void_p, ctypes.c_int, ctypes.c_double, ctypes.c_float
    lib.GetWeight.argtypes = [I, P, D, P]
    lib.StickCv.argtypes, lib.StickCv.restype = [I, P, I], P
    lib.ReleaseCv.argtypes = [P, I]
    lib.GaussGetDistHeightStream.argtypes = [I, P, P, P, P, P]
    lib.GaussGetBiasStream.argtypes = [I, P, P, P, P, P]
    lib.cudaStreamCreate.argtypes = [P]
    lib32.GetWeight.argtypes = [I, P, F, P]
    lib32.StickCv.argtypes, lib32.StickCv.restype = [I, P], P
    lib32.ReleaseCv.argtypes = [P]
    lib32.GaussGetDistHeightDevice.argtypes = [I, P, P, P, P]
    ptr = lambda a: a.ctypes.data_as(P)  # noqa: E731

    def streams():
        s1, s2 = P(), P()
        lib.cudaStreamCreate(ctypes.byref(s1))
        lib.cudaStreamCreate(ctypes.byref(s2))
        return s1, s2

    def fast_path_fes(crd, cv, bw, bias):
        crd, cv = (np.ascontiguousarray(a, dtype=np.float64) for a in (crd, cv))
        bw, bias = (np.ascontiguousarray(a, dtype=np.float64) for a in (bw, bias))
        n = len(cv)
        weight = np.zeros(n)
        lib.GetWeight(n, ptr(bias), 0.0, ptr(weight))
        height = np.zeros(n)
        volume = SQRT2PI3 * bw[0] * bw[1] * bw[2]
        for i in range(n):
            height[i] = weight[i] / volume
        dev = lib.StickCv(n, ptr(cv), 0)
        s1, s2 = streams()
        dis, res = np.zeros(n), np.zeros(len(crd))
        for i in range(len(crd)):
            lib.GaussGetDistHeightStream(n, ptr(crd[i]), dev, ptr(dis), ptr(height), s1 if i % 2 == 0 else s2)
            with np.errstate(divide="ignore"):
                res[i] = -KT * np.log(np.sum(dis, axis=-1) / n)
        res = res - np.min(res)
        lib.ReleaseCv(dev, 0)
        return res

    def fast_path_fes_f32(crd, cv, bw, bias):
        crd, cv = (np.ascontiguousarray(a, dtype=np.float32) for a in (crd, cv))
        bw, bias = (np.ascontiguousarray(a, dtype=np.float32) for a in (bw, bias))
        kt = float(np.float32(KT))  # cdef float kT
        n = len(cv)
        weight = np.zeros(n, dtype=np.float32)
        lib32.GetWeight(n, ptr(bias), 0.0, ptr(weight))
        volume = np.float32(np.float32(np.float32(np.float32(SQRT2PI3) * bw[0]) * bw[1]) * bw[2])
        height = (weight / volume).astype(np.float32)
        dev = lib32.StickCv(n, ptr(cv))
        dis, res = np.zeros(n, dtype=np.float32), np.zeros(len(crd), dtype=np.float32)
        for i in range(len(crd)):
            lib32.GaussGetDistHeightDevice(n, ptr(crd[i]), dev, ptr(dis), ptr(height))
            with np.errstate(divide="ignore"):
                res[i] = -kt * np.log(np.sum(dis, axis=-1) / n)
        res = res - np.min(res)
        lib32.ReleaseCv(dev)
        return res

    def fast_bias(crd, cv, bw, bias):
        crd, cv, bw = (np.ascontiguousarray(a, dtype=np.float64) for a in (crd, cv, bw))
        n = len(cv)
        dev = lib.StickCv(n, ptr(cv), 0)
        s1, s2 = streams()
        dis, res = np.ones(n), np.zeros(len(crd))
        for i in range(len(crd)):
            lib.GaussGetBiasStream(n, ptr(crd[i]), dev, ptr(dis), ptr(bw), s1 if i % 2 == 0 else s2)
            res[i] = KT * np.sum(dis, axis=-1)
        lib.ReleaseCv(dev, 0)
        return res

    return {"FastPathFES": fast_path_fes, "FastPathFES_f32": fast_path_fes_f32, "FastBias": fast_bias}


def arranged(kernel, order: str):
    """Wrap a kernel so that 4.5's reshape((gx, gy, gz)).swapaxes(0, 1) leaves x slowest (order 'correct')."""
    def run(rpath, cv, bw, bias):
        rpath = np.asarray(rpath)
        if order == "4.5":
            return kernel(rpath, cv, bw, bias)
        # 4.5's path is meshgrid(x, y, z) flattened: y slowest, then x, then z.
        gx, gy, gz = (len(np.unique(rpath[:, d])) for d in range(3))
        xy = rpath.reshape(gy, gx, gz, 3)
        ij = xy.swapaxes(0, 1).reshape(-1, 3)  # x slowest
        values = np.asarray(kernel(ij, cv, bw, bias))  # right order, x slowest
        out = values.reshape(gy, gx, gz).swapaxes(0, 1).reshape(-1)
        assert np.array_equal(np.asarray(out).reshape(gx, gy, gz).swapaxes(0, 1).flatten(), values)
        return out.astype(np.asarray(rpath).dtype)
    return run


def fetch_wheel(dest: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                    "--python-version", "3.10", "--implementation", "cp", "--platform", "manylinux2014_x86_64",
                    "-d", str(dest), "CyFES==4.5"], check=True)
    return next(dest.glob("[Cc]y[Ff][Ee][Ss]-4.5-*.whl"))


def load_cyfes45(wheel: Path, dest: Path, order: str, kernels=None) -> Path:
    """A `cyfes` package in sys.modules: 4.5's utils.py, its __main__.py on disk, numpy (or given) kernels."""
    with zipfile.ZipFile(wheel) as zf:
        for name in ("cyfes/utils.py", "cyfes/__main__.py"):
            (dest / Path(name).name).write_bytes(zf.read(name))
    utils = types.ModuleType("cyfes.utils")
    utils.__file__ = str(dest / "utils.py")
    exec(compile((dest / "utils.py").read_text(), utils.__file__, "exec"), utils.__dict__)
    pkg = types.ModuleType("cyfes")
    pkg.__path__ = []
    pkg.utils = utils
    for name in ("read_out", "save_fes", "save_cube", "save_dat"):
        setattr(pkg, name, getattr(utils, name))
    kernels = kernels or {"FastPathFES": path_fes, "FastPathFES_f32": path_fes, "FastBias": fast_bias}
    for name, fn in kernels.items():
        setattr(pkg, name, arranged(fn, order))
    sys.modules["cyfes"] = pkg
    sys.modules["cyfes.utils"] = utils
    return dest / "__main__.py"


def run_case(main: Path, argv: str, where: Path) -> None:
    old_argv, old_cwd = sys.argv, os.getcwd()
    sys.argv = ["cyfes"] + argv.split()
    os.chdir(where)
    try:
        runpy.run_path(str(main), run_name="__main__")
    finally:
        sys.argv = old_argv
        os.chdir(old_cwd)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--wheel", type=Path, help="CyFES 4.5 wheel (default: pip download CyFES==4.5)")
    ap.add_argument("--order", choices=("correct", "4.5"), default="correct")
    ap.add_argument("--kernels", choices=("numpy", "gpu"), default="numpy",
                    help="numpy (the reference files) or gpu: 4.5's own CUDA kernels, to check the numpy ones")
    ap.add_argument("--out", type=Path, default=HERE, help="where to write the files (default: beside this)")
    ap.add_argument("cases", nargs="*", default=list(CASES))
    args = ap.parse_args()
    logging.disable(logging.INFO)
    with tempfile.TemporaryDirectory() as tmp:
        wheel = args.wheel or fetch_wheel(Path(tmp))
        kernels = gpu_kernels(wheel, Path(tmp)) if args.kernels == "gpu" else None
        main45 = load_cyfes45(wheel, Path(tmp), args.order, kernels)
        args.out.mkdir(parents=True, exist_ok=True)
        for name in args.cases:
            for f in ("xyz_bias.txt", "xyz_bias.csv"):
                if args.out.resolve() != HERE:
                    (args.out / f).write_bytes((HERE / f).read_bytes())
            run_case(main45, CASES[name], args.out)
            print(f"{name}: python -m cyfes {CASES[name]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
