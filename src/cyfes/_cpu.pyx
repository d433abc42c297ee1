# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""CPU backend of cyfes: OpenMP over grid points, a vectorised block kernel (cpu_kernel.h) over samples."""
from cython.parallel cimport prange
cimport openmp
from libc.stdint cimport int64_t

cdef extern from "cpu_kernel.h" nogil:
    double cyfes_point_f64(const double *samples, const double *logw, int64_t n, int dim, const double *g,
                           const double *scale, const double *period, const double *inv_period)
    double cyfes_point_f32(const float *samples, const float *logw, int64_t n, int dim, const float *g,
                           const float *scale, const float *period, const float *inv_period)

ctypedef fused real:
    float
    double


def max_threads():
    """OpenMP threads a parallel region would use."""
    return openmp.omp_get_max_threads()


def log_density(const real[:, ::1] samples, const real[::1] logw, const real[:, ::1] grid,
                const real[::1] scale, const real[::1] period, double[::1] out, int threads=0):
    """out[m] = log sum_j exp(logw[j] - 1/2 sum_d (wrap(grid[m,d] - samples[j,d]) * scale[d])^2).

    Inputs are validated by cyfes.fes; this function trusts shapes and finiteness."""
    cdef int64_t n = samples.shape[0], m = grid.shape[0], i
    cdef int dim = samples.shape[1], d
    cdef real inv_period[8]
    if n == 0 or m == 0:
        return
    for d in range(dim):
        inv_period[d] = 1 / period[d] if period[d] > 0 else 0
    if threads <= 0:
        threads = openmp.omp_get_max_threads()
    for i in prange(m, nogil=True, schedule="dynamic", chunksize=4, num_threads=threads):
        if real is double:
            out[i] = cyfes_point_f64(&samples[0, 0], &logw[0], n, dim, &grid[i, 0], &scale[0], &period[0],
                                     inv_period)
        else:
            out[i] = cyfes_point_f32(&samples[0, 0], &logw[0], n, dim, &grid[i, 0], &scale[0], &period[0],
                                     inv_period)
