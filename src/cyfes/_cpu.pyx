# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""CPU backend of cyfes: OpenMP over groups of grid points, a vectorised block kernel (cpu_kernel.h) over samples."""
import numpy as np

from cython.parallel cimport prange
cimport openmp
from libc.stdint cimport int64_t

cdef extern from "cpu_kernel.h" nogil:
    enum: CYFES_POINTS
    void cyfes_points_f64(const double *samples_t, const double *logw, int64_t n, int dim, const double *grid,
                          int64_t count, const double *period, const double *inv_period, double *out)
    void cyfes_points_f32(const float *samples_t, const float *logw, int64_t n, int dim, const float *grid,
                          int64_t count, const float *period, const float *inv_period, double *out)

ctypedef fused real:
    float
    double


def max_threads():
    """OpenMP threads a parallel region would use."""
    return openmp.omp_get_max_threads()


def _prepared(samples, grid, scale, period):
    """Transposed samples and the grid, both pre-scaled by scale / sqrt(2) in the samples' dtype, and the
    pre-scaled periods with their inverses: the kernel's exponent is then logw - sum (g' - s')^2."""
    dtype = samples.dtype
    factor = np.asarray(scale, dtype=np.float64) / np.sqrt(2.0)
    samples_t = np.ascontiguousarray((np.asarray(samples, dtype=np.float64) * factor).T, dtype=dtype)
    grid_s = np.ascontiguousarray(np.asarray(grid, dtype=np.float64) * factor, dtype=dtype)
    per = np.asarray(period, dtype=np.float64) * factor
    inv = np.divide(1.0, per, out=np.zeros_like(per), where=per > 0)
    return samples_t, grid_s, per.astype(dtype), inv.astype(dtype)


def log_density(const real[:, ::1] samples, const real[::1] logw, const real[:, ::1] grid,
                const real[::1] scale, const real[::1] period, double[::1] out, int threads=0):
    """out[m] = log sum_j exp(logw[j] - 1/2 sum_d (wrap(grid[m,d] - samples[j,d]) * scale[d])^2).

    Inputs are validated by cyfes.fes; this function trusts shapes and finiteness."""
    cdef int64_t n = samples.shape[0], m = grid.shape[0], groups, k, lo, count
    cdef int dim = samples.shape[1]
    if n == 0 or m == 0:
        return
    st, gs, pr, ip = _prepared(np.asarray(samples), np.asarray(grid), np.asarray(scale), np.asarray(period))
    cdef const real[:, ::1] s_t = st
    cdef const real[:, ::1] g_s = gs
    cdef const real[::1] per = pr
    cdef const real[::1] inv = ip
    if threads <= 0:
        threads = openmp.omp_get_max_threads()
    groups = (m + CYFES_POINTS - 1) // CYFES_POINTS
    # Groups of points share each L1-sized block of samples; dynamic scheduling evens out the tail.
    for k in prange(groups, nogil=True, schedule="dynamic", num_threads=threads):
        lo = k * CYFES_POINTS
        count = min(m - lo, <int64_t>CYFES_POINTS)
        if real is double:
            cyfes_points_f64(&s_t[0, 0], &logw[0], n, dim, &g_s[lo, 0], count, &per[0], &inv[0], &out[lo])
        else:
            cyfes_points_f32(&s_t[0, 0], &logw[0], n, dim, &g_s[lo, 0], count, &per[0], &inv[0], &out[lo])
