"""`cyfes state` on OPES KERNELS files (cyfes.io.opes, cyfes.workflows.kernels): against the OPES script
FES_from_Kernels-1D.py's own output, and against a pure-Python float64 rebuild of PLUMED's restart from KERNELS
(OPESmetad.cpp: addKernel, getMergeableKernel, mergeKernels, the Zed sum) written here from that code.
tests/data/opes/README.md names the files' sources."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from cyfes.commands import main as cli
from cyfes.io import opes as opes_io
from cyfes.workflows import kernels as kernels_wf
from cyfes.workflows import state

OPES = Path(__file__).parents[1] / "data" / "opes"
REF = OPES / "fes_from_kernels"


def cyfes_state(capsys: pytest.CaptureFixture, *argv: str) -> int:
    code = cli.main(["state", *argv])
    capsys.readouterr()
    return code


@pytest.mark.parametrize("name", ["metad-restart-phi", "explore-restart-phi"])
def test_same_numbers_as_fes_from_kernels_1d(tmp_path: Path, capsys: pytest.CaptureFixture, name: str) -> None:
    """The script: --kt 2.5 --angle --bin 60 (no shift to zero: cyfes' --nomintozero); it writes %14.9f."""
    out = tmp_path / "fes.dat"
    assert cyfes_state(capsys, "-f", str(OPES / f"{name}.KERNELS"), "--kt", "2.5", "--bin", "60",
                       "--nomintozero", "--fmt", "%.17g", "-o", str(out)) == 0
    ours, theirs = np.loadtxt(out), np.loadtxt(REF / f"{name}.fes.dat")
    assert ours.shape == (60, 2)
    np.testing.assert_allclose(ours, theirs[:, :2], rtol=0, atol=2e-9)


# ------------------------------------------------------------------ PLUMED's restart from KERNELS, by hand
def _diff(a: float, b: float, period: float) -> float:
    """b - a, brought into [-period/2, period/2] on a periodic CV (Value::difference)."""
    d = b - a
    return d - period * math.floor(d / period + 0.5) if period else d


def _nearest(kers: list, x: list, skip: int, periods: list, threshold2: float) -> int:
    best, best_k = threshold2, -1
    for k, (_, c, s) in enumerate(kers):
        if k == skip:
            continue
        norm2 = sum((_diff(x[i], c[i], periods[i]) / s[i]) ** 2 for i in range(len(x)))
        if norm2 < best:
            best, best_k = norm2, k
    return best_k


def _merge(k1: list, k2: list, periods: list, lows: list) -> list:
    h = k1[0] + k2[0]
    c, s = [], []
    for i, p in enumerate(periods):
        c1 = k2[1][i] + _diff(k2[1][i], k1[1][i], p) if p else k1[1][i]
        ci = (k1[0] * c1 + k2[0] * k2[1][i]) / h
        ss = (k1[0] * (k1[2][i] ** 2 + c1 ** 2) + k2[0] * (k2[2][i] ** 2 + k2[1][i] ** 2)) / h - ci * ci
        c.append(lows[i] + p / 2 + _diff(lows[i] + p / 2, ci, p) if p else ci)
        s.append(math.sqrt(ss))
    return [h, c, s]


def plumed_restart(k: opes_io.OpesKernels, recursive: bool) -> tuple[list, float]:
    """(compressed kernels [h, c, s], Zed * norm) as OPESmetad's constructor leaves them."""
    periods = [d[1] - d[0] if d else 0.0 for d in k.domains]
    lows = [d[0] if d else 0.0 for d in k.domains]
    t2 = k.number("compression_threshold") ** 2
    kers: list = []
    for h, c, s in zip(k.heights.tolist(), k.centers.tolist(), k.sigmas.tolist()):
        taker = _nearest(kers, c, -1, periods, t2)
        if taker < 0:
            kers.append([h, c, s])
            continue
        kers[taker] = _merge(kers[taker], [h, c, s], periods, lows)
        giver = taker
        taker = _nearest(kers, kers[giver][1], giver, periods, t2) if recursive else -1
        while taker >= 0:
            taker, giver = min(taker, giver), max(taker, giver)
            kers[taker] = _merge(kers[taker], kers[giver], periods, lows)
            del kers[giver]
            giver = taker
            taker = _nearest(kers, kers[giver][1], giver, periods, t2)
    cut2 = k.number("kernel_cutoff") ** 2
    total = sum(_value(g, kk[1], periods, cut2) for kk in kers for g in kers)
    return kers, total / len(kers)


def _value(g: list, x: list, periods: list, cut2: float) -> float:
    norm2 = sum((_diff(g[1][i], x[i], periods[i]) / g[2][i]) ** 2 for i in range(len(x)))
    return g[0] * (math.exp(-0.5 * norm2) - math.exp(-0.5 * cut2)) if norm2 < cut2 else 0.0


def by_hand_fes(k: opes_io.OpesKernels, bins: list, kbt: float, recursive: bool) -> np.ndarray:
    """FES_from_State.py's formula on the rebuilt state: grid over the periodic domains (end point dropped)."""
    kers, zed_norm = plumed_restart(k, recursive)
    periods = [d[1] - d[0] for d in k.domains]
    axes = [np.linspace(d[0], d[1], b + 1)[:-1] for d, b in zip(k.domains, bins)]
    mesh = np.meshgrid(*axes, indexing="ij")
    prob = np.empty(mesh[0].shape)
    for idx in np.ndindex(prob.shape):
        x = [m[idx] for m in mesh]
        prob[idx] = sum(_value(g, x, periods, k.number("kernel_cutoff") ** 2) for g in kers) / zed_norm \
            + k.number("epsilon")
    sf = k.number("biasfactor") if k.explore else 1.0
    return -kbt * sf * np.log(prob / prob.max())


@pytest.mark.parametrize("name, recursive", [("metad-restart", True), ("explore-restart", True),
                                             ("metad-bis", True), ("metad-bis", False),
                                             ("metad-bis-phi", True)])
def test_two_cvs_against_plumeds_restart_by_hand(name: str, recursive: bool) -> None:
    k = opes_io.read_opes(str(OPES / f"{name}.KERNELS"))
    assert isinstance(k, opes_io.OpesKernels)
    st = kernels_wf.to_state(k, recursive=recursive)
    kers, zed_norm = plumed_restart(k, recursive)
    assert len(st.heights) == len(kers)
    np.testing.assert_allclose(st.heights, [g[0] for g in kers], rtol=1e-12)
    np.testing.assert_allclose(st.centers, [g[1] for g in kers], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(st.sigmas, [g[2] for g in kers], rtol=1e-12)
    result = state.compute(st, state.Options(kbt=2.5, grid_bin="12,10"), [])
    np.testing.assert_allclose(result.fes, by_hand_fes(k, [12, 10], 2.5, recursive), rtol=1e-10, atol=1e-10)
    norm = st.number("counter") if k.explore else st.number("sum_weights")
    assert st.number("zed") * norm == pytest.approx(zed_norm, rel=1e-12)


def test_restarted_file_is_one_list_and_the_norms_are_plumeds() -> None:
    k = opes_io.read_opes(str(OPES / "metad-restart.KERNELS"))
    assert k.segments == 2 and len(k.heights) == 20
    np.testing.assert_array_equal(k.times[[0, 9, 10, 19]], [5, 50, 5, 50])
    st = kernels_wf.to_state(k)
    assert st.sets["action"] == "OPES_METAD_state" and st.number("counter") == 21
    # biasfactor inf: sum_weights starts at epsilon^1, then adds exp(logweight) of each kernel
    lw = np.loadtxt([line for line in (OPES / "metad-restart.KERNELS").read_text().splitlines()
                     if not line.startswith("#")])[:, -1]
    assert st.number("sum_weights") == pytest.approx(0.001 + np.exp(lw).sum(), rel=1e-14)
    assert kernels_wf.to_state(opes_io.read_opes(str(OPES / "explore-restart.KERNELS"))).number("counter") == 21


def test_recursive_merge_off_changes_the_compression(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    k = opes_io.read_opes(str(OPES / "metad-bis-phi.KERNELS"))
    assert (len(plumed_restart(k, True)[0]), len(plumed_restart(k, False)[0])) == (4, 5)  # not a no-op here
    on, off = tmp_path / "on.dat", tmp_path / "off.dat"
    f = str(OPES / "metad-bis-phi.KERNELS")
    assert cyfes_state(capsys, "-f", f, "--kt", "2.5", "--bin", "60", "--fmt", "%.17g", "-o", str(on)) == 0
    assert cyfes_state(capsys, "-f", f, "--kt", "2.5", "--bin", "60", "--fmt", "%.17g", "-o", str(off),
                       "--recursive-merge-off") == 0
    np.testing.assert_allclose(np.loadtxt(on)[:, 1], by_hand_fes(k, [60], 2.5, True), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(np.loadtxt(off)[:, 1], by_hand_fes(k, [60], 2.5, False), rtol=1e-10, atol=1e-10)
    assert np.abs(np.loadtxt(on)[:, 1] - np.loadtxt(off)[:, 1]).max() > 0.1


def test_where_the_script_merges_differently(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """FES_from_Kernels-1D.py merges into the last kernel within the threshold (PLUMED: the nearest) and without
    the periodic image: on metad-bis-phi its surface is not PLUMED's. cyfes follows PLUMED (the by-hand rebuild)."""
    out = tmp_path / "fes.dat"
    assert cyfes_state(capsys, "-f", str(OPES / "metad-bis-phi.KERNELS"), "--kt", "2.5", "--bin", "60",
                       "--nomintozero", "--fmt", "%.17g", "-o", str(out)) == 0
    ours, script = np.loadtxt(out)[:, 1], np.loadtxt(REF / "metad-bis-phi.fes.dat")[:, 1]
    assert np.abs(ours - script).max() == pytest.approx(1.32, abs=0.01)
    k = opes_io.read_opes(str(OPES / "metad-bis-phi.KERNELS"))
    by_hand = by_hand_fes(k, [60], 2.5, True)
    np.testing.assert_allclose(ours - ours.min(), by_hand, rtol=1e-10, atol=1e-9)


GOOD = (OPES / "metad-restart.KERNELS").read_text()
RESTART = GOOD.index("#! FIELDS", 1)  # the second run's header, line 21


@pytest.mark.parametrize("text, message", [
    (GOOD[:GOOD.rindex("0.150000 0.002031")] + "0.150000 0.00", "line 40: 6 values, expected 7"),
    (GOOD.replace("-1.106080 0.941929 0.150000", "-1.106080 0.941929 nan", 1),
     "line 18, value 4 (sigma_phi): 'nan' is not a finite number"),
    (GOOD.replace("0.150000 0.001528", "0.150000 -0.001528", 1), "line 18, value 6 (height): '-0.001528' is not > 0"),
    (GOOD.replace("0.150000 0.150000 0.001000 -6.907755", "0.000000 0.150000 0.001000 -6.907755", 1),
     "line 11, value 4 (sigma_phi): '0.0' is not > 0"),
    (GOOD.replace("height logweight", "height weight"), "line 1: FIELDS 'time phi psi sigma_phi sigma_psi height "
                                                        "weight' are not those of an OPES state"),
    (GOOD.replace("OPES_METAD_kernels", "OPES_EXPANDED_kernels", 1), "line 1: action 'OPES_EXPANDED_kernels'"),
    (GOOD.replace("#! SET max_psi pi\n", "", 1), "line 1: min_psi and max_psi must come together"),
    (GOOD[:RESTART] + GOOD[RESTART:].replace("OPES_METAD_kernels", "OPES_METAD_EXPLORE_kernels"),
     "line 21: the restart changes action of the first header"),
    ("".join(line for line in GOOD.splitlines(True) if line.startswith("#")), "a KERNELS file with no kernels"),
    (GOOD[:RESTART] + GOOD[RESTART:].replace("sigma_psi height", "sigma_chi height", 1),
     "line 21: FIELDS 'time phi psi sigma_phi sigma_chi height logweight' differ from the first header's"),
    (GOOD.replace("#! SET compression_threshold  1.000000\n", "", 1),
     "line 1: the KERNELS header has no '#! SET compression_threshold' line"),
])
def test_bad_kernels_files_are_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture, text: str,
                                               message: str) -> None:
    """TEST FIXTURE: the regtest KERNELS file, edited as a hostile or broken one would be."""
    bad = tmp_path / "KERNELS"
    bad.write_text(text)
    out = tmp_path / "fes.dat"
    assert cli.main(["state", "-f", str(bad), "--temp", "300", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}: {message}" in err, err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists()


def test_input_size_bound(tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CYFES_MAX_INPUT_BYTES", "100")
    assert cli.main(["state", "-f", str(OPES / "metad-restart.KERNELS"), "--temp", "300",
                     "-o", str(tmp_path / "f")]) == 2
    assert "is larger than 100 bytes" in capsys.readouterr().err


def test_three_cvs_mixed_periodicity_merging_across_the_boundary() -> None:
    """TEST FIXTURE: 300 kernels on 3 CVs (the first periodic on [-pi, pi), centers crowding its boundary, so
    merges go through the periodic image), against the by-hand rebuild, recursive merging on and off."""
    rng = np.random.default_rng(11)
    n = 300
    a = np.pi - np.abs(rng.normal(0, 0.3, n)) * rng.choice([-1, 1], n)  # near +-pi
    a = np.where(a > np.pi, a - 2 * np.pi, a)
    rows = "\n".join(" ".join(f"{v:.6f}" for v in [t, x, y, z, sx, sy, sz, h, lw]) for t, x, y, z, sx, sy, sz, h, lw
                     in zip(range(n), a, rng.normal(0, 1, n), rng.uniform(0, 3, n), rng.uniform(0.2, 0.4, n),
                            rng.uniform(0.3, 0.6, n), rng.uniform(0.3, 0.6, n), rng.uniform(0.1, 2, n),
                            rng.normal(0, 1, n)))
    text = ("#! FIELDS time a b c sigma_a sigma_b sigma_c height logweight\n#! SET action OPES_METAD_kernels\n"
            "#! SET biasfactor 10\n#! SET epsilon 0.001\n#! SET kernel_cutoff 3\n#! SET compression_threshold 1\n"
            "#! SET min_a -pi\n#! SET max_a pi\n" + rows + "\n")
    k = opes_io.parse_opes(text, "three.KERNELS")
    assert isinstance(k, opes_io.OpesKernels)
    for recursive in (True, False):
        st = kernels_wf.to_state(k, recursive=recursive)
        kers, zed_norm = plumed_restart(k, recursive)
        assert len(st.heights) == len(kers) < n // 3
        np.testing.assert_allclose(st.heights, [g[0] for g in kers], rtol=1e-12)
        np.testing.assert_allclose(st.centers, [g[1] for g in kers], rtol=1e-11, atol=1e-12)
        np.testing.assert_allclose(st.sigmas, [g[2] for g in kers], rtol=1e-11)
        assert st.number("zed") * st.number("sum_weights") == pytest.approx(zed_norm, rel=1e-12)
        assert np.all((st.centers[:, 0] >= -np.pi) & (st.centers[:, 0] < np.pi))
    flat = opes_io.parse_opes(text.replace("#! SET min_a -pi\n#! SET max_a pi\n", ""), "flat.KERNELS")
    assert len(kernels_wf.to_state(flat).heights) > len(kernels_wf.to_state(k).heights)  # merges through the image
