# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""CPU backend of cyfes: OpenMP over groups of grid points, a vectorised block kernel (cpu_kernel.h) over samples."""
import numpy as np

from cython.parallel cimport prange
cimport openmp
from libc.stdint cimport int64_t

cdef extern from "cpu_kernel.h" nogil:
    enum: CYFES_POINTS
    void cyfes_points_f64(const double *samples_t, const double *logw, int64_t n, int dim, const double *grid,
                          int64_t count, const double *period, double *out)
    void cyfes_points_f32(const float *samples_t, const float *logw, int64_t n, int dim, const float *grid,
                          int64_t count, const float *period, double *out)

ctypedef fused real:
    float
    double


def max_threads():
    """OpenMP threads a parallel region would use."""
    return openmp.omp_get_max_threads()


def _prepared(samples, grid, scale, period):
    """Transposed samples and the grid, pre-scaled by scale / sqrt(2) in the samples' dtype, periodic
    coordinates wrapped into [-P/2, P/2] (the kernel's nearest image is then min(|dx|, P - |dx|)), and the
    pre-scaled periods. The kernel's exponent is logw - sum_d dist_d^2."""
    dtype = samples.dtype
    factor = np.asarray(scale, dtype=np.float64) / np.sqrt(2.0)
    per = np.asarray(period, dtype=np.float64) * factor
    safe = np.where(per > 0, per, 1.0)

    def scaled(x):
        x = np.asarray(x, dtype=np.float64) * factor
        return np.where(per > 0, x - safe * np.round(x / safe), x)

    samples_t = np.ascontiguousarray(scaled(samples).T, dtype=dtype)
    return samples_t, np.ascontiguousarray(scaled(grid), dtype=dtype), per.astype(dtype)


def log_density(const real[:, ::1] samples, const real[::1] logw, const real[:, ::1] grid,
                const real[::1] scale, const real[::1] period, double[::1] out, int threads=0):
    """out[m] = log sum_j exp(logw[j] - 1/2 sum_d (wrap(grid[m,d] - samples[j,d]) * scale[d])^2).

    Inputs are validated by cyfes.fes; this function trusts shapes and finiteness."""
    cdef int64_t n = samples.shape[0], m = grid.shape[0], groups, k, lo, count
    cdef int dim = samples.shape[1]
    if n == 0 or m == 0:
        return
    st, gs, pr = _prepared(np.asarray(samples), np.asarray(grid), np.asarray(scale), np.asarray(period))
    cdef const real[:, ::1] s_t = st
    cdef const real[:, ::1] g_s = gs
    cdef const real[::1] per = pr
    if threads <= 0:
        threads = openmp.omp_get_max_threads()
    groups = (m + CYFES_POINTS - 1) // CYFES_POINTS
    # Groups of points share each L1-sized block of samples; dynamic scheduling evens out the tail.
    for k in prange(groups, nogil=True, schedule="dynamic", num_threads=threads):
        lo = k * CYFES_POINTS
        count = min(m - lo, <int64_t>CYFES_POINTS)
        if real is double:
            cyfes_points_f64(&s_t[0, 0], &logw[0], n, dim, &g_s[lo, 0], count, &per[0], &out[lo])
        else:
            cyfes_points_f32(&s_t[0, 0], &logw[0], n, dim, &g_s[lo, 0], count, &per[0], &out[lo])
