"""cyfes.fes on a streamed.Stream (chunks read anew each pass): the in-memory surface and block errors, and a
refusal when the chunks differ from the row counts it was built with."""
from __future__ import annotations

import numpy as np
import pytest

import cyfes
from cyfes import InputError
from cyfes.engine import streamed


def _chunks(n: int = 2000, size: int = 300):
    rng = np.random.default_rng(5)
    x, bias = rng.normal(size=(n, 2)), rng.uniform(0, 4, n)
    return x, bias, [(x[a:a + size], bias[a:a + size], None) for a in range(0, n, size)]


def test_a_stream_gives_the_in_memory_surface_and_block_errors():
    x, bias, parts = _chunks()
    reads = []
    stream = streamed.Stream(lambda: reads.append(1) or iter(parts), [len(p[0]) for p in parts], 2)
    opts = dict(bins=(11, 9), ranges=[(-3, 3), (-3, 3)], blocks=3, tolerance=0, device="cpu")
    got, ref = cyfes.fes(stream, 0.4, **opts), cyfes.fes(x, 0.4, bias=bias, **opts)
    np.testing.assert_allclose(got.values, ref.values, rtol=0, atol=1e-10)
    np.testing.assert_allclose(got.error, ref.error, rtol=0, atol=1e-10)
    assert got.n_samples == 2000 and len(reads) == 1  # ranges given: one pass over the chunks


@pytest.mark.parametrize("sizes", [[300] * 6 + [199], [300] * 7 + [200, 5], [300] * 6])
def test_chunks_unlike_the_first_pass_are_refused(sizes):
    _, _, parts = _chunks()
    with pytest.raises(InputError, match="did the input change while it was read"):
        cyfes.fes(streamed.Stream(lambda: iter(parts), sizes, 2), 0.4, bins=5, ranges=[(-3, 3)] * 2, device="cpu")
