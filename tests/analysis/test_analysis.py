"""Effective sample sizes, Delta F, marginals and the automatic bandwidth, against numpy written from the formulas
(tests/reference.py's independent KDE for the surfaces)."""
from __future__ import annotations

import math

import numpy as np
import pytest

import cyfes
import reference
from cyfes.commands import main as cli

KB = reference.KB["kJ/mol"]


@pytest.fixture
def biased():
    rng = np.random.default_rng(42)
    x = np.column_stack([rng.normal(0, 1, 3000), rng.normal(1, 0.5, 3000)])
    return x, rng.uniform(0, 6, 3000)


def test_kish_ess_and_effective_blocks(biased):
    x, bias = biased
    res = cyfes.fes(x, 0.3, bias=bias, bins=(20, 20), blocks=5, device="cpu")
    w = np.exp(bias / (KB * 300))
    assert res.ess == pytest.approx(w.sum() ** 2 / (w ** 2).sum(), rel=1e-12)
    big_w = np.array([b.sum() for b in np.array_split(w, 5)])
    assert res.blocks_effective == pytest.approx(big_w.sum() ** 2 / (big_w ** 2).sum(), rel=1e-12)
    assert cyfes.fes(x, 0.3, bins=(5, 5), device="cpu").ess == pytest.approx(3000)


def test_delta_f_and_its_block_error(biased):
    x, bias = biased
    res = cyfes.fes(x, 0.3, bias=bias, bins=(60, 30), ranges=[(-4, 4), (-1, 3)], blocks=4, device="cpu")
    kT = KB * 300
    pts = res.points()
    f = reference.free_energy(x, [0.3, 0.3], pts, bias=bias).reshape(60, 30)
    xs = res.axes[0][:, None] * np.ones((1, 30))

    def df(v):
        return -kT * np.log(np.exp(-v[xs > 0.5] / kT).sum()) + kT * np.log(np.exp(-v[xs < 0.5] / kT).sum())

    value, err = res.delta_f("cv1" if res.names else 0, 0.5)
    assert value == pytest.approx(df(f), abs=1e-8)
    per = [df(reference.free_energy(xb, [0.3, 0.3], pts, bias=bb).reshape(60, 30))
           for xb, bb in zip(np.array_split(x, 4), np.array_split(bias, 4))]
    assert err == pytest.approx(np.std(per, ddof=1) / 2, rel=1e-6)
    with pytest.raises(cyfes.InputError, match="does not split"):
        res.delta_f(0, 10.0)


def test_marginal_equals_the_one_dimensional_estimate(biased):
    """Summing e^{-F/kT} over a fine, wide grid in y integrates the product kernel in y exactly enough."""
    x, bias = biased
    res = cyfes.fes(x, [0.3, 0.25], bias=bias, bins=(40, 120), ranges=[(-3, 3), (-2.5, 4.5)], device="cpu")
    m = res.marginal([0])
    one = reference.free_energy(x[:, :1], [0.3], res.axes[0][:, None], bias=bias)
    assert m.values.shape == (40,) and len(m.axes) == 1
    np.testing.assert_allclose(m.values, one, atol=1e-6)
    swapped = res.marginal([1, 0])
    np.testing.assert_allclose(swapped.values, res.values.T, atol=1e-12)


def test_silverman_bandwidth(biased):
    x, bias = biased
    from cyfes import analysis
    logw = bias / (KB * 300)
    w = np.exp(logw - logw.max())
    w /= w.sum()
    n_eff = 1 / (w ** 2).sum()
    std = np.sqrt(w @ (x - w @ x) ** 2)
    expect = std * (4 / (4 * n_eff)) ** (1 / 6)
    np.testing.assert_allclose(analysis.silverman(x, logw, [None, None]), expect, rtol=1e-10)
    ang = np.random.default_rng(1).vonmises(0.5, 4.0, 5000)
    got = analysis.silverman(ang[:, None], np.zeros(5000), [2 * math.pi])[0]
    r = abs(np.exp(1j * ang).mean())
    assert got == pytest.approx(math.sqrt(-2 * math.log(r)) * (4 / (3 * 5000)) ** 0.2, rel=1e-10)


def test_cli_kt_sigma_auto_and_delta_f(tmp_path, capsys, biased):
    x, bias = biased
    data = tmp_path / "colvar.dat"
    np.savetxt(data, np.column_stack([x, bias]), header="x y metad.bias", comments="")
    args = ["fes", str(data), "--cv", "x,y", "--bias", "metad.bias", "--bins", "20", "--blocks", "3"]
    assert cli.main(args + ["--sigma", "0.3", "--kt", "2.5", "-o", str(tmp_path / "a.dat"),
                            "--delta-f", "x=0"]) == 0
    out = capsys.readouterr().out
    assert "effective sample size" in out and "DeltaF(x > 0) - (x < 0) = " in out and "+-" in out
    assert cli.main(args + ["--sigma", "0.3", "-T", str(2.5 / KB), "-o", str(tmp_path / "b.dat"), "-q"]) == 0
    a, b = (np.loadtxt(tmp_path / n) for n in ("a.dat", "b.dat"))
    np.testing.assert_allclose(a, b, atol=1e-9)
    assert "# effective sample size" in (tmp_path / "a.dat").read_text()
    assert cli.main(args + ["--sigma", "auto", "-o", str(tmp_path / "c.dat")]) == 0
    assert "sigma auto (Silverman" in capsys.readouterr().out
    assert cli.main(args + ["--sigma", "0.3", "--kt", "2.5", "-T", "310"]) == 2
    assert cli.main(args + ["--sigma", "0.3", "--delta-f", "x"]) == 2


