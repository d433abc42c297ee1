"""Writes the HILLS and COLVAR inputs of the sum_hills tests in this directory (seeded, so the files are
reproducible): 1-D well-tempered hills, 2-D periodic hills with per-hill sigmas (also split into two walkers),
mixed periodic/non-periodic, multivariate, 3-D, COLVARs for --histo, and wide 2-D hills whose default grid is small."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent


def _write(name: str, fields: list, sets: list, rows: np.ndarray) -> None:
    lines = ["#! FIELDS " + " ".join(fields)] + [f"#! SET {k} {v}" for k, v in sets]
    lines += [" ".join(f"{v:.10f}" if abs(v) < 1e6 else f"{v:.10g}" for v in row) for row in rows]
    (HERE / name).write_text("\n".join(lines) + "\n")


def _wrap(x: np.ndarray) -> np.ndarray:
    return (x + math.pi) % (2 * math.pi) - math.pi


def main() -> None:
    rng = np.random.default_rng(20261127)
    # 1-D, non-periodic, well-tempered (biasf 10), one sigma
    n = 150
    t = np.arange(1, n + 1) * 0.5
    d = 0.6 + 0.5 * np.sin(t / 7.0) + 0.15 * rng.standard_normal(n)
    h = 1.2 * np.exp(-np.arange(n) / 80.0)
    _write("h1d.hills", ["time", "d", "sigma_d", "height", "biasf"],
           [("multivariate", "false"), ("kerneltype", "stretched-gaussian")],
           np.column_stack([t, d, np.full(n, 0.1), h, np.full(n, 10.0)]))
    # 2-D periodic dihedrals, per-hill sigmas (adaptive), centres near +-pi too
    n = 300
    t = np.arange(1, n + 1) * 1.0
    phi = _wrap(-1.5 + 0.9 * rng.standard_normal(n) + np.where(np.arange(n) % 5 == 0, 4.4, 0.0))
    psi = _wrap(2.5 + 0.7 * rng.standard_normal(n))
    sphi = 0.25 + 0.15 * rng.random(n)
    spsi = 0.2 + 0.2 * rng.random(n)
    h = 1.0 * np.exp(-np.arange(n) / 200.0)
    per = [("multivariate", "false"), ("kerneltype", "stretched-gaussian"), ("min_phi", "-pi"), ("max_phi", "pi"),
           ("min_psi", "-pi"), ("max_psi", "pi")]
    fields = ["time", "phi", "psi", "sigma_phi", "sigma_psi", "height", "biasf"]
    rows = np.column_stack([t, phi, psi, sphi, spsi, h, np.full(n, 8.0)])
    _write("h2d_periodic.hills", fields, per, rows)
    _write("h2d_walker0.hills", fields, per, rows[:120])
    _write("h2d_walker1.hills", fields, per, rows[120:])
    # 2-D, one periodic and one not, per-hill sigmas
    n = 200
    t = np.arange(1, n + 1) * 2.0
    phi = _wrap(0.3 + 1.2 * rng.standard_normal(n))
    dist = 1.2 + 0.4 * rng.standard_normal(n)
    _write("h2d_mixed.hills", ["time", "phi", "dist", "sigma_phi", "sigma_dist", "height", "biasf"],
           [("multivariate", "false"), ("kerneltype", "stretched-gaussian"), ("min_phi", "-pi"), ("max_phi", "pi")],
           np.column_stack([t, phi, dist, 0.3 + 0.1 * rng.random(n), 0.08 + 0.04 * rng.random(n),
                            0.8 * np.exp(-np.arange(n) / 150.0), np.full(n, 6.0)]))
    # 2-D multivariate (flexible) hills: lower Cholesky factor of each covariance, sigma_<cv[j+i]>_<cv[j]>
    n = 120
    t = np.arange(1, n + 1) * 1.0
    x = 0.5 * rng.standard_normal(n)
    y = 0.8 * x + 0.3 * rng.standard_normal(n)
    sxx = 0.15 + 0.05 * rng.random(n)
    syy = 0.10 + 0.05 * rng.random(n)
    rho = -0.6 + 1.2 * rng.random(n)
    l11, l21 = sxx, rho * syy
    l22 = syy * np.sqrt(1 - rho ** 2)
    _write("h2d_multi.hills", ["time", "x", "y", "sigma_x_x", "sigma_y_y", "sigma_y_x", "height", "biasf"],
           [("multivariate", "true"), ("kerneltype", "stretched-gaussian")],
           np.column_stack([t, x, y, l11, l22, l21, np.full(n, 0.5), np.full(n, 5.0)]))
    # 3-D, non-periodic, few hills
    n = 40
    t = np.arange(1, n + 1) * 1.0
    c = 0.4 * rng.standard_normal((n, 3))
    _write("h3d.hills", ["time", "a", "b", "c", "sigma_a", "sigma_b", "sigma_c", "height", "biasf"],
           [("multivariate", "false"), ("kerneltype", "stretched-gaussian")],
           np.column_stack([t, c, np.full(n, 0.3), np.full(n, 0.25), np.full(n, 0.35), np.full(n, 0.7),
                            np.full(n, 10.0)]))
    # COLVAR for --histo: periodic dihedrals and a bias column
    n = 400
    t = np.arange(n) * 0.1
    phi = _wrap(-1.2 + 0.6 * rng.standard_normal(n))
    psi = _wrap(2.2 + 0.5 * rng.standard_normal(n))
    _write("colvar2d.dat", ["time", "phi", "psi", "metad.bias"],
           [("min_phi", "-pi"), ("max_phi", "pi"), ("min_psi", "-pi"), ("max_psi", "pi")],
           np.column_stack([t, phi, psi, 3.0 * rng.random(n)]))
    _write("colvar1d.dat", ["time", "d"], [], np.column_stack([t[:300], 1.0 + 0.3 * rng.standard_normal(300)]))
    # 2-D, periodic and not, wide per-hill sigmas: the default grid (bounds and bins) stays small
    rng = np.random.default_rng(20261128)
    n = 80
    _write("h2d_wide.hills", ["time", "phi", "dist", "sigma_phi", "sigma_dist", "height", "biasf"],
           [("multivariate", "false"), ("kerneltype", "stretched-gaussian"), ("min_phi", "-pi"), ("max_phi", "pi")],
           np.column_stack([np.arange(1, n + 1) * 1.0, _wrap(2.8 + 0.8 * rng.standard_normal(n)),
                            1.5 + 0.5 * rng.standard_normal(n), 0.55 + 0.15 * rng.random(n),
                            0.25 + 0.05 * rng.random(n), 0.9 * np.exp(-np.arange(n) / 60.0), np.full(n, 7.0)]))


if __name__ == "__main__":
    main()
