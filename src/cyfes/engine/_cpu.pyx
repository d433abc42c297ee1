# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""CPU backend of cyfes: OpenMP over groups of grid points, a vectorised block kernel (cpu_kernel.h) over samples.

numpy is imported inside the functions that make arrays, not with the module: `cyfes info` loads this module for
its thread count without paying numpy's import."""

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
    enum: CYFES_SEP_T
    enum: CYFES_TILE_MAX
    void cyfes_scaled_rows_f64(const double *x, int64_t n, int dim, const double *factor, const double *period,
                               int transpose, double *out)
    void cyfes_scaled_rows_f32(const float *x, int64_t n, int dim, const double *factor, const double *period,
                               int transpose, float *out)

ctypedef fused real:
    float
    double


#: The separable sums' limits on a tile (cpu_truncated.h): points per CV, and points in all.
SEP_SIDE = CYFES_SEP_T
TILE_MAX = CYFES_TILE_MAX


def max_threads():
    """OpenMP threads a parallel region would use."""
    return openmp.omp_get_max_threads()


def _threads(int threads):
    return threads if threads > 0 else openmp.omp_get_max_threads()


#: Below this many values a host pass runs on one thread: waking a second one cost 4 ms on a busy 2-core machine
#: (scan_rows of 40,000 x 2 values: 0.08 ms on one thread, 4.3 ms on two).
ONE_THREAD_BELOW = 1 << 22


def _pass_threads(int64_t values, int threads):
    return 1 if values < ONE_THREAD_BELOW else _threads(threads)


def _prepared(const real[:, ::1] x, const double[::1] factor, const double[::1] period, bint transpose):
    """x pre-scaled by scale / sqrt(2) in its own dtype, periodic coordinates wrapped into [0, P') (the kernel's
    nearest image is then min(|dx|, P - |dx|)), transposed (one contiguous row per CV) when asked: one pass."""
    import numpy as np
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
    import numpy as np
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
                             const double *factor, const double *period, double h, int64_t per_cell,
                             int64_t cap, cyfes_cell_grid *cg, int threads)
    int64_t cyfes_cells_fill_f64(const double *x, const double *logw, int64_t lo, int64_t hi, int dim,
                                 const double *factor, double top, const cyfes_cell_grid *cg, int64_t kept,
                                 int64_t *scratch, int64_t *cell, double *samples_t, double *lw, int64_t *start,
                                 double *lmass, double *box, int64_t *hist, int threads)
    int64_t cyfes_cells_fill_f32(const double *x, const double *logw, int64_t lo, int64_t hi, int dim,
                                 const double *factor, double top, const cyfes_cell_grid *cg, int64_t kept,
                                 int64_t *scratch, int64_t *cell, float *samples_t, float *lw, int64_t *start,
                                 double *lmass, double *box, int64_t *hist, int threads)
    cyfes_tile_result cyfes_tile_f64(const double *samples_t, const double *lw, int64_t n, int dim,
                                     const double *per, int64_t ncells, const int64_t *start, const double *lmass,
                                     const double *box, const cyfes_cell_grid *cg, const int64_t *dense,
                                     double lall, double reach, double gap, const double *g0, int64_t count,
                                     const int64_t *tshape, double tol, double *ub, int16_t *bucket, int64_t *wl,
                                     double *work, double *out)
    cyfes_tile_result cyfes_tile_f32(const float *samples_t, const float *lw, int64_t n, int dim,
                                     const float *per, int64_t ncells, const int64_t *start, const double *lmass,
                                     const double *box, const cyfes_cell_grid *cg, const int64_t *dense,
                                     double lall, double reach, double gap, const float *g0, int64_t count,
                                     const int64_t *tshape, double tol, double *ub, int16_t *bucket, int64_t *wl,
                                     double *work, double *out)


