"""cyfes reweight against FES_from_Reweighting.py's mathematics, re-derived here in float64 numpy: the kernel sum
per grid point, the running windows of --stride, the weighted blocks with their effective number and
uncertainty, DeltaF and Kish's effective sample size; and its file layout, header lines and errors."""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import pytest

from cyfes.commands import main as cli

KT = 2.494


def write_colvar(path: Path, n: int = 900, seed: int = 11) -> Dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    cols = {"time": np.arange(n) * 0.5,
            "phi": (rng.normal(-1.0, 0.8, n) + math.pi) % (2 * math.pi) - math.pi,
            "d": rng.normal(1.0, 0.3, n),
            "metad.bias": rng.uniform(0, 12, n),
            "wall.bias": rng.uniform(0, 1, n)}
    lines = ["#! FIELDS " + " ".join(cols), "#! SET min_phi -pi", "#! SET max_phi pi"]
    lines += [" ".join(f"{v:.9f}" for v in row) for row in zip(*cols.values())]
    path.write_text("\n".join(lines) + "\n")
    return cols


def read_out(path: Path) -> Tuple[Dict[str, str], np.ndarray, List[str]]:
    lines = path.read_text().splitlines()
    sets = {ln.split()[2]: ln.split()[3] for ln in lines if ln.startswith("#! SET")}
    rows = np.array([[float(t) for t in ln.split()] for ln in lines if ln.strip() and not ln.startswith("#")])
    return sets, rows, lines


def run(tmp_path: Path, args: List[str]) -> int:
    old = os.getcwd()
    os.chdir(tmp_path)
    try:
        return cli.main(["reweight", "-q", "--device", "cpu"] + args)
    finally:
        os.chdir(old)


def fes_ref(x: np.ndarray, s: np.ndarray, logw: np.ndarray, sigma: float, period: float = 0.0) -> np.ndarray:
    """-kT ln sum_j exp(logw_j - (x - s_j)^2 / 2 sigma^2), nearest image when periodic (unnormalised)."""
    d = x[:, None] - s[None, :]
    if period:
        d = np.abs(d)
        d = np.minimum(d, period - d)
    a = logw[None, :] - 0.5 * (d / sigma) ** 2
    top = a.max(axis=1)
    return -KT * (top + np.log(np.exp(a - top[:, None]).sum(axis=1)))


def lse(a: np.ndarray) -> float:
    return float(a.max() + np.log(np.exp(a - a.max()).sum()))


def test_1d_fes_header_and_ess(tmp_path):
    c = write_colvar(tmp_path / "COLVAR")
    assert run(tmp_path, ["--cv", "d", "--sigma", "0.05", "--kt", str(KT), "--bin", "80"]) == 0
    sets, rows, lines = read_out(tmp_path / "fes-rew.dat")
    assert lines[0] == "#! FIELDS d file.free"
    assert [ln.split()[2] for ln in lines[1:7]] == ["sample_size", "effective_sample_size", "min_d", "max_d",
                                                   "nbins_d", "periodic_d"]
    logw = (c["metad.bias"] + c["wall.bias"]) / KT  # default: every .bias column
    w = np.exp(logw - logw.max())
    assert sets["sample_size"] == "900"
    assert float(sets["effective_sample_size"]) == pytest.approx(w.sum() ** 2 / (w ** 2).sum(), rel=1e-5)
    x = np.linspace(c["d"].min(), c["d"].max(), 81)
    assert sets["nbins_d"] == "81" and sets["min_d"] == "%g" % c["d"].min()
    f = fes_ref(x, c["d"], logw, 0.05)
    np.testing.assert_allclose(rows[:, 0], x, atol=1e-6)
    np.testing.assert_allclose(rows[:, 1], f - f.min(), atol=2e-6)
    assert lines[7] == "% 12.6f  % 12.6f" % (x[0], f[0] - f.min())


