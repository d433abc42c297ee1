# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""CPU kernel for sums of metadynamics hills (hills_kernel.h): OpenMP threads own slabs of the grid."""
import numpy as np

from cython.parallel cimport prange
cimport openmp
from libc.stdint cimport int64_t

cdef extern from "hills_kernel.h" nogil:
    enum: CYFES_HILLS_MAXDIM
    ctypedef struct cyfes_hills_grid:
        int dim
        int64_t nbin[CYFES_HILLS_MAXDIM]
        int64_t stride[CYFES_HILLS_MAXDIM]
        double gmin[CYFES_HILLS_MAXDIM]
        double dx[CYFES_HILLS_MAXDIM]
        int periodic[CYFES_HILLS_MAXDIM]
        double period[CYFES_HILLS_MAXDIM]
        double inv_period[CYFES_HILLS_MAXDIM]
        int64_t size
    int cyfes_hills_diag(const cyfes_hills_grid *g, const double *centers, const double *widths,
                         const double *hA, const double *hB, const int64_t *nneigh, int64_t nh, double cut,
                         int use_cut, int64_t maxbox, int64_t slab_lo, int64_t slab_hi, double *values,
                         double *der)
    int cyfes_hills_multi(const cyfes_hills_grid *g, const double *centers, const double *metric,
                          const double *hA, const double *hB, const int64_t *nneigh, int64_t nh, double cut,
                          int use_cut, int64_t maxbox, int64_t slab_lo, int64_t slab_hi, double *values,
                          double *der)


def max_threads():
    return openmp.omp_get_max_threads()


def add_hills(double[::1] values, double[:, ::1] der, nbin, gmin, dx, period, const double[:, ::1] centers,
              const double[::1] shape, const double[::1] h_a, const double[::1] h_b, const int64_t[:, ::1] nneigh,
              double cut, bint use_cut, bint multivariate, int threads=0):
    """Add hills to `values` (flat grid, first CV fastest) and `der` (one row per CV; None: values only), in
    hill order.

    nbin, gmin, dx, period: per CV (period 0: not periodic). shape: the widths (N*D, diagonal hills) or the
    metrics (N*D*D, multivariate hills), flattened. h_a, h_b: per hill height times A and B. nneigh: (N, D) box
    half-widths in grid steps, -1 for the whole axis. Returns nothing; raises MemoryError when a scratch buffer cannot be allocated."""
    cdef cyfes_hills_grid g
    cdef int dim = centers.shape[1], d, t, nthreads, status = 0, rc
    cdef int64_t nh = centers.shape[0], maxbox, slow_n, lo, hi, acc = 1
    cdef double *der_p = NULL
    if nh == 0:
        return
    if der is not None:
        der_p = &der[0, 0]
    g.dim = dim
    for d in range(dim):
        g.nbin[d] = int(nbin[d])
        g.stride[d] = acc
        acc *= g.nbin[d]
        g.gmin[d] = float(gmin[d])
        g.dx[d] = float(dx[d])
        g.periodic[d] = 1 if float(period[d]) > 0 else 0
        g.period[d] = float(period[d])
        g.inv_period[d] = 1.0 / float(period[d]) if float(period[d]) > 0 else 0.0
    g.size = acc
    maxbox = max(2 * int(np.asarray(nneigh).max()) + 1, int(max(nbin)))
    slow_n = g.nbin[dim - 1]
    nthreads = threads if threads > 0 else openmp.omp_get_max_threads()
    nthreads = max(1, min(nthreads, slow_n))
    for t in prange(nthreads, nogil=True, schedule="static", num_threads=nthreads):
        lo = slow_n * t // nthreads
        hi = slow_n * (t + 1) // nthreads
        if multivariate:
            rc = cyfes_hills_multi(&g, &centers[0, 0], &shape[0], &h_a[0], &h_b[0], &nneigh[0, 0], nh, cut,
                                   use_cut, maxbox, lo, hi, &values[0], der_p)
        else:
            rc = cyfes_hills_diag(&g, &centers[0, 0], &shape[0], &h_a[0], &h_b[0], &nneigh[0, 0], nh, cut,
                                  use_cut, maxbox, lo, hi, &values[0], der_p)
        status += rc != 0
    if status != 0:
        raise MemoryError("cannot allocate the hills kernel's scratch buffers")


cdef extern from "hills_points.h" nogil:
    enum: CYFES_POINTS_MAX_DIM
    ctypedef struct cyfes_points_periods:
        double period[CYFES_POINTS_MAX_DIM]
        double inv_period[CYFES_POINTS_MAX_DIM]
    double cyfes_hill_at(const double *x, const double *c, const double *shape, int dim, int multivariate,
                         const cyfes_points_periods *per, double cut, double a, double b)

POINTS_MAX_DIM = CYFES_POINTS_MAX_DIM


def hills_at_points(const double[:, ::1] points, const int64_t[::1] counts, const double[:, ::1] centers,
                    const double[:, ::1] shape, const double[::1] heights, period, double cut, double a, double b,
                    bint multivariate, double[::1] out, int threads=0):
    """out[j] = sum over hills i < counts[j] of heights[i] * kernel_i(points[j]) (hills_points.h), in hill
    order; shape: inverse widths (N, D) or metrics (N, D*D). Points are shared between OpenMP threads in
    small dynamic chunks, since their counts (and so their work) differ."""
    cdef cyfes_points_periods per
    cdef int dim = points.shape[1], ns = shape.shape[1], d, nthreads
    cdef int64_t n = points.shape[0], j, i
    cdef double v
    if dim > CYFES_POINTS_MAX_DIM:
        raise ValueError(f"hills_at_points: at most {CYFES_POINTS_MAX_DIM} CVs")
    for d in range(dim):
        per.period[d] = float(period[d])
        per.inv_period[d] = 1.0 / per.period[d] if per.period[d] > 0 else 0.0
    if n == 0 or centers.shape[0] == 0:
        out[:] = 0.0
        return
    nthreads = threads if threads > 0 else openmp.omp_get_max_threads()
    for j in prange(n, nogil=True, schedule="dynamic", chunksize=64, num_threads=nthreads):
        v = 0.0
        for i in range(counts[j]):
            v = v + heights[i] * cyfes_hill_at(&points[j, 0], &centers[i, 0], &shape[i, 0], dim, multivariate,
                                               &per, cut, a, b)
        out[j] = v
