"""`cyfes basins` and `cyfes path`: tables, CSV and JSON from grid files and from samples, against the Python API's
records on the same surface (tested against references in test_analysis_*.py) and the files' own numbers."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

import cyfes
from cyfes.commands import main as cli
from cyfes.engine.result import FESResult

DATA = Path(__file__).parents[1] / "data" / "plumed"


@pytest.fixture
def two_wells(tmp_path):
    x = np.linspace(-2, 2, 81)
    y = np.linspace(-1.5, 1.5, 61)
    X, Y = np.meshgrid(x, y, indexing="ij")
    f = 12 * (X ** 2 - 1) ** 2 + 0.8 * X + 6 * Y ** 2
    res = FESResult(values=f - f.min(), axes=[x, y], grid=None, error=None, kT=2.494338785445961, units="kJ/mol",
                    temperature=300.0, backend="t", precision="float64", sigma=np.array([0.1, 0.1]),
                    periodic=[None, None], n_samples=0, names=["d1", "d2"])
    return res, res.save(tmp_path / "fes.dat")


def test_basins_table_csv_and_json(two_wells, tmp_path, capsys):
    res, grid = two_wells
    assert cli.main(["basins", str(grid), "--csv", str(tmp_path / "b.csv"), "--json", str(tmp_path / "b.json")]) == 0
    out = capsys.readouterr().out
    want = FESResult.read(grid).basins()
    assert len(want) == 2
    rows = list(csv.DictReader(open(tmp_path / "b.csv")))
    assert [r["basin"] for r in rows] == ["0", "1"]
    for r, b in zip(rows, want):
        assert float(r["d1"]) == pytest.approx(b.minimum[0], rel=1e-9)
        assert float(r["free_energy"]) == pytest.approx(b.free_energy, rel=1e-9)
        assert float(r["delta_f"]) == pytest.approx(b.delta_f, rel=1e-9, abs=1e-12)
    doc = json.load(open(tmp_path / "b.json"))
    assert doc["units"] == "kJ/mol" and doc["basins"][1]["delta_f"] == pytest.approx(want[1].delta_f, rel=1e-9)
    assert doc["basins"][0]["error"] is None  # no blocks: no error bar
    # the file's surface is the one written: the second basin is the right-hand well
    assert want[1].minimum[0] == pytest.approx(1.0, abs=0.06) and "minimum (d1, d2)" in out


def test_basins_from_samples_with_blocks(tmp_path, capsys):
    rng = np.random.default_rng(2)
    x = np.concatenate([rng.normal(-1, 0.25, 3000), rng.normal(1, 0.3, 1500)])
    rng.shuffle(x)
    colvar = tmp_path / "COLVAR"
    np.savetxt(colvar, np.column_stack([np.arange(len(x)), x]), header="FIELDS time d", comments="#! ")
    assert cli.main(["basins", str(colvar), "--cv", "d", "--sigma", "0.1", "--bins", "121", "--range", "d=-2,2",
                     "--blocks", "4", "--device", "cpu", "--json", str(tmp_path / "b.json"), "-q", "--trace"]) == 0
    res = cyfes.fes(x, 0.1, bins=121, ranges=[(-2, 2)], blocks=4, device="cpu")
    want = res.basins()
    doc = json.load(open(tmp_path / "b.json"))
    got = doc["basins"]
    trace = res.delta_f_trace(0, 1)
    assert doc["trace"]["samples"] == list(trace.samples)
    assert doc["trace"]["delta_f"]["1"] == pytest.approx(trace.delta_f, rel=1e-12)
    assert len(got) == len(want) == 2
    assert got[1]["delta_f"] == pytest.approx(want[1].delta_f, rel=1e-9)
    assert got[1]["delta_f_error"] == pytest.approx(want[1].delta_f_error, rel=1e-9)
    assert capsys.readouterr().out == ""


def test_path_prints_the_barrier_and_writes_the_path(two_wells, tmp_path, capsys):
    res, grid = two_wells
    out = tmp_path / "path.csv"
    assert cli.main(["path", str(grid), "--from", "-1,0", "--to", "basin:1", "-o", str(out)]) == 0
    want = FESResult.read(grid).path((-1.0, 0.0), 1)
    text = capsys.readouterr().out
    assert f"barrier {want.barrier:.4g}" in text
    rows = np.loadtxt(out, delimiter=",", skiprows=1)
    np.testing.assert_allclose(rows[:, :2], want.points, rtol=1e-9)
    np.testing.assert_allclose(rows[:, 2], want.free_energy, rtol=1e-9, atol=1e-9)
    # the barrier from the file: the highest F along the path minus F at its start
    assert rows[:, 2].max() - rows[0, 2] == pytest.approx(want.barrier, abs=1e-8)


def test_plumed_sum_hills_grid_reads_as_a_surface(capsys):
    assert cli.main(["basins", str(DATA / "ref_h2d_periodic_bin.dat"), "--min-depth", "0"]) == 0
    out = capsys.readouterr().out
    assert "minimum (phi, psi)" in out and len(out.splitlines()) == 2 + len(
        FESResult.read(DATA / "ref_h2d_periodic_bin.dat").basins(min_depth=0))


@pytest.mark.parametrize("argv, message", [
    (["path", "{grid}", "--from", "-1,0", "--to", "-1.05,0.05"], "same basin"),
    (["path", "{grid}", "--from", "-1", "--to", "1,0"], "expected 2 coordinates"),
    (["basins", "{bad}"], "no free_energy column"),
    (["basins", "{grid}", "{grid}"], "one grid file"),
    (["basins", "{grid}", "--min-depth", "-1"], "--min-depth"),
])
def test_bad_input_is_one_line_exit_2_and_nothing_written(two_wells, tmp_path, capsys, argv, message):
    _, grid = two_wells
    bad = tmp_path / "bad.dat"
    bad.write_text("# x y\n1 2\n")
    out = tmp_path / "out.json"
    args = [a.format(grid=grid, bad=bad) for a in argv] + ["--json", str(out)]
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_fes_basins_prints_the_table_of_the_computed_surface(tmp_path, capsys):
    rng = np.random.default_rng(4)
    x = np.concatenate([rng.normal(-1, 0.25, 2000), rng.normal(1, 0.3, 1000)])
    rng.shuffle(x)
    colvar = tmp_path / "COLVAR"
    np.savetxt(colvar, np.column_stack([np.arange(len(x)), x]), header="FIELDS time d", comments="#! ")
    assert cli.main(["fes", str(colvar), "--cv", "d", "--sigma", "0.1", "--bins", "81", "--range", "d=-2,2",
                     "--blocks", "3", "--device", "cpu", "--basins", "--min-depth", "1.5"]) == 0
    out = capsys.readouterr().out
    res = cyfes.fes(x, 0.1, bins=81, ranges=[(-2, 2)], blocks=3, device="cpu", names=["d"])
    from cyfes.commands import answer_tables
    assert answer_tables.basins_table(res, res.basins(1.5)) in out
    assert cli.main(["fes", str(colvar), "--cv", "d", "--sigma", "0.1", "--basins", "--min-depth", "-2"]) == 2


def test_plots_of_basins_and_path(two_wells, tmp_path):
    pytest.importorskip("matplotlib")
    _, grid = two_wells
    assert cli.main(["basins", str(grid), "--plot", str(tmp_path / "b.png"), "-q"]) == 0
    assert cli.main(["path", str(grid), "--from", "basin:0", "--to", "basin:1", "--plot", str(tmp_path / "p.svg"),
                     "--csv", str(tmp_path / "p.csv"), "-q"]) == 0
    assert (tmp_path / "b.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"<svg" in (tmp_path / "p.svg").read_bytes()[:400]
    one = FESResult(values=np.array([0.0, 9.0, 0.5, 9.0, 0.1]), axes=[np.arange(5.0)], grid=None, error=None,
                    kT=1.0, units="kJ/mol", temperature=120.0, backend="t", precision="float64",
                    sigma=np.array([0.1]), periodic=[None], n_samples=0).save(tmp_path / "one.npz")
    assert cli.main(["basins", str(one), "--plot", str(tmp_path / "x.png"), "--csv", str(tmp_path / "x.csv")]) == 2
    assert not (tmp_path / "x.png").exists() and not (tmp_path / "x.csv").exists()


@pytest.mark.parametrize("argv,message", [
    (["basins", "a.grid", "b.grid"], "give one grid file, or --sigma to compute the surface of COLVAR files"),
    (["basins", "{colvar}"], "not a grid file (.grid, .fes, .dat, .txt, .csv, .cube, .npz); give --sigma to compute "
                             "the surface of samples"),
])
def test_basins_says_which_input_it_needs(tmp_path, capsys, argv, message) -> None:
    colvar = tmp_path / "COLVAR"
    colvar.write_text("#! FIELDS time x\n0 0.1\n1 0.2\n")
    args = [a.format(colvar=colvar) for a in argv]
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err


def _wrapping_wells(tmp_path, periodic_line: bool):
    """TEST FIXTURE: a 1-D surface on a periodic x in [-pi, pi) (60 points, no end point repeated) with its deep
    well at x = 3.0, whose basin wraps through the boundary, and a shallower one at 0: two basins on the circle,
    three when the boundary is a wall (the points at -pi then descend to an edge of their own)."""
    x = -np.pi + 2 * np.pi * np.arange(60) / 60

    def dist(a):
        return np.abs((x - a + np.pi) % (2 * np.pi) - np.pi)

    f = np.minimum(8 * dist(3.0) ** 2, 8 * dist(0.0) ** 2 + 3.0)
    head = ["# cyfes 1.0.0 free energy surface in kcal/mol at 350 K (kT = 0.6955214905 kcal/mol); 0 samples, backend t"]
    head += [f"# periodic x={2 * np.pi!r}"] if periodic_line else []
    path = tmp_path / "wrap.dat"
    path.write_text("\n".join(head + ["# x free_energy"] + [f"{a:.17g} {v:.17g}" for a, v in zip(x, f)]) + "\n")
    return path


@pytest.mark.parametrize("periodic_line, extra, basins", [
    (True, [], 2),                             # the file says x wraps
    (False, [], 3),                            # a file that does not say it: a wall at +-pi
    (False, ["--periodic", "x=-pi,pi"], 2),    # ... unless --periodic says it
    (True, ["--periodic", "x=none"], 3),       # ... or --periodic turns it off
])
def test_basins_of_a_dat_surface_wrap_as_its_header_or_periodic_say(tmp_path, capsys, periodic_line, extra,
                                                                   basins):
    path = _wrapping_wells(tmp_path, periodic_line)
    assert cli.main(["basins", str(path), "--json", str(tmp_path / "b.json"), "-q"] + extra) == 0
    doc = json.loads((tmp_path / "b.json").read_text())
    assert len(doc["basins"]) == basins
    assert doc["units"] == "kcal/mol" and doc["kT"] == pytest.approx(0.0019872042586408316 * 350, rel=1e-9)
    deepest = doc["basins"][0]
    assert deepest["x"] == pytest.approx(3.0, abs=np.pi / 60)
    assert deepest["minimum_free_energy"] == pytest.approx(8 * (deepest["x"] - 3.0) ** 2, rel=1e-12)


def test_periodic_on_a_grid_that_is_not_one_period_is_refused(tmp_path, capsys):
    path = _wrapping_wells(tmp_path, False)
    assert cli.main(["basins", str(path), "--periodic", "x=-2,2"]) == 2
    err = capsys.readouterr().err
    assert "--periodic x" in err and "not one period of 4" in err and len(err.strip().splitlines()) == 1