def test_2d_periodic_grid_drops_the_repeated_end_and_runs_first_cv_fastest(tmp_path):
    c = write_colvar(tmp_path / "COLVAR")
    assert run(tmp_path, ["--cv", "phi,d", "--sigma", "0.2,0.05", "--temp", "300", "--bin", "20,20",
                          "--bias", "metad.bias", "--nomintozero"]) == 0
    kbt = 300 * 0.0083144621
    sets, rows, lines = read_out(tmp_path / "fes-rew.dat")
    assert sets["nbins_phi"] == "20" and sets["periodic_phi"] == "true" and sets["nbins_d"] == "21"
    gx = np.linspace(-math.pi, math.pi, 21)[:-1]
    gy = np.linspace(c["d"].min(), c["d"].max(), 21)
    assert rows.shape == (20 * 21, 3)
    np.testing.assert_allclose(rows[:20, 0], gx, atol=1e-6)  # first CV fastest
    np.testing.assert_allclose(rows[::20, 1], gy, atol=1e-6)
    assert lines[11 + 20] == "" and lines[-1] == ""  # a blank line after each run of the first CV
    logw = c["metad.bias"] / kbt
    px, py = np.tile(gx, 21)[:, None], np.repeat(gy, 20)[:, None]  # exact grid, first CV fastest
    dphi = np.abs(px - c["phi"][None, :])
    dphi = np.minimum(dphi, 2 * math.pi - dphi)
    a = logw[None, :] - 0.5 * (dphi / 0.2) ** 2 - 0.5 * ((py - c["d"][None, :]) / 0.05) ** 2
    top = a.max(axis=1)
    f = -kbt * (top + np.log(np.exp(a - top[:, None]).sum(axis=1)) - lse(logw))  # --nomintozero: normalised
    np.testing.assert_allclose(rows[:, 2], f, atol=2e-6)


def test_stride_running_windows_skip_the_remainder_first(tmp_path):
    c = write_colvar(tmp_path / "COLVAR", n=1000)
    assert run(tmp_path, ["--cv", "phi", "--sigma", "0.1", "--kt", str(KT), "--bin", "40", "--stride", "300",
                          "--deltaFat", "-0.5", "-o", "run/fes.dat"]) == 2  # no such directory: nothing written
    (tmp_path / "run").mkdir()
    assert run(tmp_path, ["--cv", "phi", "--sigma", "0.1", "--kt", str(KT), "--bin", "40", "--stride", "300",
                          "--deltaFat", "-0.5", "-o", "run/fes.dat"]) == 0
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["fes_1.dat", "fes_2.dat", "fes_3.dat"]
    logw = (c["metad.bias"] + c["wall.bias"]) / KT
    x = np.linspace(-math.pi, math.pi, 41)[:-1]
    start = 1000 % 300  # the first 100 samples are dropped so that three strides fit
    for it, end in enumerate([400, 700, 1000], start=1):
        sets, rows, _ = read_out(tmp_path / "run" / f"fes_{it}.dat")
        f = fes_ref(x, c["phi"][start:end], logw[start:end], 0.1, 2 * math.pi)
        np.testing.assert_allclose(rows[:, 1], f - f.min(), atol=2e-6)
        assert int(sets["sample_size"]) == end - start
        df = -KT * lse(-f[x > -0.5] / KT) + KT * lse(-f[x < -0.5] / KT)
        assert float(sets["DeltaF"]) == pytest.approx(df, rel=1e-5, abs=1e-5)


