"""The backends behind cyfes.fes: device parsing, the multi-GPU grid split, the raw kernels against the
float64 reference, and CUDA errors surfacing as BackendError with CUDA's own message."""
from __future__ import annotations

import math

import numpy as np
import pytest

import cyfes
import reference as ref
from cyfes.engine import backends as _b


def gpu_ids() -> list:
    """Usable CUDA device ids (a tests/conftest.py helper could be shadowed by tests/tools/conftest.py)."""
    return [d["id"] for d in _b.gpu_devices()]
from cyfes import _build_info
from cyfes.engine import backends as _backends


def raw_problem(rng: np.random.Generator, n: int, m: int, dim: int, dtype: type):
    samples = rng.normal(size=(n, dim))
    logw = rng.normal(scale=2.0, size=n)
    logw -= logw.max()
    grid = rng.uniform(-3, 3, size=(m, dim))
    scale = 1.0 / rng.uniform(0.2, 0.6, size=dim)
    period = np.where(np.arange(dim) % 2 == 0, 4.0, 0.0)
    cast = lambda a: np.ascontiguousarray(a, dtype=dtype)  # noqa: E731
    # The kernel contract has no normalisation: the reference's Gaussian norm is added back below.
    expected = ref.log_kernel_sum(samples, logw, grid, 1.0 / scale, period) + np.sum(
        np.log(np.sqrt(2 * math.pi) / scale))
    return (cast(samples), cast(logw), cast(grid), cast(scale), cast(period)), expected


@pytest.mark.parametrize("dtype,atol", [(np.float64, 1e-9), (np.float32, 2e-3)])
def test_cpu_kernel_contract(rng, dtype: type, atol: float) -> None:
    args, expected = raw_problem(rng, 1500, 333, 3, dtype)
    out = _backends.log_density(*args, _backends.Device("cpu", threads=2))
    np.testing.assert_allclose(out, expected, atol=atol, rtol=1e-4 if dtype is np.float32 else 1e-10)


@pytest.mark.parametrize("threads", [1, 2])
def test_cpu_thread_counts_agree(rng, threads: int) -> None:
    args, expected = raw_problem(rng, 700, 101, 2, np.float64)
    out = _backends.log_density(*args, _backends.Device("cpu", threads=threads))
    np.testing.assert_allclose(out, expected, atol=1e-9, rtol=1e-10)


def test_cpu_tiny_problem_one_sample_one_point() -> None:
    out = _backends.log_density(np.zeros((1, 1)), np.zeros(1), np.ones((1, 1)), np.full(1, 2.0), np.zeros(1),
                                _backends.Device("cpu", threads=1))
    assert out[0] == pytest.approx(-2.0)  # -(1 * 2)^2 / 2


@pytest.mark.parametrize("m,parts", [(10, 1), (10, 3), (2, 4), (1001, 2), (0, 2)])
def test_split_grid_covers_every_point_once(m: int, parts: int) -> None:
    ranges = _backends.split_grid(m, parts)
    covered = [i for lo, hi in ranges for i in range(lo, hi)]
    assert covered == list(range(m))
    assert len(ranges) <= parts
    sizes = [hi - lo for lo, hi in ranges]
    assert not sizes or max(sizes) - min(sizes) <= 1


def test_parse_device_cpu_and_threads() -> None:
    dev = _backends.parse_device("cpu", threads=1)
    assert dev.kind == "cpu" and dev.threads == 1 and dev.describe() == "cpu (1 threads)"


@pytest.mark.parametrize("spec", ["cuda:0", "gpu", 0, [0]])
def test_parse_gpu_specs(spec) -> None:
    if gpu_ids():
        assert _backends.parse_device(spec).ids == (0,)
    else:
        with pytest.raises(cyfes.BackendError):
            _backends.parse_device(spec)


def test_parse_device_rejects_duplicates() -> None:
    with pytest.raises(cyfes.InputError, match="^devices: GPU id listed twice"):
        _backends.parse_device("auto", devices=[0, 0])


def test_backends_report() -> None:
    info = cyfes.backends()
    assert info["cpu"]["usable"] and info["cpu"]["threads"] >= 1
    cuda = info["cuda"]
    assert cuda["built"] == _build_info.CUDA
    assert cuda["usable"] == bool(gpu_ids())
    if not cuda["usable"]:
        assert cuda["reason"]


