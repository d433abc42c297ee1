"""method="binned" on one GPU against two (each bins and convolves half of the samples), alternating.

    python bench/bench_binned_gpus.py [--repeats 3]

2-D N(0, 1) samples with a bias, sigma 0.1, float32: 1e7 x 200^2 and 1e8 x 500^2. On two GPUs the samples are
split from _binned.GPU_SHARE samples per GPU; below that the call runs on one GPU, so the case is also timed with
the split forced, to show why the threshold is where it is. Each variant is timed `repeats` times, alternating,
best of each; the ratio is one GPU's time over the other's, with the largest |dF| between them.
"""
from __future__ import annotations

import argparse
import time
from typing import Dict

import numpy as np

import cyfes
from cyfes.engine import backends as _backends
from cyfes.engine import binned as _binned


def _best(variants: Dict[str, dict], x: np.ndarray, bias: np.ndarray, bins: int, repeats: int) -> Dict[str, tuple]:
    best: Dict[str, tuple] = {}
    for _ in range(repeats):
        for name, v in variants.items():
            _binned.GPU_SHARE = v["share"]
            t0 = time.perf_counter()
            res = cyfes.fes(x, 0.1, bias=bias, bins=bins, method="binned", precision="float32", devices=v["ids"])
            took = time.perf_counter() - t0
            if name not in best or took < best[name][0]:
                best[name] = (took, res.values)
    return best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()
    ids = [d["id"] for d in _backends.gpu_devices()]
    if len(ids) < 2:
        raise SystemExit(f"needs 2 GPUs, found {len(ids)}")
    names = ", ".join(d["name"] for d in _backends.gpu_devices()[:2])
    print(f"cyfes {cyfes.__version__}; GPUs {names}; GPU_SHARE {_binned.GPU_SHARE:.3g}")
    share = _binned.GPU_SHARE
    rng = np.random.default_rng(3)
    for n, bins in ((10 ** 7, 200), (10 ** 8, 500)):
        x = rng.normal(size=(n, 2))
        bias = rng.normal(scale=5.0, size=n)
        cyfes.fes(x[:1000], 0.1, bias=bias[:1000], bins=20, method="binned", devices=ids[:2])  # contexts
        variants = {"one GPU": dict(ids=ids[:1], share=share), "two GPUs (default)": dict(ids=ids[:2], share=share),
                    "two GPUs, split forced": dict(ids=ids[:2], share=1)}
        best = _best(variants, x, bias, bins, a.repeats)
        _binned.GPU_SHARE = share
        base, ref = best["one GPU"]
        for name, (took, values) in best.items():
            finite = np.isfinite(ref)
            diff = float(np.max(np.abs(values[finite] - ref[finite])))
            print(f"2-D {n:.0e} x {bins}^2  {name:24s} {took:7.3f} s  {base / took:5.2f}x one GPU  "
                  f"max|dF| vs one GPU {diff:.1e} kJ/mol")
        del x, bias


if __name__ == "__main__":
    main()