def test_blocks_weighted_average_effective_number_and_uncertainty(tmp_path):
    c = write_colvar(tmp_path / "COLVAR", n=1003)
    assert run(tmp_path, ["--cv", "d", "--sigma", "0.06", "--kt", str(KT), "--bin", "30", "--blocks", "4",
                          "--deltaFat", "1.0"]) == 0
    names = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("fes-rew"))
    assert names == ["fes-rew.dat", "fes-rew_1.dat", "fes-rew_2.dat", "fes-rew_3.dat", "fes-rew_4.dat"]
    logw = (c["metad.bias"] + c["wall.bias"]) / KT
    stride = 1003 // 4
    start = 1003 % stride
    x = np.linspace(c["d"][:].min(), c["d"].max(), 31)
    block_f, block_lw = [], []
    for b in range(4):
        lo, hi = start + b * stride, start + (b + 1) * stride
        block_lw.append(lse(logw[lo:hi]))
        block_f.append(fes_ref(x, c["d"][lo:hi], logw[lo:hi], 0.06) + KT * block_lw[-1])  # normalised per block
        sets, rows, _ = read_out(tmp_path / f"fes-rew_{b + 1}.dat")
        np.testing.assert_allclose(rows[:, 1], block_f[-1] - block_f[-1].min(), atol=2e-6)
    w = np.exp(np.array(block_lw) - max(block_lw))
    neff = w.sum() ** 2 / (w ** 2).sum()
    bf = np.array(block_f)
    f = -KT * np.log((w[:, None] * np.exp(-bf / KT)).sum(axis=0) / w.sum())
    err = KT * np.sqrt((w[:, None] * np.expm1(-(bf - f) / KT) ** 2).sum(axis=0) / w.sum() / (neff - 1))
    sets, rows, lines = read_out(tmp_path / "fes-rew.dat")
    assert lines[0] == "#! FIELDS d file.free uncertainty"
    assert sets["blocks_num"] == "4" and float(sets["blocks_effective_num"]) == pytest.approx(neff, rel=1e-5)
    assert int(sets["sample_size"]) == 1003 - start
    np.testing.assert_allclose(rows[:, 1], f - f.min(), atol=2e-6)
    np.testing.assert_allclose(rows[:, 2], err, atol=2e-6)
    fs = f - f.min()
    df = -KT * lse(-fs[x > 1.0] / KT) + KT * lse(-fs[x < 1.0] / KT)
    assert float(sets["DeltaF"]) == pytest.approx(df, rel=1e-5, abs=1e-5)


def test_derivatives_reverse_and_column_numbers(tmp_path):
    c = write_colvar(tmp_path / "COLVAR", n=500)
    assert run(tmp_path, ["--cv", "3", "--bias", "4", "--sigma", "0.05", "--kt", str(KT), "--bin", "25",
                          "--der", "--skiprows", "20", "--reverse", "--fmt", "%.8f"]) == 0
    sets, rows, lines = read_out(tmp_path / "fes-rew.dat")
    assert lines[0] == "#! FIELDS d file.free der_d"
    s, logw = c["d"][20:][::-1], c["metad.bias"][20:][::-1] / KT
    x = np.linspace(s.min(), s.max(), 26)
    a = logw[None, :] - 0.5 * ((x[:, None] - s[None, :]) / 0.05) ** 2
    p = np.exp(a - a.max(axis=1, keepdims=True))
    der = KT / 0.05 ** 2 * (x - (p * s).sum(axis=1) / p.sum(axis=1))
    np.testing.assert_allclose(rows[:, 2], der, atol=1e-6 * np.abs(der).max())


@pytest.mark.parametrize("args, message", [
    (["--cv", "chi", "--sigma", "0.1", "--kt", "2.5"], "--cv chi: no such column"),
    (["--cv", "d", "--sigma", "0.1", "--kt", "2.5", "--bias", "nosuch.bias"], "--bias nosuch.bias"),
    (["--cv", "d", "--sigma", "0.1", "--kt", "2.5", "--stride", "5000"], "--stride 5000: larger than"),
    (["--cv", "d,phi", "--sigma", "0.1", "--kt", "2.5"], "--sigma 0.1: expected 2"),
    (["--cv", "d", "--sigma", "-1", "--kt", "2.5"], "> 0"),
    (["--cv", "phi", "--sigma", "0.1", "--kt", "2.5", "--der"], "--der"),
    (["-f", "missing", "--cv", "d", "--sigma", "0.1", "--kt", "2.5"], "missing"),
    (["--cv", "d", "--sigma", "0.1", "--kt", "2.5", "--skiprows", "900"], "no rows left"),
    (["--cv", "d", "--sigma", "0.1"], "--kt"),
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, args, message):
    write_colvar(tmp_path / "COLVAR")
    before = set(tmp_path.iterdir())
    assert run(tmp_path, args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert set(tmp_path.iterdir()) == before