@pytest.mark.gpu
def test_nvml_lists_the_gpus_cuda_lists() -> None:
    """On a real GPU host the quick listing (NVML, no cuInit) names the same devices, in CUDA's numbering, as the
    runtime; NVML counts the whole framebuffer, CUDA what it can allocate from (within 2%)."""
    if not gpu_ids():
        pytest.skip("no usable CUDA device")
    quick, checked = _b.backends(check=False)["cuda"], _b.backends(check=True)["cuda"]
    if quick["listed_by"] != "nvml":
        pytest.skip("NVML cannot number this host's GPUs as CUDA does (CUDA_VISIBLE_DEVICES, MIG, mixed models)")
    key = lambda d: (d["id"], d["name"], d["compute_capability"])  # noqa: E731
    assert [key(d) for d in quick["devices"]] == [key(d) for d in checked["devices"]]
    for q, c in zip(quick["devices"], checked["devices"]):
        assert c["memory"] <= q["memory"] <= 1.02 * c["memory"]
    assert (quick["usable"], quick["runtime_version"], quick["driver_version"]) == (
        True, checked["runtime_version"], checked["driver_version"])


@pytest.mark.skipif(not _build_info.CUDA, reason="cyfes was built without CUDA")
def test_device_count_is_not_an_error_without_gpu() -> None:
    from cyfes.engine import _gpu

    assert _gpu.device_count() == len(gpu_ids())
    runtime, driver = _gpu.versions()
    assert runtime >= 11000 and driver >= 0


@pytest.mark.skipif(not _build_info.CUDA or bool(gpu_ids()), reason="needs a CUDA build on a machine without GPU")
def test_cuda_error_carries_cuda_message_without_driver(rng) -> None:
    from cyfes.engine import _gpu

    args, _ = raw_problem(rng, 10, 5, 2, np.float32)
    with pytest.raises(cyfes.BackendError, match=r"cufes: cuda\w+.* failed: cudaError\w+: "):
        _gpu.log_density(*args, np.empty(5), 0)


@pytest.mark.gpu
def test_cuda_error_carries_cuda_message(rng) -> None:
    from cyfes.engine import _gpu

    args, _ = raw_problem(rng, 10, 5, 2, np.float32)
    with pytest.raises(cyfes.BackendError, match=r"cudaSetDevice.* failed: cudaErrorInvalidDevice: "):
        _gpu.log_density(*args, np.empty(5), 64)
    with pytest.raises(cyfes.BackendError, match="device: GPU 64 requested"):
        cyfes.fes(np.zeros((5, 1)), 1.0, bins=3, device=64)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype,atol", [(np.float64, 1e-9), (np.float32, 2e-3)])
@pytest.mark.parametrize("dim", [1, 2, 3, 4, 5, 6, 7, 8])
def test_gpu_kernel_contract_every_dim(rng, dtype: type, atol: float, dim: int) -> None:
    args, expected = raw_problem(rng, 1300, 517, dim, dtype)
    out = _backends.log_density(*args, _backends.Device("cuda", (gpu_ids()[0],)))
    np.testing.assert_allclose(out, expected, atol=atol, rtol=1e-4 if dtype is np.float32 else 1e-10)


@pytest.mark.gpu
def test_gpu_restores_the_callers_device(rng) -> None:
    cupy = pytest.importorskip("cupy")
    ids = gpu_ids()
    target = ids[-1]
    args, expected = raw_problem(rng, 100, 50, 2, np.float64)
    with cupy.cuda.Device(ids[0]):
        _backends.log_density(*args, _backends.Device("cuda", (target,)))
        assert cupy.cuda.runtime.getDevice() == ids[0]


@pytest.mark.parametrize("device", ["cpu", pytest.param("gpu", marks=pytest.mark.gpu)])
@pytest.mark.parametrize("dtype,atol", [(np.float64, 1e-9), (np.float32, 2e-3)])
def test_running_max_rises_across_blocks(rng, monkeypatch, device: str, dtype: type, atol: float) -> None:
    """log-weights rising by ~600 over the samples: every later block (CPU), tile and sample chunk (GPU)
    exceeds the running maximum, so the lazy rescale and the merge of partial sums all run."""
    monkeypatch.setenv("CUFES_MAX_SAMPLES", "2500")
    (samples, _, grid, scale, period), _ = raw_problem(rng, 6000, 97, 3, dtype)
    logw = np.linspace(-600.0, 0.0, 6000) + rng.normal(scale=0.5, size=6000)
    logw -= logw.max()
    expected = ref.log_kernel_sum(samples.astype(float), logw, grid.astype(float), 1.0 / scale.astype(float),
                                  period.astype(float)) + np.sum(np.log(np.sqrt(2 * math.pi) / scale.astype(float)))
    dev = _backends.Device("cpu", threads=2) if device == "cpu" else _backends.Device("cuda", (gpu_ids()[0],))
    out = _backends.log_density(samples, np.ascontiguousarray(logw, dtype=dtype), grid, scale, period, dev)
    np.testing.assert_allclose(out, expected, atol=atol, rtol=1e-4 if dtype is np.float32 else 1e-10)


