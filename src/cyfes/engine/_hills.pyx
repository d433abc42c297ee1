# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""CPU kernel for sums of metadynamics hills (hills_kernel.h): OpenMP threads own slabs of the grid."""
import numpy as np

from cython.parallel cimport prange
cimport openmp
from libc.stdint cimport int64_t
from libc.math cimport log

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


cdef int _fill_grid(cyfes_hills_grid *g, int dim, nbin, gmin, dx, period) except -1:
    cdef int d
    cdef int64_t acc = 1
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
    return 0


cdef int _add_block(const cyfes_hills_grid *g, const double *centers, const double *shape, const double *h_a, const double *h_b, const int64_t *nneigh, int64_t nh, double cut,
                    bint use_cut, bint multivariate, int64_t maxbox, double *values, double *der,
                    int nthreads) nogil:
    """Hills [0, nh) of these arrays added on OpenMP threads that own slabs of the slowest CV; 0 or the
    number of threads whose scratch buffers could not be allocated."""
    cdef int t, status = 0, rc, dim = g.dim
    cdef int64_t lo, hi, slow_n = g.nbin[dim - 1]
    for t in prange(nthreads, schedule="static", num_threads=nthreads):
        lo = slow_n * t // nthreads
        hi = slow_n * (t + 1) // nthreads
        if multivariate:
            rc = cyfes_hills_multi(g, centers, shape, h_a, h_b, nneigh, nh, cut, use_cut, maxbox, lo, hi, values, der)
        else:
            rc = cyfes_hills_diag(g, centers, shape, h_a, h_b, nneigh, nh, cut, use_cut, maxbox, lo, hi, values, der)
        status += rc != 0
    return status


def add_hills(double[::1] values, double[:, ::1] der, nbin, gmin, dx, period, const double[:, ::1] centers,
              const double[::1] shape, const double[::1] h_a, const double[::1] h_b, const int64_t[:, ::1] nneigh,
              double cut, bint use_cut, bint multivariate, int threads=0):
    """Add hills to `values` (flat grid, first CV fastest) and `der` (one row per CV; None: values only), in
    hill order.

    nbin, gmin, dx, period: per CV (period 0: not periodic). shape: the widths (N*D, diagonal hills) or the
    metrics (N*D*D, multivariate hills), flattened. h_a, h_b: per hill height times A and B. nneigh: (N, D) box
    half-widths in grid steps, -1 for the whole axis. Returns nothing; raises MemoryError when a scratch buffer cannot be allocated."""
    cdef cyfes_hills_grid g
    cdef int dim = centers.shape[1], nthreads, status
    cdef int64_t nh = centers.shape[0], maxbox
    cdef double *der_p = NULL
    if nh == 0:
        return
    if der is not None:
        der_p = &der[0, 0]
    _fill_grid(&g, dim, nbin, gmin, dx, period)
    maxbox = max(2 * int(np.asarray(nneigh).max()) + 1, int(max(nbin)))
    nthreads = threads if threads > 0 else openmp.omp_get_max_threads()
    nthreads = max(1, min(nthreads, g.nbin[dim - 1]))
    with nogil:
        status = _add_block(&g, &centers[0, 0], &shape[0], &h_a[0], &h_b[0], &nneigh[0, 0], nh, cut, use_cut,
                            multivariate, maxbox, &values[0], der_p, nthreads)
    if status != 0:
        raise MemoryError("cannot allocate the hills kernel's scratch buffers")


cdef enum:
    PARALLEL_POINTS = 1 << 18  # grid points from which c(t)'s log-sums are threaded
    PARALLEL_HILLS = 256  # hills per block from which c(t)'s grid sums are threaded
cdef enum:
    LSE_CHUNKS = 64  # c(t)'s log-sums: fixed chunks, so the result does not depend on the thread count


cdef void _two_log_sums(const double *v, int64_t n, double a1, double a2, double *out1, double *out2,
                        int nthreads) nogil:
    """log sum exp(a1 v) and log sum exp(a2 v) (a1, a2 >= 0, v finite), over LSE_CHUNKS fixed chunks added in
    order: the same bits on any number of threads."""
    cdef double top = v[0], p1[LSE_CHUNKS], p2[LSE_CHUNKS], s1, s2, t1, t2
    cdef int64_t i, lo, hi
    cdef int c
    for i in range(1, n):
        if v[i] > top:
            top = v[i]
    t1 = a1 * top
    t2 = a2 * top
    for c in prange(LSE_CHUNKS, schedule="static", num_threads=nthreads):
        lo = n * c // LSE_CHUNKS
        hi = n * (c + 1) // LSE_CHUNKS
        s1 = 0.0
        s2 = 0.0
        for i in range(lo, hi):
            s1 = s1 + cyfes_hills_exp(a1 * v[i] - t1)  # x <= 0: the vectorised exp of the hills kernels
            s2 = s2 + cyfes_hills_exp(a2 * v[i] - t2)
        p1[c] = s1
        p2[c] = s2
    s1 = 0.0
    s2 = 0.0
    for c in range(LSE_CHUNKS):
        s1 += p1[c]
        s2 += p2[c]
    out1[0] = log(s1) + t1
    out2[0] = log(s2) + t2


def running_log_sums(double[::1] values, nbin, gmin, dx, period, const double[:, ::1] centers,
                     const double[::1] shape, const double[::1] h_a, const double[::1] h_b,
                     const int64_t[:, ::1] nneigh, double cut, bint use_cut, bint multivariate,
                     const int64_t[::1] counts, double a1, double a2, double[::1] lse1, double[::1] lse2,
                     int threads=0):
    """c(t)'s sums as the hills arrive: for each k of `counts` (ascending), the hills up to k are added to
    `values` as add_hills adds them, then lse1[i], lse2[i] = log sum exp(a1 values), log sum exp(a2 values).
    One call for every count: no Python step per hill."""
    cdef cyfes_hills_grid g
    cdef int dim = centers.shape[1], nthreads, lse_threads, status = 0
    cdef int ns = shape.shape[0] // max(1, centers.shape[0])
    cdef int64_t nh = centers.shape[0], maxbox, done = 0, k, i, nk = counts.shape[0]
    if nh == 0 or nk == 0:
        return
    _fill_grid(&g, dim, nbin, gmin, dx, period)
    maxbox = max(2 * int(np.asarray(nneigh).max()) + 1, int(max(nbin)))
    nthreads = threads if threads > 0 else openmp.omp_get_max_threads()
    nthreads = max(1, min(nthreads, g.nbin[dim - 1]))
    # a parallel region costs microseconds (much more on a busy machine): threads only for blocks and grids
    # large enough to pay for one
    lse_threads = nthreads if g.size >= PARALLEL_POINTS else 1
    with nogil:
        for i in range(nk):
            k = counts[i]
            if k > done:
                status += _add_block(&g, &centers[done, 0], &shape[done * ns], &h_a[done], &h_b[done],
                                     &nneigh[done, 0], k - done, cut, use_cut, multivariate, maxbox, &values[0],
                                     NULL, nthreads if k - done >= PARALLEL_HILLS else 1)
                done = k
            _two_log_sums(&values[0], g.size, a1, a2, &lse1[i], &lse2[i], lse_threads)
    if status != 0:
        raise MemoryError("cannot allocate the hills kernel's scratch buffers")

cdef extern from "hills_points.h" nogil:
    enum: CYFES_POINTS_MAX_DIM
    ctypedef struct cyfes_points_periods:
        double period[CYFES_POINTS_MAX_DIM]
        double inv_period[CYFES_POINTS_MAX_DIM]
    double cyfes_hills_exp(double x)
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
