"""sum_hills, reweight, fes, demo and the API under hostile hills, flags and degenerate weights.

Every refused case: exit status 2, one line on stderr (`cyfes: error: ...`, never a traceback), the directory
(inputs included) byte for byte as it was. Every accepted odd case is checked against an independent value: a
hand-worked formula, the same hills written another way, or a float64 numpy sum. API refusals are InputErrors
whose message names the argument.
"""
from __future__ import annotations

import math
import os
import signal
import time
from pathlib import Path
from typing import List, Sequence

import numpy as np
import pytest

import cyfes
from cyfes import InputError, analysis
from cyfes.commands.main import main
from cyfes.io import hills as hills_io
from cyfes.workflows import sum_hills as hillsum
from reference import tree

CPU = ["--device", "cpu"]
GOOD = [(1, 0.1, 0.2, 0.3, 0.3, 1.2, 10), (2, 1.0, -1.0, 0.3, 0.3, 1.2, 10)]


def write_hills(path: Path, rows: Sequence[Sequence[object]], periodic: bool = True, multi: bool = False) -> Path:
    with open(path, "w") as out:
        if multi:
            out.write("#! FIELDS time phi psi sigma_phi_phi sigma_psi_phi sigma_psi_psi height biasf\n"
                      "#! SET multivariate true\n")
        else:
            out.write("#! FIELDS time phi psi sigma_phi sigma_psi height biasf\n#! SET multivariate false\n")
        if periodic:
            out.write("#! SET min_phi -pi\n#! SET max_phi pi\n#! SET min_psi -pi\n#! SET max_psi pi\n")
        for row in rows:
            out.write(" ".join(str(v) for v in row) + "\n")
    return path


def write_colvar(path: Path, bias: np.ndarray, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.round(rng.normal(size=len(bias)), 6)
    with open(path, "w") as out:
        out.write("#! FIELDS time x opes.bias\n")
        for i, (xi, b) in enumerate(zip(x, bias)):
            out.write(f"{i} {xi:.6f} {b:.6g}\n")
    return x


def refused(root: Path, argv: List[str], capsys: pytest.CaptureFixture, *message: str) -> str:
    """Exit 2, one `cyfes: error:` line holding every `message`, no traceback, nothing under `root` changed."""
    before = tree(root)
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2, (code, out, err)
    assert len(err.splitlines()) == 1 and err.startswith("cyfes: error: ") and "Traceback" not in err, err
    for text in message:
        assert text in err, (text, err)
    assert tree(root) == before
    return err


# ----------------------------------------------------------------------------------------------- hills files
BAD_ROWS = {
    "sigma inf": ((3, 0.1, 0.2, "inf", 0.3, 1.2, 10), "sigma is not finite"),
    "sigma 1e-300": ((3, 0.1, 0.2, 1e-300, 0.3, 1.2, 10), "must lie within [1e-150, 1e+150]"),
    "sigma 1e300": ((3, 0.1, 0.2, 1e300, 0.3, 1.2, 10), "must lie within [1e-150, 1e+150]"),
    "sigma 0": ((3, 0.1, 0.2, 0.0, 0.3, 1.2, 10), "sigma must be > 0"),
    "centre nan": ((3, "nan", 0.2, 0.3, 0.3, 1.2, 10), "centre is not finite"),
    "centre inf": ((3, "-inf", 0.2, 0.3, 0.3, 1.2, 10), "centre is not finite"),
    "centre 1e300": ((3, 1e300, 0.2, 0.3, 0.3, 1.2, 10), "beyond +-1e+150"),
    "height nan": ((3, 0.1, 0.2, 0.3, 0.3, "nan", 10), "height is not finite"),
    "height inf": ((3, 0.1, 0.2, 0.3, 0.3, "inf", 10), "height is not finite"),
    "height 1e300": ((3, 0.1, 0.2, 0.3, 0.3, 1e300, 10), "height 1e+300 is beyond"),
}


@pytest.mark.parametrize("case", sorted(BAD_ROWS))
def test_hills_with_bad_values_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture, case: str) -> None:
    row, message = BAD_ROWS[case]
    write_hills(tmp_path / "HILLS", GOOD + [row])
    err = refused(tmp_path, ["sum_hills", "--hills", str(tmp_path / "HILLS"), "--outfile",
                             str(tmp_path / "fes.dat")] + CPU, capsys, message)
    assert "hill 3" in err


