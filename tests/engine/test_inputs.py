"""Bad input to cyfes.fes: one InputError (a ValueError) naming the argument, raised before any work starts."""
from __future__ import annotations

from typing import Any, Dict

import numpy as np
import pytest

import cyfes
from cyfes.engine import backends as _backends
from cyfes.engine import inputs as _inputs

GOOD: Dict[str, Any] = {"samples": np.random.default_rng(7).normal(size=(50, 2)), "sigma": 0.3, "bins": 8,
                        "device": "cpu"}


@pytest.fixture(autouse=True)
def no_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any kernel call during these tests is a failure: validation must come first."""

    def forbidden(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a kernel ran before the bad input was reported")

    monkeypatch.setattr(_backends, "log_density", forbidden)


def call(**changes: Any) -> None:
    args = {**GOOD, **changes}
    args = {k: v for k, v in args.items() if v is not _DROP}
    samples, sigma = args.pop("samples"), args.pop("sigma")
    cyfes.fes(samples, sigma, **args)


_DROP = object()
NAN_SAMPLES = GOOD["samples"].copy()
NAN_SAMPLES[3, 1] = np.nan
INF_BIAS = np.zeros(50)
INF_BIAS[7] = np.inf

CASES = [
    ("samples", dict(samples=NAN_SAMPLES), "NaN"),
    ("samples", dict(samples=np.empty((0, 2))), "empty"),
    ("samples", dict(samples=np.zeros((2, 3, 4))), "2-D"),
    ("samples", dict(samples=np.zeros((5, 9))), "CVs"),
    ("samples", dict(samples=[["a", "b"]]), "numeric"),
    ("sigma", dict(sigma=0.0), "> 0"),
    ("sigma", dict(sigma=[0.3, -1.0]), "> 0"),
    ("sigma", dict(sigma=[0.1, 0.2, 0.3]), "one per CV"),
    ("sigma", dict(sigma=np.nan), "NaN"),
    ("bias", dict(bias=INF_BIAS), "NaN or infinity"),
    ("bias", dict(bias=np.zeros(49)), "50 values"),
    ("bias", dict(bias=np.zeros((50, 2))), "1-D"),
    ("weights", dict(weights=-np.ones(50)), ">= 0"),
    ("weights", dict(weights=np.zeros(50)), "all weights are zero"),
    ("weights", dict(weights=np.ones(51)), "50 values"),
    ("periodic", dict(periodic=[0.0, None]), "> 0"),
    ("periodic", dict(periodic=[-6.0, None]), "> 0"),
    ("periodic", dict(periodic=[np.inf, None]), "finite"),
    ("periodic", dict(periodic=[6.28]), "2 entries"),
    ("periodic", dict(periodic=["x", None]), "period or None"),
    ("units", dict(units="eV"), "kJ/mol"),
    ("temperature", dict(temperature=-1.0), "positive"),
    ("temperature", dict(temperature=np.nan), "positive"),
    ("device", dict(device="tpu"), "unknown device"),
    ("device", dict(device="cuda:0,"), "unknown device"),
    ("device", dict(device="cuda:,1"), "unknown device"),
    ("device", dict(device=-1), "non-negative"),
    ("devices", dict(devices=[0, 0]), "twice"),
    ("precision", dict(precision="float16"), "float64"),
    ("blocks", dict(blocks=0), "positive integer"),
    ("blocks", dict(blocks=51), "more than 50"),
    ("blocks", dict(blocks=2, weights=np.r_[np.ones(25), np.zeros(25)]), "zero weights"),
    ("bins", dict(bins=0), "positive integer"),
    ("bins", dict(bins=[4, 4, 4]), "one per CV"),
    ("bins", dict(bins=2.5), "positive integer"),
    ("bins", dict(bins=[10**6, 10**6]), "GiB"),
    ("bins", dict(bins=_DROP), "give `bins`"),
    ("ranges", dict(ranges=[(0, 1)]), "pairs"),
    ("ranges", dict(ranges=[(1, 0), (0, 1)]), "low < high"),
    ("ranges", dict(ranges=[(0, np.nan), (0, 1)]), "finite"),
    ("grid", dict(grid=np.zeros((4, 3))), "columns"),
    ("grid", dict(grid=np.array([[0.0, np.inf]])), "NaN or infinity"),
    ("grid", dict(grid=np.empty((0, 2))), "empty"),
    ("threads", dict(threads=0), "positive integer"),
    ("names", dict(names=["a"]), "CV names"),
]


@pytest.mark.parametrize("name,changes,fragment", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_bad_input_names_the_argument(name: str, changes: Dict[str, Any], fragment: str) -> None:
    if name == "grid":
        changes = {"bins": _DROP, **changes}
    with pytest.raises(cyfes.InputError) as info:
        call(**changes)
    message = str(info.value)
    assert message.startswith(f"{name}:"), message
    assert fragment in message, message
    assert isinstance(info.value, ValueError)


def test_grid_and_bins_together_is_an_error() -> None:
    with pytest.raises(cyfes.InputError, match="^grid: give either"):
        call(grid=np.zeros((3, 2)))


def test_too_large_explicit_grid_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_inputs, "_memory_bytes", lambda: 1 << 20)  # pretend a 1 MiB machine
    with pytest.raises(cyfes.InputError, match="^grid: a grid of 20,000 points"):
        call(bins=_DROP, grid=np.zeros((20_000, 2)))


def test_one_dimensional_samples_are_one_cv() -> None:
    assert _inputs.samples(np.arange(5.0)).shape == (5, 1)


def test_scalar_sigma_broadcasts() -> None:
    np.testing.assert_array_equal(_inputs.sigma(0.5, 3), [0.5, 0.5, 0.5])


def test_periods_zero_where_not_periodic() -> None:
    np.testing.assert_array_equal(_inputs.periods([None, 3.0, False], 3), [0.0, 3.0, 0.0])


# --- the threaded host passes (cpu_scan.h) against numpy --------------------------------------------------------
def test_scan_rows_ranges_and_first_bad_value() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(scale=50.0, size=(100_003, 3))
    lo, hi, bad = _inputs.backends.cpu_module().scan_rows(x, 2)
    np.testing.assert_array_equal(lo, x.min(axis=0))
    np.testing.assert_array_equal(hi, x.max(axis=0))
    assert bad == -1
    x[70_001, 2], x[90_000, 0], x[80_000, 1] = np.nan, np.inf, -np.inf
    assert _inputs.backends.cpu_module().scan_rows(x, 2)[2] == 70_001 * 3 + 2  # the first in memory order, whichever thread saw it
    with pytest.raises(cyfes.InputError, match=r"^samples: contains NaN or infinity \(first at index \(70001, 2\)\)"):
        _inputs.scanned_samples(x)


def test_log_weights_match_numpy_with_zero_and_tiny_weights() -> None:
    rng = np.random.default_rng(4)
    n, kT = 50_001, 2.5
    bias = rng.normal(scale=100.0, size=n)
    weights = rng.random(n) * np.exp(rng.uniform(-700, 0, size=n))
    weights[::7] = 0.0
    logw = _inputs.log_weights(bias, weights, n, kT)
    with np.errstate(divide="ignore"):
        expected = bias / kT + np.log(weights)
    np.testing.assert_allclose(logw[weights > 0], expected[weights > 0], rtol=1e-15, atol=1e-12)
    assert np.isneginf(logw[weights == 0]).all()
    np.testing.assert_allclose(_inputs.log_weights(bias, None, n, kT), bias / kT, rtol=1e-15)
    assert (_inputs.log_weights(None, None, n, kT) == 0).all()


@pytest.mark.parametrize("bias,weights,message", [
    (np.r_[np.ones(9), np.nan], None, r"^bias: contains NaN or infinity \(first at index 9\)"),
    (None, np.r_[1.0, np.inf, np.nan, np.ones(7)], r"^weights: contains NaN or infinity \(first at index 1\)"),
    (np.r_[np.nan, np.ones(9)], np.r_[np.inf, np.ones(9)], r"^bias: contains NaN"),
    (None, np.r_[np.ones(5), -0.5, np.ones(4)], r"^weights: must be >= 0, found "),
    (None, np.zeros(10), r"^weights: all weights are zero"),
])
def test_log_weights_refuses_bad_values(bias: Any, weights: Any, message: str) -> None:
    with pytest.raises(cyfes.InputError, match=message):
        _inputs.log_weights(bias, weights, 10, 2.5)


def test_block_stats_match_numpy_for_adversarial_weights() -> None:
    """Per block: top, kept, log sum w and log sum w^2 against numpy, with a +150 kT sample, weights of zero
    (-inf) and every other weight e^-800 below the top (underflowing in exp); through the host's passes, the
    log-weights from a bias (kT = 1) and zero weights."""
    rng = np.random.default_rng(5)
    logw = rng.normal(scale=3.0, size=30_000)
    logw[5] = 150.0
    logw[10_000:20_000] = -800.0 + rng.normal(size=10_000)
    logw[10_500] = 0.0
    logw[rng.choice(30_000, 500, replace=False)] = -np.inf
    blocks = [(0, 10_000), (10_000, 20_000), (20_000, 30_000)]
    found = _inputs.host_passes(np.zeros((len(logw), 1)), np.where(np.isfinite(logw), logw, 0.0),
                                np.isfinite(logw).astype(np.float64), 1.0, _inputs.block_edges(blocks))
    np.testing.assert_array_equal(found.logw, logw)
    stats = _inputs.stats_of(blocks, *found.block_arrays)
    for lo, hi in blocks:
        lw = logw[lo:hi][np.isfinite(logw[lo:hi])]
        top = lw.max()
        st = stats[lo, hi]
        assert st.top == top and st.kept == len(lw)
        assert abs(st.log_z - (top + np.log(np.exp(lw - top).sum()))) < 1e-12 * max(1.0, abs(top))
        assert abs(st.log_z2 - (2 * top + np.log(np.exp(2 * (lw - top)).sum()))) < 1e-12 * max(1.0, abs(top))