@pytest.mark.gpu
def test_pinned_host_locks_once_and_unlocks() -> None:
    """Page-locking around the GPU copies (cufes_host_register): an array is locked by the outermost block only
    (an inner block finds it locked and leaves it to its owner), small arrays are left alone, and leaving the
    block unlocks it, so it can be locked again."""
    gpu = _backends.gpu_module()
    a = np.ones(5_000_000)  # 40 MB
    with gpu.PinnedHost([a, np.ones(10)]) as outer:
        assert len(outer.locked) == 1
        with gpu.PinnedHost([a]) as inner:
            assert inner.locked == []
    assert outer.locked == []
    with gpu.PinnedHost([a]) as again:
        assert len(again.locked) == 1


def _staged_inputs(rng: np.random.Generator, case: str):
    """Samples, bias, weights and block edges for the staging tests, with the defect `case` names."""
    n, dim = 50_000, 3
    x = rng.normal(size=(n, dim))
    bias = rng.normal(scale=40.0, size=n)
    weights = rng.uniform(0.0, 2.0, size=n) if case in ("weights", "negative weight", "bad weight") else None
    if weights is not None:
        weights[::7] = 0.0
    if case == "bad sample":
        x[3001, 2], x[40_000, 0] = np.nan, np.inf
    if case == "bad bias":
        bias[[17, 20_000]] = [np.inf, np.nan]
    if case == "bad weight":
        weights[45_000] = np.nan
    if case == "negative weight":
        weights[[99, 30_000]] = -1.0
    edges = np.array([0, 1, 20_000, 20_001, n], dtype=np.int64)  # blocks of one sample too
    return x, bias, weights, edges


@pytest.mark.gpu
@pytest.mark.parametrize("case", ["bias", "weights", "bad sample", "bad bias", "bad weight", "negative weight"])
def test_gpu_stage_matches_the_host_passes(rng, case: str) -> None:
    """The passes over samples and weights on the GPU (cuda/stage.cu) against the host's (cpu_scan.h, each checked
    against numpy in test_inputs): the same first bad indices, ranges, positive count and block statistics; and the
    staged samples and log-weights give the same cells as the host's arrays."""
    import cyfes.engine._cpu as cpu
    from cyfes.engine import truncated as _truncated
    gpu = _backends.gpu_module()
    x, bias, weights, edges = _staged_inputs(rng, case)
    inv_kt = 1.0 / 2.494
    staged, scan, stats = gpu.stage(x, bias, weights, inv_kt, edges, gpu_ids()[0])
    lo, hi, bad = cpu.scan_rows(x)
    logw, flags, positive = cpu.log_weights(bias, weights, inv_kt, len(x))
    assert scan[:5] == (bad, *flags, positive)
    if bad < 0:
        np.testing.assert_array_equal(scan[5], lo)
        np.testing.assert_array_equal(scan[6], hi)
    if bad >= 0 or max(flags) >= 0:
        return
    top, kept, lz, lz2 = cpu.block_stats(logw, edges)
    np.testing.assert_array_equal(stats[0], top)
    np.testing.assert_array_equal(stats[1], kept)
    np.testing.assert_allclose(stats[2], lz, rtol=1e-14)
    np.testing.assert_allclose(stats[3], lz2, rtol=1e-14)
    factor = _truncated.scaled_factor(np.full(3, 0.2))
    per = np.zeros(3)
    args = (20_000, len(x), factor, per, float(top[3]), 2.0, 16, 4096, np.float64)
    want = cpu.build_cells(x, logw, *args)
    got = gpu.build_cells(x, None, *args, device=gpu_ids()[0], staged=staged)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_allclose(got[1], want[1], rtol=0, atol=1e-12)  # log(weight): libm and CUDA may differ by an ulp
    np.testing.assert_array_equal(got[2], want[2])
    staged.free()


@pytest.mark.gpu
@pytest.mark.parametrize("case", ["bad sample", "bad bias", "bad weight", "negative weight"])
def test_gpu_path_refuses_bad_inputs_as_the_cpu_does(rng, case: str) -> None:
    """fes() on the GPU checks samples and weights on the GPU: the same error, word for word, as on the CPU."""
    x, bias, weights, _ = _staged_inputs(rng, case)
    messages = []
    for device in ("cpu", "gpu"):
        with pytest.raises(cyfes.InputError) as info:
            cyfes.fes(x, 0.2, bias=bias, weights=weights, bins=10, device=device, blocks=2)
        messages.append(str(info.value))
    assert messages[0] == messages[1]
