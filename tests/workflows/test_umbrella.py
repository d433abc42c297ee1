"""Umbrella windows joined by MBAR: a 1-D double well whose windows are sampled exactly (inverse CDF on a fine
grid), checked against the analytic free energies and against pymbar's own FES on the same samples."""
from __future__ import annotations

import math

import numpy as np
import pytest

import cyfes
from cyfes.commands import main as cli
from cyfes.workflows import umbrella
from reference import KB

pymbar = pytest.importorskip("pymbar")

KT = KB["kJ/mol"] * 300.0
HEIGHT = 3 * KT
KAPPA = 100.0  # kJ/mol/nm^2: each window about 0.16 wide, 0.2 apart
CENTRES = np.round(np.arange(-1.6, 1.61, 0.2), 10)
FINE = np.linspace(-2.5, 2.5, 50001)
SIGMA = 0.05
PER_WINDOW = 2000


def potential(x: np.ndarray) -> np.ndarray:
    return HEIGHT * (x ** 2 - 1) ** 2


def sample_window(centre: float, n: int, rng: np.random.Generator) -> np.ndarray:
    e = potential(FINE) + 0.5 * KAPPA * (FINE - centre) ** 2
    cdf = np.cumsum(np.exp(-(e - e.min()) / KT))
    return np.interp(rng.random(n), cdf / cdf[-1], FINE)


@pytest.fixture(scope="module")
def windows():
    rng = np.random.default_rng(1)
    return [umbrella.Window(sample_window(c, PER_WINDOW, rng)[:, None], np.array([c]), np.array([KAPPA]))
            for c in CENTRES]


def smoothed_free_energy(x: np.ndarray) -> np.ndarray:
    """-kT ln of the exact density convolved with the kernel: what the KDE converges to."""
    p = np.exp(-potential(FINE) / KT)
    return -KT * np.log(np.array([np.sum(p * np.exp(-0.5 * ((xi - FINE) / SIGMA) ** 2)) for xi in x]))


def test_window_free_energies_match_the_analytic_integrals(windows):
    _, f_k = umbrella.mbar_log_weights(windows, KT)
    z = [np.trapezoid(np.exp(-(potential(FINE) + 0.5 * KAPPA * (FINE - c) ** 2) / KT), FINE) for c in CENTRES]
    exact = -np.log(np.array(z) / z[0])
    # 2000 exact samples a window: the f_k (in kT) agree to about 0.1
    np.testing.assert_allclose(f_k, exact, atol=0.12)


def test_fes_matches_the_analytic_double_well_within_0_1_kT(windows):
    res = umbrella.fes(windows, SIGMA, bins=61, ranges=[(-1.5, 1.5)], device="cpu")
    diff = res.values - smoothed_free_energy(res.axes[0])
    diff -= diff.mean()
    assert np.abs(diff).max() < 0.12 * KT
    assert np.abs(diff).mean() < 0.06 * KT
    # and the barrier of the unsmoothed well, 3 kT, within what the kernel's smoothing takes off the top
    assert res.path(0, 1).barrier == pytest.approx(HEIGHT, abs=0.2 * KT)


def test_fes_agrees_with_pymbars_histogram_fes(windows):
    edges = np.linspace(-1.2, 1.2, 25)
    centres = 0.5 * (edges[1:] + edges[:-1])
    x = np.concatenate([w.samples for w in windows])
    ref = pymbar.FES(umbrella.reduced_biases(windows, KT), np.full(len(windows), PER_WINDOW))
    ref.generate_fes(np.zeros(len(x)), x, fes_type="histogram", histogram_parameters={"bin_edges": [edges]})
    theirs = ref.get_fes(centres[:, None], reference_point="from-lowest")["f_i"] * KT
    ours = umbrella.fes(windows, SIGMA, grid=centres[:, None], device="cpu").values
    diff = ours - theirs
    diff -= diff.mean()
    # a 0.1-wide histogram bin against a 0.05 kernel on the same weights
    assert np.abs(diff).max() < 0.15 * KT


