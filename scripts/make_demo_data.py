"""Generate src/cyfes/data/demo_colvar.dat, the example data of `cyfes demo` (run once; the output is committed).

A particle on the 2-D potential (kJ/mol)

    U(x, y) = 30 (x^2 - 1)^2 + 25 (y - x^2 + 0.3)^2 - 6 exp(-((x + 0.2)^2 + (y - 1.1)^2) / 0.08)

(two wells at x = -1 and x = +1 joined by a curved valley, a barrier of about 30 kJ/mol = 12 kT at 300 K, and a
shallow side pocket) moves by overdamped Langevin dynamics at 300 K under the static bias

    V(x, y) = -(1 - 1/gamma) U(x, y),   gamma = 8,

the limit a well-tempered metadynamics bias converges to. The biased run crosses the barrier many times, and
reweighting each sample by exp(V/kT) recovers the unbiased surface exactly (the bias does not change in time).
The file is a PLUMED COLVAR written in two parts with a restart header in between, like a restarted run:
`#! FIELDS time x y static.bias`, time in ps.

usage: python scripts/make_demo_data.py [OUTPUT]
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

KT = 0.0083144626181532 * 300.0  # kJ/mol at 300 K
GAMMA = 8.0
DT = 2e-4                         # time step (reduced units: mobility 1/kT... see step())
STEPS_PER_SAMPLE = 50
SAMPLES = 20000
SEED = 20261125


def potential(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    pocket = np.exp(-((x + 0.2) ** 2 + (y - 1.1) ** 2) / 0.08)
    return 30.0 * (x * x - 1.0) ** 2 + 25.0 * (y - x * x + 0.3) ** 2 - 6.0 * pocket


def gradient(x: float, y: float) -> np.ndarray:
    pocket = np.exp(-((x + 0.2) ** 2 + (y - 1.1) ** 2) / 0.08)
    dx = 120.0 * x * (x * x - 1.0) - 100.0 * x * (y - x * x + 0.3) + 6.0 * pocket * 2 * (x + 0.2) / 0.08
    dy = 50.0 * (y - x * x + 0.3) + 6.0 * pocket * 2 * (y - 1.1) / 0.08
    return np.array([dx, dy])


def bias(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return -(1.0 - 1.0 / GAMMA) * potential(x, y)


def simulate(rng: np.random.Generator) -> np.ndarray:
    """Euler-Maruyama for dr = -grad(U + V)/kT D dt + sqrt(2 D dt) xi with D = 1; one row per sample."""
    pos = np.array([-1.0, 0.7])
    scale = 1.0 / GAMMA  # grad(U + V) = grad(U) / gamma
    rows = np.empty((SAMPLES, 2))
    for i in range(SAMPLES):
        for _ in range(STEPS_PER_SAMPLE):
            pos = pos - DT * scale * gradient(*pos) / KT + np.sqrt(2 * DT) * rng.standard_normal(2)
        rows[i] = pos
    return rows


def write_colvar(path: Path, rows: np.ndarray) -> None:
    time = np.arange(len(rows)) * 0.1
    table = np.column_stack([time, rows, bias(rows[:, 0], rows[:, 1])])
    half = len(rows) // 2
    with open(path, "w") as out:
        for part in (table[:half], table[half:]):  # a restart: PLUMED writes the header again
            out.write("#! FIELDS time x y static.bias\n")
            np.savetxt(out, part, fmt="%.1f %.4f %.4f %.3f")


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parents[1] / "src/cyfes/data/demo_colvar.dat"
    rows = simulate(np.random.default_rng(SEED))
    write_colvar(out, rows)
    print(f"wrote {out}: {len(rows)} samples, x in [{rows[:, 0].min():.2f}, {rows[:, 0].max():.2f}], "
          f"y in [{rows[:, 1].min():.2f}, {rows[:, 1].max():.2f}], "
          f"fraction at x > 0: {(rows[:, 0] > 0).mean():.2f}")


if __name__ == "__main__":
    main()
