"""The smoke program as data: its text and `SmokeProgram` (verify/smoke.py runs it and reads its report line).

A foundation module (no imports from the tool) so that release.yaml's model (config.py) can use it as
verify.smoke's default without importing the code that runs it.
"""
from __future__ import annotations

from dataclasses import dataclass

SMOKE = r"""
import json
import numpy as np
import cyfes, cyfes._build_info as info
if info.CUDA:
    import cyfes.engine._gpu  # loads libcufes and the CUDA runtime: a broken RPATH fails here, GPU or not
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


@dataclass(frozen=True)
class SmokeProgram:
    """A project's smoke program (release.yaml verify): a Python snippet or a command, and its output convention."""

    code: str = SMOKE
    """Python code run with the installed interpreter (`python -c`)."""
    command: tuple[str, ...] = ()
    """argv run instead of `code`; {python} is the installed interpreter."""
    mark: str = "CYFES-SMOKE "
    """Prefix of the stdout line holding the JSON facts (none printed: judged by exit code and trace alone)."""
    entry_point: str = "cyfes"
    """Console script a conda prefix must hold (run with --help); empty checks none."""

    def argv(self, python: str) -> list[str]:
        return [a.replace("{python}", python) for a in self.command] if self.command else [python, "-c", self.code]

    @property
    def is_default(self) -> bool:
        """cyfes's own program, whose report (cyfes's path, the FES against numpy) verify also checks."""
        return not self.command and self.code == SMOKE


def as_program(code: str | SmokeProgram) -> SmokeProgram:
    return code if isinstance(code, SmokeProgram) else SmokeProgram(code=code)