def build_cells(const double[:, ::1] x, const double[::1] logw, int64_t lo, int64_t hi, const double[::1] factor,
                const double[::1] period, double top, double side, int64_t per_cell, int64_t cap, dtype,
                int threads=0):
    """Samples [lo, hi) of finite log-weight sorted into cells of about `side` (pre-scaled units; see
    cpu_truncated.h), at most one cell per `per_cell` kept samples and `cap` in all (cell_grid.h):
    (samples_t, lw, start, lmass, box, geometry, dense), with lw = logw - top in `dtype`, geometry = (shape,
    origin, width, period) of the cell grid and dense[cell id] = compact index or -1. threads: OpenMP threads
    (0: all)."""
    import numpy as np
    cdef cyfes_cell_grid cg
    cdef int dim = x.shape[1]
    cdef int64_t kept, cells = 1, ncells
    cdef int d, nt = _threads(threads)
    with nogil:
        kept = cyfes_cells_plan(&x[0, 0], &logw[0], lo, hi, dim, &factor[0], &period[0], side, per_cell, cap, &cg,
                                nt)
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
    hist = np.empty(nt * cells, dtype=np.int64)
    cdef int64_t[::1] sc = scratch, ce = cell, st = start, hi_ = hist
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
                                          &ce[0], &s64[0, 0], &w64[0], &st[0], &lm[0], &bx[0, 0], &hi_[0], nt)
    else:
        s32, w32 = samples_t, lw
        with nogil:
            ncells = cyfes_cells_fill_f32(&x[0, 0], &logw[0], lo, hi, dim, &factor[0], top, &cg, kept, &sc[0],
                                          &ce[0], &s32[0, 0], &w32[0], &st[0], &lm[0], &bx[0, 0], &hi_[0], nt)
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
    cdef double *work
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
        work = <double *> malloc((2 * dim + 3) * ncells * sizeof(double) + 1)
        for t in prange(ntiles, schedule="dynamic"):
            lo = tile_start[t]
            cnt = tile_start[t + 1] - lo
            if real is double:
                r = cyfes_tile_f64(&samples_t[0, 0], &lw[0], n, dim, &period[0], ncells, &start[0], &lmass[0],
                                   &box[0, 0], &cg, &dense[0], lall, reach, gap, &grid[lo, 0], cnt,
                                   &tile_shape[t, 0] if regular else NULL, tol, ub, bucket, wl, work, &out[lo])
            else:
                r = cyfes_tile_f32(&samples_t[0, 0], &lw[0], n, dim, &period[0], ncells, &start[0], &lmass[0],
                                   &box[0, 0], &cg, &dense[0], lall, reach, gap, &grid[lo, 0], cnt,
                                   &tile_shape[t, 0] if regular else NULL, tol, ub, bucket, wl, work, &out[lo])
            tile_bound[t] = r.bound
            tile_pairs[t] = r.pairs
        free(ub)
        free(bucket)
        free(wl)
        free(work)


# --- method="binned": linear binning (cpu_binned.h) --------------------------------------------------------------
cdef extern from "cpu_binned.h" nogil:
    void cyfes_bin_linear(const double *x, const double *logw, int64_t n, int dim, double top, const int64_t *shape,
                          const double *origin, const double *spacing, const int *periodic, double *bins)


def bin_linear(const double[:, ::1] x, const double[::1] logw, double top, const int64_t[::1] shape,
               const double[::1] origin, const double[::1] spacing, const int[::1] periodic, double[::1] bins):
    """Adds the samples' weights exp(logw - top) to `bins` (the fine grid's nodes, matrix order) with multilinear
    weights over each sample's cell; periodic CVs wrap."""
    cdef int64_t n = x.shape[0]
    cdef int dim = x.shape[1]
    if logw.shape[0] != n or shape.shape[0] != dim or origin.shape[0] != dim or spacing.shape[0] != dim \
            or periodic.shape[0] != dim or dim > 8:
        raise ValueError("bin_linear: the fine grid and log-weights must match the samples")
    cdef int64_t total = 1
    for d in range(dim):
        total *= shape[d]
    if bins.shape[0] != total:
        raise ValueError(f"bin_linear: expected {total} nodes, got {bins.shape[0]}")
    if n == 0:
        return
    with nogil:
        cyfes_bin_linear(&x[0, 0], &logw[0], n, dim, top, &shape[0], &origin[0], &spacing[0], &periodic[0], &bins[0])


