"""The paths that split one computation over several GPUs, run on one GPU named twice (two host threads, each
driving its own share on the same device): the truncated sum's grid tiles, the binned method's sample shares,
and Dask workers that share one GPU. Each gives the one-GPU surface and the float64 numpy reference's. Runs on
any machine with one GPU; the same paths over two physical GPUs are exercised by tests that skip below two."""
from __future__ import annotations

import numpy as np
import pytest

import cyfes
import reference as ref
from cyfes.engine import backends as _backends
from cyfes.engine import binned as _binned

KT = ref.KB["kJ/mol"] * 300.0


def _twice(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every GPU run of cyfes.fes goes to GPU 0 listed twice (parse_device refuses that from users)."""
    one = _backends.parse_device("gpu")
    monkeypatch.setattr(_backends, "parse_device",
                        lambda *a, **k: _backends.Device("cuda", (one.ids[0], one.ids[0])))


@pytest.mark.gpu
@pytest.mark.parametrize("dim", [2, 3])
def test_truncated_sum_split_far_beyond_the_data(rng, monkeypatch: pytest.MonkeyPatch, dim: int) -> None:
    samples = np.r_[rng.normal(scale=0.3, size=(3000, dim)),
                    rng.normal(loc=[1.5] + [0.0] * (dim - 1), scale=0.05, size=(10, dim))]
    bias = np.r_[rng.normal(scale=2.0, size=3000) * KT, np.full(10, 150.0 * KT)]
    kw = dict(bins={2: 41, 3: 15}[dim], ranges=[(-2.5, 2.5)] * dim, bias=bias, shift=False)
    one = cyfes.fes(samples, 0.1, device="gpu", **kw)
    _twice(monkeypatch)
    split = cyfes.fes(samples, 0.1, device="gpu", **kw)
    assert split.backend.count(",") == 1
    np.testing.assert_allclose(split.values, one.values, rtol=0, atol=1e-9 * KT)
    expected = ref.free_energy(samples, [0.1] * dim, ref.regular_grid(split.axes), bias=bias, shift=False)
    finite = np.isfinite(expected)
    assert np.array_equal(np.isfinite(split.values.ravel()), finite)
    err = np.abs(split.values.ravel()[finite] - expected[finite])
    assert err.max() <= KT * (split.bound + 1e-9) + 1e-9 * np.abs(expected[finite]).max()


@pytest.mark.gpu
def test_binned_split_into_shares(rng, monkeypatch: pytest.MonkeyPatch) -> None:
    samples = rng.normal(scale=[1.0, 0.6], size=(40000, 2))
    bias = rng.normal(scale=2.0, size=40000) * KT
    kw = dict(bias=bias, bins=(50, 40), method="binned", blocks=2, shift=False)
    one = cyfes.fes(samples, 0.1, device="gpu", **kw)
    monkeypatch.setattr(_binned, "GPU_SHARE", 1000)
    _twice(monkeypatch)
    split = cyfes.fes(samples, 0.1, device="gpu", **kw)
    np.testing.assert_allclose(split.values, one.values, rtol=1e-12, atol=1e-9 * KT)
    expected = ref.free_energy(samples, [0.1, 0.1], ref.regular_grid(split.axes), bias=bias, shift=False)
    assert (np.abs(split.values.ravel() - expected) / KT).max() <= split.error_estimate < 0.1


@pytest.mark.gpu
def test_dask_workers_sharing_one_gpu(rng) -> None:
    da = pytest.importorskip("dask.array")
    distributed = pytest.importorskip("distributed")
    samples = rng.normal(size=(200000, 2))
    bias = rng.normal(scale=2.0, size=200000) * KT
    kw = dict(bins=60, ranges=[(-4, 4)] * 2, blocks=4, tolerance=0)
    want = cyfes.fes(samples, 0.15, bias=bias, device="cpu", **kw)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=40) as cluster, distributed.Client(cluster):
        got = cyfes.fes(da.from_array(samples, chunks=(25000, 2)), 0.15, bias=da.from_array(bias, chunks=25000),
                        device="gpu", **kw)
    assert "cuda" in got.backend and got.backend.startswith("8 chunks")
    np.testing.assert_allclose(got.values, want.values, rtol=0, atol=1e-9 * KT)
    np.testing.assert_allclose(got.error, want.error, rtol=0, atol=1e-9 * KT)
