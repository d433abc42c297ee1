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

cdef extern from "cpu_truncated.h" nogil:
    void cyfes_scaled_rows_f64(const double *x, int64_t n, int dim, const double *factor, const double *period,
                               int transpose, double *out)
    void cyfes_scaled_rows_f32(const float *x, int64_t n, int dim, const double *factor, const double *period,
                               int transpose, float *out)

ctypedef fused real:
    float
    double


def max_threads():
    """OpenMP threads a parallel region would use."""
    return openmp.omp_get_max_threads()


def _prepared(const real[:, ::1] x, const double[::1] factor, const double[::1] period, bint transpose):
    """x pre-scaled by scale / sqrt(2) in its own dtype, periodic coordinates wrapped into [0, P') (the kernel's
    nearest image is then min(|dx|, P - |dx|)), transposed (one contiguous row per CV) when asked: one pass."""
    cdef int64_t n = x.shape[0]
    cdef int dim = x.shape[1]
    shape = (int(dim), int(n)) if transpose else (int(n), int(dim))
    out = np.empty(shape, dtype=np.float64 if real is double else np.float32)
    cdef real[:, ::1] o = out
    with nogil:
        if real is double:
            cyfes_scaled_rows_f64(&x[0, 0], n, dim, &factor[0], &period[0], transpose, &o[0, 0])
        else:
            cyfes_scaled_rows_f32(&x[0, 0], n, dim, &factor[0], &period[0], transpose, &o[0, 0])
    return out


def log_density(const real[:, ::1] samples, const real[::1] logw, const real[:, ::1] grid,
                const real[::1] scale, const real[::1] period, double[::1] out, int threads=0):
    """out[m] = log sum_j exp(logw[j] - 1/2 sum_d (wrap(grid[m,d] - samples[j,d]) * scale[d])^2).

    Inputs are validated by cyfes.fes; this function trusts shapes and finiteness."""
    cdef int64_t n = samples.shape[0], m = grid.shape[0], groups, k, lo, count
    cdef int dim = samples.shape[1]
    if n == 0 or m == 0:
        return
    factor = np.asarray(scale, dtype=np.float64) / np.sqrt(2.0)
    scaled_period = np.asarray(period, dtype=np.float64) * factor
    cdef const real[:, ::1] s_t = _prepared(samples, factor, scaled_period, True)
    cdef const real[:, ::1] g_s = _prepared(grid, factor, scaled_period, False)
    cdef const real[::1] per = scaled_period.astype(np.float64 if real is double else np.float32)
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


# --- truncated sum (cpu_truncated.h) ----------------------------------------------------------------------
from libc.stdlib cimport malloc, free
from libc.stdint cimport int16_t
from cython.parallel cimport parallel

cdef extern from "cpu_truncated.h" nogil:
    ctypedef struct cyfes_cell_grid:
        int64_t shape[8]
        double origin[8]
        double width[8]
        double period[8]
        int dim
    ctypedef struct cyfes_tile_result:
        double bound
        int64_t pairs
    int64_t cyfes_cells_plan(const double *x, const double *logw, int64_t lo, int64_t hi, int dim,
                             const double *factor, const double *period, double h, int64_t max_cells,
                             cyfes_cell_grid *cg)
    int64_t cyfes_cells_fill_f64(const double *x, const double *logw, int64_t lo, int64_t hi, int dim,
                                 const double *factor, double top, const cyfes_cell_grid *cg, int64_t kept,
                                 int64_t *scratch, int64_t *cell, double *samples_t, double *lw, int64_t *start,
                                 double *lmass, double *box)
    int64_t cyfes_cells_fill_f32(const double *x, const double *logw, int64_t lo, int64_t hi, int dim,
                                 const double *factor, double top, const cyfes_cell_grid *cg, int64_t kept,
                                 int64_t *scratch, int64_t *cell, float *samples_t, float *lw, int64_t *start,
                                 double *lmass, double *box)
    cyfes_tile_result cyfes_tile_f64(const double *samples_t, const double *lw, int64_t n, int dim,
                                     const double *per, int64_t ncells, const int64_t *start, const double *lmass,
                                     const double *box, const cyfes_cell_grid *cg, const int64_t *dense,
                                     double lall, double reach, double gap, const double *g0, int64_t count,
                                     const int64_t *tshape, double tol, double *ub, int16_t *bucket, int64_t *wl,
                                     double *out)
    cyfes_tile_result cyfes_tile_f32(const float *samples_t, const float *lw, int64_t n, int dim,
                                     const float *per, int64_t ncells, const int64_t *start, const double *lmass,
                                     const double *box, const cyfes_cell_grid *cg, const int64_t *dense,
                                     double lall, double reach, double gap, const float *g0, int64_t count,
                                     const int64_t *tshape, double tol, double *ub, int16_t *bucket, int64_t *wl,
                                     double *out)