# --- host passes over the inputs (cpu_scan.h) ------------------------------------------------------------
cdef extern from "cpu_scan.h" nogil:
    int64_t cyfes_scan_rows(const double *x, int64_t n, int dim, double *lo, double *hi, int threads)
    int64_t cyfes_log_weights(const double *bias, const double *weights, int64_t n, double inv_kt, double *out,
                              int64_t *bad, int threads)
    void cyfes_block_stats(const double *logw, int64_t nblocks, const int64_t *edges, double *top, int64_t *kept,
                           double *lz, double *lz2, int threads)


def scan_rows(const double[:, ::1] x, int threads=0):
    """(lo, hi, bad): per column the lowest and highest value of x, and the flat index of its first non-finite
    value (-1: none; lo and hi are then meaningless). One threaded pass."""
    import numpy as np
    cdef int64_t n = x.shape[0], bad
    cdef int dim = x.shape[1], nt = _pass_threads(x.shape[0] * x.shape[1], threads)
    lo = np.empty(dim)
    hi = np.empty(dim)
    cdef double[::1] l = lo, h = hi
    if n == 0 or dim == 0:
        return lo, hi, -1
    with nogil:
        bad = cyfes_scan_rows(&x[0, 0], n, dim, &l[0], &h[0], nt)
    return lo, hi, int(bad)


def log_weights(bias, weights, double inv_kt, int64_t n, int threads=0):
    """(logw, bad, positive): logw = bias * inv_kt + log(weights) (either may be None; -inf for weight 0), bad =
    first index of (a non-finite bias, a non-finite weight, a negative weight), -1 for none; positive = weights > 0."""
    import numpy as np
    cdef const double[::1] b, w
    cdef const double *bp = NULL
    cdef const double *wp = NULL
    cdef int64_t positive
    cdef int64_t flags[3]
    cdef int nt = _pass_threads(n, threads)
    out = np.empty(n)
    cdef double[::1] o = out
    if bias is not None:
        b = bias
        bp = &b[0] if n else NULL
    if weights is not None:
        w = weights
        wp = &w[0] if n else NULL
    if n == 0:
        return out, (-1, -1, -1), 0
    with nogil:
        positive = cyfes_log_weights(bp, wp, n, inv_kt, &o[0], flags, nt)
    return out, (int(flags[0]), int(flags[1]), int(flags[2])), int(positive)


def block_stats(const double[::1] logw, const int64_t[::1] edges, int threads=0):
    """Per block [edges[b], edges[b+1]) of log-weights: (top, kept, log_z, log_z2) = the largest finite value,
    the number of finite values, log sum exp(logw) and log sum exp(2 logw) (-1.797e308 for a block of none)."""
    import numpy as np
    cdef int64_t nb = edges.shape[0] - 1
    cdef int nt = _pass_threads(logw.shape[0], threads)
    top = np.empty(nb)
    kept = np.empty(nb, dtype=np.int64)
    lz = np.empty(nb)
    lz2 = np.empty(nb)
    cdef double[::1] t = top, a = lz, a2 = lz2
    cdef int64_t[::1] k = kept
    if nb <= 0 or logw.shape[0] == 0:
        return top, kept, lz, lz2
    with nogil:
        cyfes_block_stats(&logw[0], nb, &edges[0], &t[0], &k[0], &a[0], &a2[0], nt)
    return top, kept, lz, lz2


# --- regular grids in tiles (tile_order.h) ------------------------------------------------------------------
cdef extern from "tile_order.h" nogil:
    void cyfes_grid_in_tile_order_f64(const double *axes, const int64_t *shape, const int64_t *side, int dim,
                                      const int64_t *tile_start, int64_t ntiles, double *out, int threads)
    void cyfes_grid_in_tile_order_f32(const double *axes, const int64_t *shape, const int64_t *side, int dim,
                                      const int64_t *tile_start, int64_t ntiles, float *out, int threads)
    void cyfes_from_tile_order(const double *values, const int64_t *shape, const int64_t *side, int dim,
                               const int64_t *tile_start, int64_t ntiles, double *out, int threads)


