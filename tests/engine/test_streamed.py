"""Samples in chunks (lists of arrays, Dask arrays, files read on Dask workers): the merged partial sums give the
one-process surface. References: cyfes.fes on the concatenated arrays (tolerance 0: every pair; the exact merge
leaves only rounding), and F on a few points computed independently in float64 numpy."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import cyfes
from cyfes import InputError

dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")


def _data(n: int = 6000, seed: int = 3):
    rng = np.random.default_rng(seed)
    x = np.column_stack([rng.normal(0.0, 1.0, n), (rng.normal(0.5, 1.2, n) + np.pi) % (2 * np.pi) - np.pi])
    return x, rng.normal(0.0, 2.0, n), rng.uniform(0.0, 2.0, n)


KW = dict(bins=[15, 12], periodic=[None, 2 * np.pi], temperature=300.0, device="cpu")


def _close(a: cyfes.FESResult, b: cyfes.FESResult, tol: float = 1e-10) -> None:
    np.testing.assert_allclose(a.values, b.values, atol=tol, rtol=0)
    for ax, bx in zip(a.axes, b.axes):
        np.testing.assert_array_equal(ax, bx)
    if b.error is not None:
        np.testing.assert_allclose(a.error, b.error, atol=tol, rtol=0)
    assert a.n_samples == b.n_samples and a.ess == pytest.approx(b.ess, rel=1e-12)


def test_list_of_chunks_is_the_one_process_surface_blocks_across_chunks():
    x, v, w = _data()
    cuts = [0, 1000, 1001, 4100, 6000]  # a one-row chunk; blocks of 1500 straddle every cut
    chunks = [x[a:b] for a, b in zip(cuts[:-1], cuts[1:])]
    ref = cyfes.fes(x, [0.3, 0.4], bias=v, weights=w, blocks=4, tolerance=0, **KW)
    got = cyfes.fes(chunks, [0.3, 0.4], bias=[v[a:b] for a, b in zip(cuts[:-1], cuts[1:])],
                    weights=[w[a:b] for a, b in zip(cuts[:-1], cuts[1:])], blocks=4, tolerance=0, **KW)
    _close(got, ref)
    assert got.backend.startswith("4 chunks")


def test_chunked_surface_matches_a_float64_numpy_reference():
    x, v, _ = _data(800)
    kT = 0.0083144626181532 * 300.0
    got = cyfes.fes([x[:300], x[300:]], [0.3, 0.4], bias=[v[:300], v[300:]], tolerance=0, shift=False, **KW)
    pts = got.points()[::37]
    d = pts[:, None, :] - x[None, :, :]
    d[..., 1] -= 2 * np.pi * np.round(d[..., 1] / (2 * np.pi))
    k = np.exp(-0.5 * ((d / np.array([0.3, 0.4])) ** 2).sum(-1)) / (2 * np.pi * 0.3 * 0.4)
    wts = np.exp((v - v.max()) / kT)
    f = -kT * np.log((k * wts).sum(1) / wts.sum())
    np.testing.assert_allclose(got.values.ravel()[::37], f, rtol=0, atol=1e-9)


def test_default_tolerance_stays_within_the_bounds():
    x, v, _ = _data()
    ref = cyfes.fes(x, [0.3, 0.4], bias=v, **KW)
    got = cyfes.fes([x[:2500], x[2500:]], [0.3, 0.4], bias=[v[:2500], v[2500:]], **KW)
    kT = ref.kT
    assert np.abs(got.values - ref.values).max() <= 2 * kT * (got.bound + ref.bound) + 1e-12


def test_a_chunk_without_weight_adds_nothing():
    x, v, w = _data(3000)
    w[1000:2000] = 0.0
    ref = cyfes.fes(x, 0.35, bias=v, weights=w, tolerance=0, **KW)
    got = cyfes.fes([x[:1000], x[1000:2000], x[2000:]], 0.35, bias=[v[:1000], v[1000:2000], v[2000:]],
                    weights=[w[:1000], w[1000:2000], w[2000:]], tolerance=0, **KW)
    _close(got, ref)


def test_dask_array_threads_scheduler():
    x, v, _ = _data()
    ref = cyfes.fes(x, [0.3, 0.4], bias=v, blocks=3, tolerance=0, **KW)
    with dask.config.set(scheduler="threads"):
        got = cyfes.fes(da.from_array(x, chunks=(700, 1)), [0.3, 0.4], bias=da.from_array(v, chunks=1100),
                        blocks=3, tolerance=0, **KW)
    _close(got, ref)


def _chunk_on_worker(seed: int, n: int, client_pid: int) -> np.ndarray:
    """A chunk made where a worker runs: it refuses to exist in the client's process."""
    if os.getpid() == client_pid:
        raise RuntimeError("a chunk of samples was computed in the client process")
    return _data(n, seed)[0]


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=40) as c:
        yield c