def build_cells(const double[:, ::1] x, const double[::1] logw, int64_t lo, int64_t hi, const double[::1] factor,
                const double[::1] period, double top, double side, int64_t max_cells, dtype):
    """Samples [lo, hi) of finite log-weight sorted into cells of about `side` (pre-scaled units; see
    cpu_truncated.h): (samples_t, lw, start, lmass, box, geometry, dense), with lw = logw - top in `dtype`,
    geometry = (shape, origin, width, period) of the cell grid and dense[cell id] = compact index or -1."""
    cdef cyfes_cell_grid cg
    cdef int dim = x.shape[1]
    cdef int64_t kept, cells = 1, ncells
    cdef int d
    kept = cyfes_cells_plan(&x[0, 0], &logw[0], lo, hi, dim, &factor[0], &period[0], side, max_cells, &cg)
    for d in range(dim):
        cells *= cg.shape[d]
    cdef int64_t most = min(cells, kept)
    scratch = np.empty(cells + 1, dtype=np.int64)
    cell = np.empty(max(hi - lo, 1), dtype=np.int64)
    samples_t = np.empty((dim, max(kept, 1)), dtype=dtype)
    lw = np.empty(max(kept, 1), dtype=dtype)
    start = np.empty(most + 1, dtype=np.int64)
    lmass = np.empty(max(most, 1))
    box = np.empty((max(most, 1), 2 * dim))
    cdef int64_t[::1] sc = scratch, ce = cell, st = start
    cdef double[::1] lm = lmass
    cdef double[:, ::1] bx = box
    cdef double[:, ::1] s64
    cdef double[::1] w64
    cdef float[:, ::1] s32
    cdef float[::1] w32
    if samples_t.dtype == np.float64:
        s64, w64 = samples_t, lw
        with nogil:
            ncells = cyfes_cells_fill_f64(&x[0, 0], &logw[0], lo, hi, dim, &factor[0], top, &cg, kept, &sc[0],
                                          &ce[0], &s64[0, 0], &w64[0], &st[0], &lm[0], &bx[0, 0])
    else:
        s32, w32 = samples_t, lw
        with nogil:
            ncells = cyfes_cells_fill_f32(&x[0, 0], &logw[0], lo, hi, dim, &factor[0], top, &cg, kept, &sc[0],
                                          &ce[0], &s32[0, 0], &w32[0], &st[0], &lm[0], &bx[0, 0])
    if ncells < 0:
        raise MemoryError(f"no memory for the per-thread counts of {cells} cells")
    shape = np.array([cg.shape[d] for d in range(dim)], dtype=np.int64)
    origin = np.array([cg.origin[d] for d in range(dim)])
    width = np.array([cg.width[d] for d in range(dim)])
    return (samples_t, lw, start[:ncells + 1], lmass[:ncells], box[:ncells], (shape, origin, width, np.asarray(period)),
            scratch[:cells])


def truncated_tiles(const real[:, ::1] samples_t, const real[::1] lw, const int64_t[::1] start,
                    const double[::1] lmass, const double[:, ::1] box, geometry, const int64_t[::1] dense,
                    double lall, double reach, double gap, const real[:, ::1] grid,
                    const int64_t[::1] tile_start, const int64_t[:, ::1] tile_shape, const real[::1] period,
                    double tol, double[::1] out, double[::1] tile_bound, int64_t[::1] tile_pairs, int threads=0):
    """Per tile t (grid rows tile_start[t]:tile_start[t+1], pre-scaled and wrapped as the samples): out = log of
    the truncated sum, tile_bound = the bound on the change of F it achieved (kT), tile_pairs = pairs summed.
    tile_shape: (ntiles, dim) extents of tiles that are boxes of a regular grid (points in matrix order), or an
    empty array for explicit points. geometry, dense: from build_cells; lall: log of the summed weight of all
    samples (relative to top); reach: first distance (pre-scaled) within which cells are examined; gap: the first
    cut assumes each point's density is at least exp(largest cell bound - gap) (checked afterwards)."""
    cdef int64_t ntiles = tile_start.shape[0] - 1, ncells = lmass.shape[0], n = lw.shape[0], t, lo, cnt
    cdef int dim = grid.shape[1], d
    cdef double *ub
    cdef int16_t *bucket
    cdef int64_t *wl
    cdef cyfes_cell_grid cg
    cdef cyfes_tile_result r
    cdef bint regular = tile_shape.shape[0] == ntiles and tile_shape.shape[1] == grid.shape[1]
    if ntiles <= 0:
        return
    cg.dim = dim
    for d in range(dim):
        cg.shape[d] = geometry[0][d]
        cg.origin[d] = geometry[1][d]
        cg.width[d] = geometry[2][d]
        cg.period[d] = geometry[3][d]
    if threads <= 0:
        threads = openmp.omp_get_max_threads()
    with nogil, parallel(num_threads=threads):
        ub = <double *> malloc(ncells * sizeof(double) + 1)
        bucket = <int16_t *> malloc(ncells * sizeof(int16_t) + 1)
        wl = <int64_t *> malloc(ncells * sizeof(int64_t) + 1)
        for t in prange(ntiles, schedule="dynamic"):
            lo = tile_start[t]
            cnt = tile_start[t + 1] - lo
            if real is double:
                r = cyfes_tile_f64(&samples_t[0, 0], &lw[0], n, dim, &period[0], ncells, &start[0], &lmass[0],
                                   &box[0, 0], &cg, &dense[0], lall, reach, gap, &grid[lo, 0], cnt,
                                   &tile_shape[t, 0] if regular else NULL, tol, ub, bucket, wl, &out[lo])
            else:
                r = cyfes_tile_f32(&samples_t[0, 0], &lw[0], n, dim, &period[0], ncells, &start[0], &lmass[0],
                                   &box[0, 0], &cg, &dense[0], lall, reach, gap, &grid[lo, 0], cnt,
                                   &tile_shape[t, 0] if regular else NULL, tol, ub, bucket, wl, &out[lo])
            tile_bound[t] = r.bound
            tile_pairs[t] = r.pairs
        free(ub)
        free(bucket)
        free(wl)