def _grid_threads(int64_t points, int threads):
    """Threads for the tile-order loops: every point costs an index step and a scattered write (~10 ns), so
    threads pay from far fewer values than for the streaming passes (one thread at 1e6 points: 13-14 ms of a
    0.24 s GPU call on a 16-core host)."""
    return 1 if points < (1 << 16) else _threads(threads)


def _tile_layout(const int64_t[::1] shape, const int64_t[::1] side, const int64_t[::1] tile_start):
    cdef int dim = shape.shape[0]
    cdef int64_t tiles = 1
    if dim < 1 or dim > 8 or side.shape[0] != dim:
        raise ValueError("regular tiles: 1..8 CVs, one side per CV")
    for d in range(dim):
        if shape[d] < 1 or side[d] < 1:
            raise ValueError("regular tiles: every axis and side must have at least one point")
        tiles *= (shape[d] + side[d] - 1) // side[d]
    if tile_start.shape[0] != tiles + 1:
        raise ValueError(f"regular tiles: expected {tiles + 1} tile offsets, got {tile_start.shape[0]}")
    return dim, tiles


def grid_in_tile_order(const double[::1] axes, const int64_t[::1] shape, const int64_t[::1] side,
                       const int64_t[::1] tile_start, dtype, int threads=0):
    """The points of a regular grid (its axes one after another in `axes`) as (M, dim) rows in the order of the
    tiles (tile_order.h), in `dtype`."""
    import numpy as np
    dim, ntiles = _tile_layout(shape, side, tile_start)
    if axes.shape[0] != int(np.sum(shape)):
        raise ValueError("grid_in_tile_order: axes must hold every CV's axis")
    out = np.empty((tile_start[ntiles], dim), dtype=dtype)
    cdef double[:, ::1] o64
    cdef float[:, ::1] o32
    cdef int nt = _grid_threads(out.shape[0], threads)
    cdef int cdim = dim
    cdef int64_t cnt = ntiles
    if out.dtype == np.float64:
        o64 = out
        with nogil:
            cyfes_grid_in_tile_order_f64(&axes[0], &shape[0], &side[0], cdim, &tile_start[0], cnt, &o64[0, 0], nt)
    else:
        o32 = out
        with nogil:
            cyfes_grid_in_tile_order_f32(&axes[0], &shape[0], &side[0], cdim, &tile_start[0], cnt, &o32[0, 0], nt)
    return out


def from_tile_order(const double[::1] values, const int64_t[::1] shape, const int64_t[::1] side,
                    const int64_t[::1] tile_start, int threads=0):
    """Per-point values in the order of the tiles, back in the grid's matrix order."""
    import numpy as np
    dim, ntiles = _tile_layout(shape, side, tile_start)
    if values.shape[0] != tile_start[ntiles]:
        raise ValueError("from_tile_order: one value per grid point")
    out = np.empty(values.shape[0])
    cdef double[::1] o = out
    cdef int nt = _grid_threads(values.shape[0], threads)
    cdef int cdim = dim
    cdef int64_t cnt = ntiles
    if values.shape[0]:
        with nogil:
            cyfes_from_tile_order(&values[0], &shape[0], &side[0], cdim, &tile_start[0], cnt, &o[0], nt)
    return out


# --- passes over a surface's values (point_pass.h) ----------------------------------------------------------
cdef extern from "point_pass.h" nogil:
    int64_t cyfes_affine_range(double *v, int64_t n, double a, double b, int apply, double *lo, double *hi,
                               int threads)


def affine_range(double[::1] values, double a=0.0, double b=1.0, bint apply=True, int threads=0):
    """values = a + b * values in place (unless apply is False), in one threaded pass that also returns
    (lo, hi, other): the lowest and highest finite value after it (1.797e308 / -1.797e308 when none) and the
    number of non-finite ones."""
    import numpy as np
    cdef double lo = 0.0, hi = 0.0
    cdef int64_t other, n = values.shape[0]
    cdef int nt = _grid_threads(n, threads)
    if n == 0:
        return np.finfo(np.float64).max, -np.finfo(np.float64).max, 0
    with nogil:
        other = cyfes_affine_range(&values[0], n, a, b, apply, &lo, &hi, nt)
    return lo, hi, int(other)
