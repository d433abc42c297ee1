"""Every command runs in 2 GiB of address space (`ulimit -v 2097152`), on small inputs, with the right numbers.

Each command runs as its own process under the limit (bash's ulimit, then exec), as a user on a cluster node
with a virtual-memory cap would run it; its output is checked against a reference from elsewhere: PLUMED's own
`plumed sum_hills` file, FES_from_State.py's file, and a float64 numpy kernel sum for the colvar commands (fes,
reweight, basins, path). The smallest limits measured, and why they are what they are, are in
docs/performance.md ("Memory").
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).resolve().parents[1] / "data"
LIMIT_KIB = 2097152
KT = 8.314462618e-3 * 300.0  # kJ/mol at 300 K
SIGMA = 0.2
GRID = np.linspace(-2.0, 2.0, 41)
COLVAR_ARGS = ["--cv", "x", "--bias", "bias", "--sigma", str(SIGMA), "--bins", "41", "--range", "x=-2,2"]


def limited(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """`cyfes ARGS` under ulimit -v LIMIT_KIB."""
    cmd = ["bash", "-c", 'ulimit -v "$0" && exec "$@"', str(LIMIT_KIB), sys.executable, "-m", "cyfes", *args]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def colvar(tmp_path_factory) -> tuple[Path, np.ndarray, np.ndarray]:
    """TEST FIXTURE: 200 samples of x in two wells (40 near -1, 160 near +1) with biases of 0-5 kJ/mol."""
    rng = np.random.default_rng(3)
    x = np.round(np.r_[rng.normal(-1, 0.25, 40), rng.normal(1, 0.3, 160)], 6)
    bias = np.round(rng.uniform(0, 5, 200), 4)
    path = tmp_path_factory.mktemp("colvar") / "colvar.dat"
    path.write_text("#! FIELDS time x bias\n" + "".join(f"{i} {a:.6f} {b:.4f}\n" for i, (a, b) in
                                                      enumerate(zip(x, bias))))
    return path, x, bias


def reference_f(x: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """-kT ln sum_j exp(V_j/kT - (g - x_j)^2 / 2 sigma^2) on GRID, minimum at 0 (float64, direct)."""
    a = bias[None, :] / KT - 0.5 * ((GRID[:, None] - x[None, :]) / SIGMA) ** 2
    f = -KT * (a.max(axis=1) + np.log(np.exp(a - a.max(axis=1)[:, None]).sum(axis=1)))
    return f - f.min()


def rows(path: Path) -> np.ndarray:
    return np.array([[float(t) for t in ln.split()] for ln in path.read_text().splitlines()
                     if ln.strip() and not ln.startswith("#")])


def test_fes(tmp_path, colvar):
    src, x, bias = colvar
    proc = limited(["fes", str(src), *COLVAR_ARGS, "-o", "fes.dat", "-q"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    got = rows(tmp_path / "fes.dat")
    np.testing.assert_allclose(got[:, 0], GRID, atol=1e-12)
    np.testing.assert_allclose(got[:, 1] - got[:, 1].min(), reference_f(x, bias), atol=1e-6)


def test_reweight(tmp_path, colvar):
    src, x, bias = colvar
    proc = limited(["reweight", "--colvar", str(src), "--cv", "x", "--bias", "bias", "--sigma", str(SIGMA),
                    "--temp", "300", "--min", "-2", "--max", "2", "--bin", "40", "--outfile", "rw.dat", "-q",
                    "--device", "cpu"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    got = rows(tmp_path / "rw.dat")  # FES_from_Reweighting.py's layout: x, F with its minimum at 0, %f
    np.testing.assert_allclose(got[:, 0], GRID, atol=1e-6)
    np.testing.assert_allclose(got[:, 1], reference_f(x, bias), atol=2e-6)


def test_sum_hills_as_plumed(tmp_path):
    proc = limited(["sum_hills", "--hills", str(DATA / "plumed" / "h2d_mixed.hills"), "--bin", "30,25", "--min",
                    "-pi,0", "--max", "pi,2.6", "--outfile", "sh.dat", "-q"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    np.testing.assert_allclose(rows(tmp_path / "sh.dat"), rows(DATA / "plumed" / "ref_h2d_mixed.dat"),
                               atol=1.5e-9)  # PLUMED prints 9 decimals


def test_state_as_fes_from_state(tmp_path):
    proc = limited(["state", "--state", str(DATA / "opes" / "metad-bis.State.data"), "--temp", "300", "--bin",
                    "30,20", "-o", "st.dat", "-q"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    np.testing.assert_allclose(rows(tmp_path / "st.dat"), rows(DATA / "opes" / "fes_from_state" /
                                                                "metad-bis.fes.dat"), rtol=1e-10, atol=1e-12)


def test_basins(tmp_path, colvar):
    src, x, bias = colvar
    proc = limited(["basins", str(src), *COLVAR_ARGS, "--json", "b.json", "-q"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    got = json.loads((tmp_path / "b.json").read_text())["basins"]
    assert [b["x"] for b in got] == [1.0, -1.0] and sum(b["points"] for b in got) == len(GRID)
    # The partition the counts give (the left basin is the leftmost points), summed by hand from the reference.
    p = np.exp(-reference_f(x, bias) / KT)
    left, right = p[:got[1]["points"]].sum(), p[got[1]["points"]:].sum()
    assert got[1]["delta_f"] == pytest.approx(-KT * np.log(left / right), abs=1e-6)
    assert got[0]["population"] == pytest.approx(right / (left + right), abs=1e-8)


def test_path(tmp_path, colvar):
    src, x, bias = colvar
    proc = limited(["path", str(src), *COLVAR_ARGS, "--from", "-1", "--to", "1", "--json", "p.json", "-q"],
                   tmp_path)
    assert proc.returncode == 0, proc.stderr
    got = json.loads((tmp_path / "p.json").read_text())
    f = reference_f(x, bias)
    a, b = 10, 30  # the grid points at x = -1 and x = +1
    saddle = a + int(np.argmax(f[a:b + 1]))  # on a 1-D grid the path is the segment between the minima
    assert got["saddle"] == pytest.approx([GRID[saddle]], abs=1e-12)
    assert got["barrier"] == pytest.approx(f[saddle] - f[a], abs=1e-6)
    assert got["barrier_reverse"] == pytest.approx(f[saddle] - f[b], abs=1e-6)