def test_dask_cluster_of_two_processes_samples_stay_on_the_workers(cluster):
    seeds, n = [11, 12, 13, 14], 1500
    parts = [da.from_delayed(dask.delayed(_chunk_on_worker)(s, n, os.getpid()), shape=(n, 2), dtype=float)
             for s in seeds]
    with distributed.Client(cluster) as client:
        got = cyfes.fes(da.concatenate(parts), [0.3, 0.4], blocks=2, tolerance=0, **KW)
        workers = set(client.scheduler_info()["workers"])
    assert len(workers) == 2
    ref = cyfes.fes(np.concatenate([_data(n, s)[0] for s in seeds]), [0.3, 0.4], blocks=2, tolerance=0, **KW)
    _close(got, ref)


def _colvars(tmp_path, count=3, n=1200):
    paths = []
    for k in range(count):
        x, v, _ = _data(n, 20 + k)
        p = tmp_path / f"COLVAR.{k}"
        rows = "\n".join(f"{i} {a:.8f} {b:.8f} {c:.8f}" for i, (a, b, c) in enumerate(zip(x[:, 0], x[:, 1], v)))
        p.write_text("#! FIELDS time phi psi metad.bias\n#! SET min_psi -pi\n#! SET max_psi pi\n" + rows + "\n")
        paths.append(str(p))
    return paths


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cyfes", *args], capture_output=True, text=True, timeout=300)


def test_cli_scheduler_reads_on_workers_and_writes_the_local_bytes(cluster, tmp_path):
    paths = _colvars(tmp_path)
    flags = ["--cv", "phi,psi", "--bias", "metad.bias", "--sigma", "0.3,0.4", "--bins", "16", "--blocks", "3",
             "--tolerance", "0", "--device", "cpu", "-q"]
    local = _cli("fes", *paths, *flags, "-o", str(tmp_path / "local.dat"))
    dist = _cli("fes", *paths, *flags, "-o", str(tmp_path / "dist.dat"), "--scheduler", cluster.scheduler_address)
    assert local.returncode == 0 and dist.returncode == 0, dist.stderr
    a, b = np.loadtxt(tmp_path / "local.dat"), np.loadtxt(tmp_path / "dist.dat")
    assert a.shape == (256, 4)
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-9)


def test_cli_scheduler_unreachable_is_one_line(tmp_path):
    paths = _colvars(tmp_path, 1, 50)
    before = sorted(os.listdir(tmp_path))
    r = _cli("fes", *paths, "--cv", "phi,psi", "--sigma", "0.3", "--bins", "8", "--scheduler",
             "tcp://127.0.0.1:9", "-o", str(tmp_path / "x.dat"))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "--scheduler" in r.stderr
    assert sorted(os.listdir(tmp_path)) == before


def test_cli_scheduler_refuses_sigma_auto(tmp_path):
    paths = _colvars(tmp_path, 1, 50)
    r = _cli("fes", *paths, "--cv", "phi,psi", "--sigma", "auto", "--bins", "8", "--scheduler", "tcp://127.0.0.1:9")
    assert r.returncode == 2 and "--sigma auto" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("bad, match", [
    (lambda x, v: dict(samples=[x[:10], x[10:20, :1]]), "same number of columns"),
    (lambda x, v: dict(samples=[x[:10], x[10:20]], bias=[v[:10]]), "bias: samples come as 2 chunks"),
    (lambda x, v: dict(samples=[x[:10], x[10:20]], bias=[v[:10], v[:3]]), "bias: chunk 1"),
])
def test_bad_chunks_are_refused(bad, match):
    x, v, _ = _data(40)
    kw = bad(x, v)
    with pytest.raises(InputError, match=match):
        cyfes.fes(kw.pop("samples"), 0.3, bins=5, device="cpu", **kw)


def test_non_finite_sample_names_its_rows():
    x, _, _ = _data(40)
    x[25, 1] = np.nan
    with pytest.raises(InputError, match="samples"):
        cyfes.fes([x[:20], x[20:]], 0.3, bins=5, ranges=[(-3, 3), (-3, 3)], device="cpu")
