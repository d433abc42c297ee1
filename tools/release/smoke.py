"""The one smoke program run in every installed wheel and conda prefix, and the reader of the line it reports.

It imports cyfes (and its GPU module when built with CUDA, so a broken RPATH fails here, GPU or not), asks for
the backends, computes a small FES on the CPU and compares it with an independent float64 numpy reference, and on
a usable GPU compares the GPU's answer with the CPU's. One JSON line carries the facts; the last line says
"fes ok <backend> ..." for people reading a log.
"""
from __future__ import annotations

import json

SMOKE_TIMEOUT_S = 300
"""Longest a smoke run (or an installed entry point's --help) may take."""
REPORT_MARK = "CYFES-SMOKE "
CPU_TOLERANCE = 1e-6
"""Largest |F_cyfes - F_numpy| (kT units of the default truncated sum's bound and more) the smoke accepts."""

SMOKE = r"""
import json
import numpy as np
import cyfes, cyfes._build_info as info
if info.CUDA:
    import cyfes._gpu  # loads libcufes and the CUDA runtime: a broken RPATH fails here, GPU or not
backends = cyfes.backends()
rng = np.random.default_rng(0)
samples = rng.normal(size=(2000, 2))
res = cyfes.fes(samples, sigma=0.3, bins=24, device="cpu")
# independent float64 reference: F = -kT log sum_j exp(-|x - s_j|^2 / 2 sigma^2), shifted to min 0
pts = res.points()
d2 = (((pts[:, None, :] - samples[None, :, :]) / 0.3) ** 2).sum(-1)
m = (-0.5 * d2).max(1)
ref = -res.kT * (m + np.log(np.exp(-0.5 * d2 - m[:, None]).sum(1)))
ref -= ref.min()
out = {"cyfes": cyfes.__file__, "numpy": np.__version__, "backends": backends,
       "cpu_vs_numpy": float(np.max(np.abs(res.values.ravel() - ref)))}
if backends["cuda"]["usable"]:
    gpu = cyfes.fes(samples, sigma=0.3, bins=24, device="gpu")
    out["gpu_vs_cpu"] = float(np.max(np.abs(gpu.values - res.values)))
print("CYFES-SMOKE " + json.dumps(out, default=str))
print("fes ok", res.backend, res.values.shape, float(res.values.max()))
"""


def smoke_report(stdout: str) -> dict:
    """The facts of the program's report line ({} when a custom program printed none)."""
    lines = [ln for ln in stdout.splitlines() if ln.startswith(REPORT_MARK)]
    return json.loads(lines[-1][len(REPORT_MARK):]) if lines else {}