@pytest.mark.parametrize("entry, message", [("nan", "not finite"), ("inf", "not finite")])
def test_multivariate_hills_with_bad_entries_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                          entry: str, message: str) -> None:
    write_hills(tmp_path / "HILLS", [(1, 0.1, 0.2, 0.3, 0.1, 0.3, 1.2, 10), (2, 0.1, 0.2, 0.3, entry, 0.3, 1.2, 10)],
                multi=True)
    refused(tmp_path, ["sum_hills", "--hills", str(tmp_path / "HILLS"), "--min", "-pi,-pi", "--max", "pi,pi",
                       "--bin", "20,20", "--outfile", str(tmp_path / "fes.dat")] + CPU, capsys, "hill 2", message)


def test_multivariate_negative_diagonal_is_the_same_hill(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """The file holds a Cholesky factor L; -L has the same covariance L L^T, so the same surface."""
    grid = ["--min", "-pi,-pi", "--max", "pi,pi", "--bin", "24,24"] + CPU + ["-q"]
    write_hills(tmp_path / "neg", [(1, 0.1, 0.2, -0.3, 0.1, -0.4, 1.2, 10)], multi=True)
    write_hills(tmp_path / "pos", [(1, 0.1, 0.2, 0.3, -0.1, 0.4, 1.2, 10)], multi=True)
    assert main(["sum_hills", "--hills", str(tmp_path / "neg"), "--outfile", str(tmp_path / "a.dat")] + grid) == 0
    assert main(["sum_hills", "--hills", str(tmp_path / "pos"), "--outfile", str(tmp_path / "b.dat")] + grid) == 0
    assert capsys.readouterr().err == ""
    a, b = np.loadtxt(tmp_path / "a.dat"), np.loadtxt(tmp_path / "b.dat")
    np.testing.assert_allclose(a[:, 2], b[:, 2], rtol=0, atol=2e-9)  # the written 9 decimals
    # one hill on a periodic grid: -F = h (A e^-s + B) inside the cut, s from the metric (L L^T)^-1
    L = np.array([[0.3, 0.0], [-0.1, 0.4]])
    metric = np.linalg.inv(L @ L.T)
    d = (a[:, :2] - [0.1, 0.2] + math.pi) % (2 * math.pi) - math.pi
    s = 0.5 * np.einsum("ni,ij,nj->n", d, metric, d)
    want = np.where(s < hillsum.CUT, 1.2 * (hillsum.STRETCH_A * np.exp(-s) + hillsum.STRETCH_B), 0.0)
    inside = a[:, 2] != 0  # PLUMED's box (the widest eigenvector's extent) leaves out some of the cut's rim
    assert inside.sum() > 20 and want[~inside].max() < 0.1 * want.max()
    np.testing.assert_allclose(-a[inside, 2], want[inside], atol=2e-9)


def test_multivariate_hills_whose_support_gives_no_bins_are_refused(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture) -> None:
    write_hills(tmp_path / "HILLS", [(1, 0.1, 0.2, 0.3, 0.0, 0.3, 1.2, 10)], multi=True)
    refused(tmp_path, ["sum_hills", "--hills", str(tmp_path / "HILLS"), "--outfile", str(tmp_path / "f.dat")]
            + CPU, capsys, "cannot choose its bins", "--bin")


def test_periodic_centre_outside_the_domain_is_wrapped(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """As PLUMED: its periodic differences (and Grid's wrapped neighbours) place a hill at 4.0 on -pi..pi at
    4.0 - 2 pi."""
    grid = ["--min", "-pi,-pi", "--max", "pi,pi", "--bin", "50,50"] + CPU + ["-q"]
    write_hills(tmp_path / "out", GOOD + [(3, 4.0, 7.0, 0.3, 0.3, 1.2, 10)])
    write_hills(tmp_path / "in", GOOD + [(3, 4.0 - 2 * math.pi, 7.0 - 2 * math.pi, 0.3, 0.3, 1.2, 10)])
    assert main(["sum_hills", "--hills", str(tmp_path / "out"), "--outfile", str(tmp_path / "a.dat")] + grid) == 0
    assert main(["sum_hills", "--hills", str(tmp_path / "in"), "--outfile", str(tmp_path / "b.dat")] + grid) == 0
    a, b = np.loadtxt(tmp_path / "a.dat"), np.loadtxt(tmp_path / "b.dat")
    np.testing.assert_allclose(a, b, atol=2e-9)
    assert a[:, 2].min() < -1.0  # the wrapped hill is there


def test_far_centre_on_an_explicit_grid_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    write_hills(tmp_path / "HILLS", GOOD + [(3, 1e140, 0.2, 0.3, 0.3, 1.2, 10)], periodic=False)
    refused(tmp_path, ["sum_hills", "--hills", str(tmp_path / "HILLS"), "--min", "-1,-1", "--max", "1,1", "--bin",
                       "10,10", "--outfile", str(tmp_path / "f.dat")] + CPU, capsys, "hill 3", "grid steps")


def test_wide_hill_far_off_the_grid_adds_nothing_and_costs_nothing(tmp_path: Path) -> None:
    """A box reaching past the axis is cut to the axis; one missing it is skipped: same numbers as without."""
    rows = GOOD + [(3, 400.0, 0.2, 0.5, 0.3, 1.2, 10)]
    write_hills(tmp_path / "far", rows, periodic=False)
    write_hills(tmp_path / "near", GOOD, periodic=False)
    grid = ["--min", "-2,-2", "--max", "2,2", "--bin", "40,40"] + CPU + ["-q"]
    assert main(["sum_hills", "--hills", str(tmp_path / "far"), "--outfile", str(tmp_path / "a.dat")] + grid) == 0
    assert main(["sum_hills", "--hills", str(tmp_path / "near"), "--outfile", str(tmp_path / "b.dat")] + grid) == 0
    assert (tmp_path / "a.dat").read_bytes() == (tmp_path / "b.dat").read_bytes()


# ----------------------------------------------------------------------------------------------- sum_hills flags
@pytest.mark.parametrize("flags, message", [
    (["--bin", "10000000000000000000,10"], "--bin: a grid of 1.1e+20 points"),
    (["--bin", "1000000000,10"], "--bin: a grid of 11,000,000,011 points"),
    (["--min", "-1,-1", "--max", "1,1", "--spacing", "1e-300,0.1"], "--spacing: a grid of"),
    (["--min", "-1e308,-1", "--max", "1e308,1", "--bin", "10,10"], "spans more than the largest float64"),
    (["--fmt", "%.100000f"], "width and precision must be at most 100"),
    (["--fmt", "%d"], "one floating-point number"),
    (["--fmt", "%x"], "one floating-point number"),
    (["--fmt", "%f %f"], "one floating-point number"),
    (["--fmt", "%s"], "one floating-point number"),
    (["--kt", "-1"], "--kt: must be > 0"),
    (["--kt", "nan"], "--kt"),
    (["--idw", ","], "--idw: names no CV"),
])
def test_sum_hills_flags_are_checked_before_work(tmp_path: Path, capsys: pytest.CaptureFixture, flags: List[str],
                                                 message: str) -> None:
    write_hills(tmp_path / "HILLS", GOOD, periodic=False)
    refused(tmp_path, ["sum_hills", "--hills", str(tmp_path / "HILLS"), "--outfile", str(tmp_path / "fes.dat")]
            + flags + CPU, capsys, message)


def test_histo_sigma_beyond_float64_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    write_colvar(tmp_path / "COLVAR", np.zeros(50))
    refused(tmp_path, ["sum_hills", "--histo", str(tmp_path / "COLVAR"), "--idw", "x", "--sigma", "1e-300", "--kt",
                       "1", "--outhisto", str(tmp_path / "h.dat")] + CPU, capsys, "--sigma 1e-300")


def test_float_formats_are_accepted_and_print_the_same_numbers(tmp_path: Path) -> None:
    write_hills(tmp_path / "HILLS", GOOD, periodic=False)
    base = ["sum_hills", "--hills", str(tmp_path / "HILLS"), "--bin", "12,12", "-q"] + CPU
    assert main(base + ["--outfile", str(tmp_path / "a.dat")]) == 0
    assert main(base + ["--outfile", str(tmp_path / "b.dat"), "--fmt", "%.12e"]) == 0
    np.testing.assert_allclose(np.loadtxt(tmp_path / "b.dat"), np.loadtxt(tmp_path / "a.dat"), atol=1e-9)


def test_max_input_bytes_bounds_sum_hills_and_reweight(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    write_hills(tmp_path / "HILLS", GOOD)
    write_colvar(tmp_path / "COLVAR", np.zeros(50))
    monkeypatch.setenv("CYFES_MAX_INPUT_BYTES", "100")
    refused(tmp_path, ["sum_hills", "--hills", str(tmp_path / "HILLS"), "--outfile", str(tmp_path / "f.dat")]
            + CPU, capsys, "larger than 100 bytes", "CYFES_MAX_INPUT_BYTES")
    refused(tmp_path, ["reweight", "-f", str(tmp_path / "COLVAR"), "-o", str(tmp_path / "r.dat"), "-s", "0.2",
                       "--kt", "2.5", "--cv", "x"] + CPU, capsys, "larger than 100 bytes", "CYFES_MAX_INPUT_BYTES")


# ----------------------------------------------------------------------------------------------- reweight
@pytest.mark.parametrize("flags, message", [
    (["--bin", "10000000000000000000"], "--bin: a grid of 1e+19 points"),
    (["--bin", "1000000000"], "--bin: a grid of 1,000,000,001 points"),
    (["--fmt", "%d"], "one floating-point number"),
    (["--fmt", "%.100000f"], "at most 100"),
    (["--kt", "1e-308"], "the summed bias / kT is not finite"),
    (["--min", "-1e308", "--max", "1e308"], "spans more than the largest float64"),
])
def test_reweight_flags_are_checked_before_work(tmp_path: Path, capsys: pytest.CaptureFixture, flags: List[str],
                                                message: str) -> None:
    write_colvar(tmp_path / "COLVAR", np.linspace(0, 5, 60))
    argv = ["reweight", "-f", str(tmp_path / "COLVAR"), "-o", str(tmp_path / "r.dat"), "-s", "0.2", "--cv", "x"]
    refused(tmp_path, argv + (["--kt", "2.5"] if "--kt" not in flags else []) + flags + CPU, capsys, message)


def test_reweight_huge_bias_keeps_the_digits_and_gives_inf_not_nan_errors(tmp_path: Path) -> None:
    """One bias of 1e300 outweighs everything: F is that sample's kernel, kT (x - s)^2 / (2 sigma^2), min 0;
    every block holds one effective sample, so the block uncertainty is +inf (undefined), never NaN."""
    bias = np.random.default_rng(3).uniform(0, 5, 300)
    bias[3], bias[5] = 1e300, -1e300
    x = write_colvar(tmp_path / "COLVAR", bias)
    assert main(["reweight", "-f", str(tmp_path / "COLVAR"), "-o", str(tmp_path / "r.dat"), "-s", "0.2", "--kt",
                 "2.5", "--cv", "x", "--blocks", "5", "-q"] + CPU) == 0
    text = (tmp_path / "r.dat").read_text()
    assert "nan" not in text.lower()
    table = np.loadtxt(tmp_path / "r.dat")
    grid = np.linspace(x.min(), x.max(), 101)  # the script's grid (its 6 printed decimals are not enough here)
    np.testing.assert_allclose(table[:, 0], grid, atol=6e-7)
    want = 2.5 * 0.5 * ((grid - x[3]) / 0.2) ** 2
    np.testing.assert_allclose(table[:, 1], want - want.min(), atol=2e-6)
    assert np.isinf(table[:, 2]).all()
    assert "#! SET blocks_effective_num 1\n" in text


def test_block_error_is_inf_for_one_effective_block() -> None:
    w = np.array([1.0, 0.0, 0.0])
    from cyfes.workflows import reweight
    stack = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    assert np.isinf(reweight.block_error(stack, stack[0], w, 1.0, 2.5)).all()
    err = reweight.block_error(stack, stack.mean(axis=0), np.ones(3), 3.0, 2.5)
    want = 2.5 * np.sqrt(np.mean(np.expm1(-(stack - stack.mean(axis=0)) / 2.5) ** 2, axis=0) / 2.0)
    np.testing.assert_allclose(err, want, rtol=1e-14)


# ----------------------------------------------------------------------------------------------- fes
def test_sigma_auto_with_every_weight_zero_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    rng = np.random.default_rng(4)
    np.savetxt(tmp_path / "d.dat", np.column_stack([rng.normal(size=40), np.zeros(40)]), header="x w",
               comments="", fmt="%.8f")
    refused(tmp_path, ["fes", str(tmp_path / "d.dat"), "--cv", "x", "--weights", "w", "--sigma", "auto", "-o",
                       str(tmp_path / "f.dat")] + CPU, capsys, "sigma auto", "weight 0")


@pytest.mark.parametrize("quiet", [[], ["-q"]])
def test_delta_f_of_an_unknown_cv_is_refused_before_anything_is_written(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture,
                                                                       quiet: List[str]) -> None:
    rng = np.random.default_rng(5)
    np.savetxt(tmp_path / "d.dat", rng.normal(size=(60, 1)), header="x", comments="", fmt="%.8f")
    refused(tmp_path, ["fes", str(tmp_path / "d.dat"), "--sigma", "0.3", "--delta-f", "chi=0", "-o",
                       str(tmp_path / "f.dat")] + quiet + CPU, capsys, "--delta-f chi", "not one of the CVs (x)")


@pytest.mark.parametrize("kt", ["-1", "0", "inf", "nan"])
def test_fes_kt_must_be_finite_and_positive(tmp_path: Path, capsys: pytest.CaptureFixture, kt: str) -> None:
    np.savetxt(tmp_path / "d.dat", np.arange(10.0)[:, None], header="x", comments="")
    refused(tmp_path, ["fes", str(tmp_path / "d.dat"), "--sigma", "0.3", "--kt", kt, "-o", str(tmp_path / "f.dat")]
            + CPU, capsys, "--kt")


# ----------------------------------------------------------------------------------------------- demo
@pytest.mark.parametrize("where, message", [
    ("file/sub", "cannot create the directory"), ("/proc/cyfes-demo", "cannot create the directory"),
    ("/dev/null", "not a directory"), ("/dev/null/sub", "cannot create the directory"),
])
def test_demo_output_that_cannot_be_a_directory(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                monkeypatch: pytest.MonkeyPatch, where: str, message: str) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "file").write_text("mine\n")
    refused(tmp_path, ["demo", "-o", where, "-q", "--device", "cpu"], capsys, message)


def test_refused_demo_leaves_no_directory(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    refused(tmp_path, ["demo", "-o", str(tmp_path / "a" / "b"), "--device", "tpu"], capsys, "device")
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------------------------- API
CENTRES = np.array([[0.1, 0.2], [1.0, -1.0]])


@pytest.mark.parametrize("source, options, name", [
    (CENTRES, dict(sigma=np.inf, height=1.0), "sigma"),
    (CENTRES, dict(sigma=1e-300, height=1.0), "sigma"),
    (CENTRES, dict(sigma=[0.3, 0.3, 0.3], height=1.0), "sigma"),
    ([[1e300, 0.0]], dict(sigma=0.3, height=1.0), "centre"),
    ([[np.nan, 0.0]], dict(sigma=0.3, height=1.0), "centre"),
    (np.array([[1 + 2j, 0.0]]), dict(sigma=0.3, height=1.0), "complex"),
    (CENTRES, dict(sigma=0.3, height=1.0, periodic=[(1, -1), None]), "periodic[0]"),
    (CENTRES, dict(sigma=0.3, height=1.0, periodic=[(0, 0), None]), "periodic[0]"),
    (CENTRES, dict(sigma=0.3, height=1.0, periodic=[6.28, None]), "periodic[0]"),
    (CENTRES, dict(sigma=0.3, height=1.0, periodic=[6.28]), "periodic"),
    (CENTRES, dict(sigma=0.3, height=1.0, names=["a"]), "names"),
    (CENTRES, dict(sigma=0.3, height=1.0, names=["a", "a"]), "names"),
    (CENTRES, dict(sigma=0.3, height=[1.0, 2.0, 3.0]), "height"),
    (CENTRES, dict(sigma=0.3, height=[1.0, np.inf]), "height"),
    (CENTRES, dict(sigma=0.3, height=1.0, kt=-1.0), "kt"),
    (CENTRES, dict(sigma=0.3, height=1.0, idw=[]), "idw"),
    (CENTRES, dict(sigma=0.3, height=1.0, grid_min=[-1, -1], grid_max=[1, 1], bins=[True, 3]), "bins"),
    (CENTRES, dict(sigma=0.3, height=1.0, grid_min=[-1, -1], grid_max=[1, 1], bins=[10 ** 12, 3]), "bins"),
])
def test_hills_api_refusals_are_input_errors_naming_the_argument(source: object, options: dict, name: str) -> None:
    with pytest.raises(InputError, match=name.replace("[", r"\[").replace("]", r"\]")):
        cyfes.hills(source, device="cpu", **options)


def test_marginal_takes_numpy_integers_and_save_takes_bytes(tmp_path: Path) -> None:
    res = cyfes.hills(CENTRES, sigma=0.3, height=1.0, kt=2.5, device="cpu")
    got = res.marginal(np.int64(1))
    # -kT ln sum over CV 0 of e^{-F/kT}, shifted to min 0 (float64 numpy, from the surface itself)
    f = -2.5 * np.log(np.exp(-res.values / 2.5).sum(axis=0))
    np.testing.assert_allclose(got.values, f - f.min(), atol=1e-12)
    assert res.save(os.fsencode(str(tmp_path / "x.dat"))) == tmp_path / "x.dat"
    res.save(str(tmp_path / "y.dat"))
    assert (tmp_path / "x.dat").read_bytes() == (tmp_path / "y.dat").read_bytes()
    with pytest.raises(InputError, match="path"):
        res.save(3)
    with pytest.raises(InputError, match="marginal"):
        res.marginal(1.5)


def test_a_block_of_zero_weights_is_refused() -> None:
    x = np.random.default_rng(6).normal(size=90)
    w = np.ones(90)
    w[30:60] = 0.0
    with pytest.raises(InputError, match="blocks: a block of samples has only zero weights"):
        cyfes.fes(x, 0.3, weights=w, bins=21, ranges=[(-2, 2)], blocks=3, device="cpu")


def test_degenerate_blocks_give_inf_errors_never_nan() -> None:
    """Block 1 spans the grid and, by its bias, holds nearly all the weight; blocks 2 and 3 lie right of 0.5 with
    a sigma of 5e-9, so left of about 0.17 they are beyond float64's reach (F_b = +inf). There the block error
    and the Delta F block error are +inf, and with one effective block the weighted (script's) error is +inf
    everywhere, never NaN. F itself is the float64 reference's."""
    import reference
    rng = np.random.default_rng(6)
    x = np.concatenate([np.linspace(-2, 2, 30) + rng.uniform(-0.01, 0.01, 30), rng.uniform(0.5, 2, 60)])
    kT = reference.KB["kJ/mol"] * 300.0
    bias = np.concatenate([np.full(30, 800 * kT), np.zeros(60)])
    res = cyfes.fes(x, 5e-9, bias=bias, bins=41, ranges=[(-2, 2)], blocks=3, device="cpu", tolerance=0)
    want = reference.free_energy(x, [5e-9], res.points(), bias=bias)
    np.testing.assert_allclose(res.values, want, rtol=1e-9)
    assert not np.isnan(res.error).any() and not np.isnan(res.block_values).any()
    left = res.axes[0] < 0.15
    assert np.isinf(res.error[left]).all() and np.isinf(res.block_values[1:, left]).any(axis=0).all()
    value, err = res.delta_f(0, 0.0)
    assert math.isfinite(value) and err == math.inf
    assert res.blocks_effective < 1.0 + 1e-12
    assert np.isinf(analysis.weighted_block_error(res)).all()
    assert not any(np.isnan(s).any() for s in analysis.running(res))


def test_lse_of_nothing_is_minus_inf_and_marginal_of_empty_rows_is_inf() -> None:
    assert analysis.logsumexp(np.array([-np.inf, -np.inf])) == -np.inf
    res = cyfes.hills(CENTRES, sigma=0.3, height=1.0, device="cpu")
    values = res.values.copy()
    values[:, 0] = np.inf
    from dataclasses import replace
    got = replace(res, values=values, kT=2.5).marginal(1)
    assert got.values[0] == np.inf and np.isfinite(got.values[1:]).all()


# ----------------------------------------------------------------------------------------------- interrupts
def _many_hills(n: int = 200_000) -> hillsum.SumHillsRun:
    rng = np.random.default_rng(7)
    h = hills_io.Hills(["a", "b"], rng.uniform(-3, 3, (n, 2)), np.full((n, 2), 0.3), None, np.ones(n), np.ones(n),
                       [("-pi", "pi"), ("-pi", "pi")])
    return hillsum.hills_run(h, gmin=["-pi", "-pi"], gmax=["pi", "pi"], bins=["600", "600"], device="cpu")


def test_sum_hills_acts_on_a_signal_within_a_second() -> None:
    """The kernel runs in slices of SLICE_WORK evaluations; Python's handler runs between them (the sum
    takes several seconds on one call; before slicing a signal waited for all of it)."""
    run = _many_hills()
    fired: List[float] = []

    def on_alarm(*_: object) -> None:
        fired.append(time.perf_counter())
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, on_alarm)
    start = time.perf_counter()
    signal.setitimer(signal.ITIMER_REAL, 1.0)
    try:
        with pytest.raises(KeyboardInterrupt):
            for _ in run.files():
                pass
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert fired and fired[0] - start - 1.0 < 1.0, fired[0] - start


def test_sliced_hill_sums_equal_one_call_bit_for_bit(monkeypatch: pytest.MonkeyPatch) -> None:
    run = _many_hills(3000)
    monkeypatch.setattr(hillsum, "SLICE_WORK", 1e30)
    one = [f.values.copy() for f in run.files()]
    monkeypatch.setattr(hillsum, "SLICE_WORK", 5e4)
    assert len(hillsum.work_slices(hillsum._box_work(hillsum._neighbours(run.extent, run.grid, "stretched",
                                                                         run.hills.centers), run.grid))) > 100
    sliced = [f.values.copy() for f in run.files()]
    assert np.array_equal(one[0], sliced[0])


def test_histogram_with_no_kernel_on_the_grid_is_inf_not_nan(tmp_path: Path) -> None:
    """-kT ln 0 = +inf at every point (and -kT / 0 = -inf as the derivative, as PLUMED prints them);
    --mintozero leaves it so instead of inf - inf."""
    write_colvar(tmp_path / "COLVAR", np.zeros(50))
    assert main(["sum_hills", "--histo", str(tmp_path / "COLVAR"), "--idw", "x", "--sigma", "0.1", "--kt", "1",
                 "--min", "50", "--max", "60", "--bin", "5", "--mintozero", "--outhisto", str(tmp_path / "h.dat"),
                 "-q"] + CPU) == 0
    table = np.loadtxt(tmp_path / "h.dat")
    np.testing.assert_array_equal(table[:, 0], np.linspace(50, 60, 6))
    assert (table[:, 1] == np.inf).all() and (table[:, 2] == -np.inf).all()
