"""TEST FIXTURE: the CV trajectory that PLUMED's driver replays in this folder (run.sh).

An overdamped Langevin walk on a periodic 2-D surface with two basins in phi, psi, written as a PLUMED COLVAR with
its periodic domains; no atoms. PLUMED then deposits well-tempered hills along it, computes c(t) and reweights
(REWEIGHT_METAD), and writes its own HISTOGRAM as a free energy grid: see run.sh and README.md."""
import math

import numpy as np

KT = 2.494339  # TEMP=300 in kJ/mol, PLUMED's kB


def force(x: np.ndarray) -> np.ndarray:
    """-dV/dx of V = 5 cos(2 phi) + 3 cos(psi - 1) + 2 cos(phi + psi) (kJ/mol): two basins along phi."""
    phi, psi = x
    return np.array([10 * math.sin(2 * phi) + 2 * math.sin(phi + psi), 3 * math.sin(psi - 1) + 2 * math.sin(phi + psi)])


def main(n: int = 10000, dt: float = 0.002, seed: int = 3) -> None:
    rng = np.random.default_rng(seed)
    x, rows = np.array([3.0, 1.0]), []
    for step in range(n):
        for _ in range(5):
            x = x + dt * force(x) + math.sqrt(2 * KT * dt) * rng.normal(size=2)
        x = (x + math.pi) % (2 * math.pi) - math.pi
        rows.append((step * 1.0, x[0], x[1]))
    with open("traj.dat", "w") as out:
        out.write("#! FIELDS time phi psi\n#! SET min_phi -pi\n#! SET max_phi pi\n#! SET min_psi -pi\n"
                  "#! SET max_psi pi\n")
        for t, a, b in rows:
            out.write(f" {t:.1f} {a:.8f} {b:.8f}\n")


if __name__ == "__main__":
    main()