def test_windows_without_overlap_are_refused(windows):
    far = umbrella.Window(windows[0].samples + 10.0, np.array([8.4]), np.array([KAPPA]))
    with pytest.raises(cyfes.InputError, match="no overlap"):
        umbrella.mbar_log_weights([windows[0], windows[1], far], KT)


def _write_windows(tmp_path, windows, centres):
    lines = ["cv: [x]", "windows:"]
    for k, (w, c) in enumerate(zip(windows, centres)):
        name = f"w{k}.dat"
        (tmp_path / name).write_text("#! FIELDS time x\n" + "".join(f"{i} {v:.10f}\n" for i, v in
                                                                   enumerate(w.samples[:, 0])))
        lines.append(f"  - {{file: {name}, centre: [{c}], kappa: [{KAPPA}]}}")
    path = tmp_path / "windows.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_cli_windows_writes_the_api_surface(windows, tmp_path, capsys):
    spec = _write_windows(tmp_path, windows, CENTRES)
    out = tmp_path / "fes.dat"
    rc = cli.main(["fes", "--windows", str(spec), "--sigma", str(SIGMA), "--bins", "61", "--range", "x=-1.5,1.5",
                   "--device", "cpu", "-o", str(out)])
    assert rc == 0, capsys.readouterr().err
    got = cyfes.read_grid(out)
    rounded = [umbrella.Window(np.round(w.samples, 10), w.centre, w.kappa) for w in windows]
    want = umbrella.fes(rounded, SIGMA, bins=61, ranges=[(-1.5, 1.5)], device="cpu")
    np.testing.assert_allclose(got.values, want.values, atol=1e-5)