def test_weighted_block_error_and_running_surfaces(biased):
    x, bias = biased
    kT = KB * 300
    res = cyfes.fes(x, 0.3, bias=bias, bins=(15, 12), ranges=[(-3, 3), (-1, 3)], blocks=4, device="cpu")
    pts = res.points()
    xb, bb = np.array_split(x, 4), np.array_split(bias, 4)
    fb = np.array([reference.free_energy(a, [0.3, 0.3], pts, bias=b, shift=False) for a, b in zip(xb, bb)])
    lw = np.array([np.log(np.exp(b / kT).sum()) for b in bb])
    w = np.exp(lw - lw.max())
    neff = w.sum() ** 2 / (w ** 2).sum()
    f = -kT * np.log((w[:, None] * np.exp(-fb / kT)).sum(axis=0) / w.sum())
    err = kT * np.sqrt((w[:, None] * np.expm1(-(fb - f) / kT) ** 2).sum(axis=0) / w.sum() / (neff - 1))
    from cyfes import analysis
    np.testing.assert_allclose(analysis.weighted_block_error(res).ravel(), err, rtol=1e-7, atol=1e-9)
    for k, surface in enumerate(analysis.running(res), start=1):
        ref = reference.free_energy(np.concatenate(xb[:k]), [0.3, 0.3], pts, bias=np.concatenate(bb[:k]))
        np.testing.assert_allclose(surface.ravel(), ref, atol=1e-8)


def test_cli_running_files_error_method_and_convergence_plot(tmp_path, biased):
    x, bias = biased
    data = tmp_path / "c.dat"
    np.savetxt(data, np.column_stack([x, bias]), header="x y metad.bias", comments="")
    base = ["fes", str(data), "--cv", "x,y", "--bias", "metad.bias", "--bins", "12", "--sigma", "0.3", "-q"]
    assert cli.main(base + ["--running", "3", "--error-method", "weighted", "--delta-f", "x=0",
                            "--plot-convergence", str(tmp_path / "conv.png"), "-o", str(tmp_path / "f.dat")]) == 0
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["c.dat", "conv.png", "f.dat", "f_1.dat", "f_2.dat", "f_3.dat"]
    last, full = np.loadtxt(tmp_path / "f_3.dat"), np.loadtxt(tmp_path / "f.dat")
    np.testing.assert_allclose(last[:, 2], full[:, 2], atol=1e-8)
    assert (tmp_path / "conv.png").read_bytes()[:4] == b"\x89PNG"
    assert cli.main(base + ["--running", "3", "--blocks", "4"]) == 2
    assert cli.main(base + ["--plot-convergence", str(tmp_path / "x.png")]) == 2


def test_silverman_from_merged_chunk_spreads_equals_one_pass_and_the_reference():
    """Spreads of chunks merged (Chan's update) give the one-pass bandwidth, with log weights spanning 1500 (no
    weight representable next to the largest without the running shift) and a periodic CV."""
    from cyfes import analysis
    rng = np.random.default_rng(4)
    n = 4000
    x = np.column_stack([rng.normal(1.0, 0.4, n), rng.vonmises(0.3, 2.0, n)])
    logw = np.concatenate([rng.uniform(-1500, -1400, n // 2), rng.uniform(0, 3, n // 2)])  # TEST FIXTURE
    periods = [None, 2 * math.pi]
    merged = None
    for part in np.array_split(rng.permutation(n), 37):
        merged = analysis.merge_spreads(merged, analysis.spread_of(x[part], logw[part], periods))
    got, n_eff = analysis.silverman_of(merged, periods)
    np.testing.assert_allclose(got, analysis.silverman(x, logw, periods), rtol=1e-12)
    w = np.exp(logw - logw.max())  # the float64 reference (the small weights underflow to 0 here: as they should)
    w /= w.sum()
    mean = w @ x[:, 0]
    r = abs(w @ np.exp(1j * x[:, 1]))
    spread = np.array([np.sqrt(w @ (x[:, 0] - mean) ** 2), np.sqrt(-2 * math.log(r))])
    assert n_eff == pytest.approx(1 / (w ** 2).sum(), rel=1e-12)
    np.testing.assert_allclose(got, spread * (4 / (4 * n_eff)) ** (1 / 6), rtol=1e-12)