def test_cli_windows_without_overlap_is_one_line_exit_2(windows, tmp_path, capsys):
    far = umbrella.Window(windows[1].samples + 10.0, np.array([8.4]), np.array([KAPPA]))
    spec = _write_windows(tmp_path, [windows[0], far], [CENTRES[0], 8.4])
    out = tmp_path / "fes.dat"
    rc = cli.main(["fes", "--windows", str(spec), "--sigma", "0.05", "--device", "cpu", "-o", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and "no overlap" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


@pytest.mark.parametrize("text, message", [
    ("windows: []\ncv: [x]\n", "non-empty 'windows'"),
    ("cv: [x]\nwindows:\n  - {file: w0.dat, centre: [0.0]}\n", "missing 'kappa'"),
    ("cv: [x]\nwindows:\n  - {file: w0.dat, centre: [0.0, 1.0], kappa: 5}\n", "one per CV"),
    ("cv: [x]\nwindow: []\n", "non-empty 'windows'"),
    ("cv: [x]\nwindows:\n  - {file: w0.dat, centre: 0, kappa: 5, spring: 3}\n", "unknown key 'spring'"),
])
def test_bad_windows_files_name_the_problem(tmp_path, text, message):
    (tmp_path / "w0.dat").write_text("#! FIELDS time x\n0 0.1\n1 0.2\n")
    path = tmp_path / "windows.yaml"
    path.write_text(text)
    with pytest.raises(cyfes.InputError, match=message):
        umbrella.read_windows(path)


def test_bias_columns_give_the_same_mbar_as_centre_and_kappa(windows, tmp_path):
    lines = ["cv: [x]", "windows:"]
    names = [f"b{k}" for k in range(len(windows))]
    for k, w in enumerate(windows):
        x = np.round(w.samples[:, 0], 10)
        table = np.column_stack([x] + [0.5 * KAPPA * (x - c) ** 2 for c in CENTRES])  # each window's restraint
        (tmp_path / f"w{k}.dat").write_text("#! FIELDS x " + " ".join(names) + "\n"
                                            + "".join(" ".join(f"{v:.12g}" for v in row) + "\n" for row in table))
        lines.append(f"  - {{file: w{k}.dat, biases: [{', '.join(names)}]}}")
    spec = tmp_path / "windows.yaml"
    spec.write_text("\n".join(lines) + "\n")
    read = umbrella.read_windows(spec)
    assert read.windows[0].biases.shape == (PER_WINDOW, len(windows))
    logw_cols, f_cols = umbrella.mbar_log_weights(read.windows, KT)
    rounded = [umbrella.Window(np.round(w.samples, 10), w.centre, w.kappa) for w in windows]
    logw, f_k = umbrella.mbar_log_weights(rounded, KT)
    np.testing.assert_allclose(f_cols, f_k, atol=1e-6)
    np.testing.assert_allclose(logw_cols - logw_cols.max(), logw - logw.max(), atol=1e-6)
    mixed = [read.windows[0], rounded[1]]
    with pytest.raises(cyfes.InputError, match="not a mix"):
        umbrella.mbar_log_weights(mixed, KT)


def test_windows_that_barely_touch_warn_of_weak_overlap():
    rng = np.random.default_rng(0)
    a = rng.normal(0.0, 0.1, (500, 1))
    b = rng.normal(2.0, 0.1, (500, 1))
    b[0] = a.max() - 0.01  # one sample of b reaches into a: the ranges meet, MBAR has almost nothing to join
    pair = [umbrella.Window(a, np.array([0.0]), np.array([250.0]), "a.dat"),
            umbrella.Window(b, np.array([2.0]), np.array([250.0]), "b.dat")]
    with pytest.warns(UserWarning, match="b.dat has little overlap with a.dat"):
        umbrella.mbar_log_weights(pair, KT)


def test_well_overlapping_windows_do_not_warn(windows, recwarn):
    umbrella.mbar_log_weights(windows, KT)
    assert not [w for w in recwarn if "overlap" in str(w.message)]


@pytest.mark.parametrize("argv, message", [
    (["--windows", "missing.yaml"], "missing.yaml: cannot read"),
    (["--windows", "windows.yaml", "extra.dat"], "give no INPUT files"),
    (["--windows", "windows.yaml", "--bias", "b"], "--windows and --bias"),
    ([], "give INPUT file(s) or --windows"),
])
def test_cli_windows_refusals_are_one_line(tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "windows.yaml").write_text("cv: [x]\nwindows:\n  - {file: w0.dat, centre: 0, kappa: 5}\n")
    (tmp_path / "w0.dat").write_text("#! FIELDS time x\n0 0.1\n1 0.2\n")
    assert cli.main(["fes", *argv, "--sigma", "0.1", "-o", "out.dat"]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out.dat").exists()


def test_reduced_biases_in_2d_with_a_periodic_cv_by_hand():
    x = np.array([[0.1, 3.0], [-0.2, -3.0], [0.5, 0.0]])
    wins = [umbrella.Window(x[:2], np.array([0.0, 3.1]), np.array([10.0, 4.0])),
            umbrella.Window(x[2:], np.array([0.4, -3.1]), np.array([20.0, 0.0]))]
    period = 2 * math.pi
    got = umbrella.reduced_biases(wins, 2.0, [None, period])
    for k, (c, kap) in enumerate([((0.0, 3.1), (10.0, 4.0)), ((0.4, -3.1), (20.0, 0.0))]):
        for n, (a, b) in enumerate(x):
            db = (b - c[1] + math.pi) % period - math.pi  # nearest image
            want = (0.5 * kap[0] * (a - c[0]) ** 2 + 0.5 * kap[1] * db ** 2) / 2.0
            assert got[k, n] == pytest.approx(want, rel=1e-12)


def test_quiet_windows_run_prints_nothing_not_even_pymbars_banners(windows, tmp_path):
    import subprocess
    import sys
    spec = _write_windows(tmp_path, windows[:4], CENTRES[:4])
    run = subprocess.run([sys.executable, "-m", "cyfes", "fes", "--windows", str(spec), "--sigma", "0.05",
                          "--bins", "20", "--device", "cpu", "-q", "-o", str(tmp_path / "f.dat")],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stdout == "" and run.stderr == ""
    assert (tmp_path / "f.dat").exists()
