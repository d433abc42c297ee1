# cython: language_level=3, boundscheck=False, wraparound=False
"""GPU backend of cyfes: a thin wrapper over libcufes (cuda/cufes.h). Every CUDA error becomes a BackendError
carrying CUDA's own message."""
from libc.stdint cimport int64_t

from .._errors import BackendError

cdef extern from "cufes.h" nogil:
    int cufes_log_density_f32(const float *samples, const float *logw, int64_t n, int dim, const float *grid,
                              int64_t m, const float *scale, const float *period, double *out, int device,
                              char *err, size_t errlen)
    int cufes_log_density_f64(const double *samples, const double *logw, int64_t n, int dim,
                              const double *grid, int64_t m, const double *scale, const double *period,
                              double *out, int device, char *err, size_t errlen)
    int cufes_device_count(int *count, char *err, size_t errlen)
    int cufes_device_info(int device, char *name, size_t namelen, size_t *total_mem, int *cc_major,
                          int *cc_minor, char *err, size_t errlen)
    int cufes_versions(int *runtime, int *driver)
    int cufes_warm_up(int device, char *err, size_t errlen)
    int cufes_host_register(void *ptr, size_t bytes, int device, int *registered, char *err, size_t errlen)
    int cufes_host_unregister(void *ptr, char *err, size_t errlen)
    ctypedef struct cufes_samples:
        int dim
        int64_t n
        const double *x
        const double *logw
        const double *factor
        const double *period
        double top, side
        int64_t per_cell, cap
        int on_device
    ctypedef struct cufes_staged:
        int device, dim
        int64_t n
        double *x
        double *logw
    ctypedef struct cufes_scan:
        int64_t bad_sample, bad_bias, bad_weight, negative, positive
        double lo[8]
        double hi[8]
    int cufes_stage(const double *x, int64_t n, int dim, const double *bias, const double *weights, double inv_kt,
                    int64_t nblocks, const int64_t *edges, int device, cufes_staged *staged, cufes_scan *scan,
                    double *top, int64_t *kept, double *lz, double *lz2, char *err, size_t errlen)
    void cufes_unstage(cufes_staged *staged)
    ctypedef struct cufes_cells_info:
        int64_t kept, ncells
        double lall
    ctypedef struct cufes_truncation:
        double reach, gap, tolerance
    int cufes_truncated_f32(const cufes_samples *samples, const float *grid, const int64_t *tile_start,
                            int64_t ntiles, const cufes_truncation *opt, double *out, double *tile_bound,
                            int64_t *tile_pairs, int *tile_status, cufes_cells_info *info, int device, char *err,
                            size_t errlen)
    int cufes_truncated_f64(const cufes_samples *samples, const double *grid, const int64_t *tile_start,
                            int64_t ntiles, const cufes_truncation *opt, double *out, double *tile_bound,
                            int64_t *tile_pairs, int *tile_status, cufes_cells_info *info, int device, char *err,
                            size_t errlen)
    int cufes_cells_f32(const cufes_samples *samples, float *samples_t, float *lw, int64_t *start, double *lmass,
                        double *box, int64_t *dense, int64_t *shape, double *origin, double *width,
                        cufes_cells_info *info, int device, char *err, size_t errlen)
    int cufes_cells_f64(const cufes_samples *samples, double *samples_t, double *lw, int64_t *start,
                        double *lmass, double *box, int64_t *dense, int64_t *shape, double *origin, double *width,
                        cufes_cells_info *info, int device, char *err, size_t errlen)
    int cufes_binned_density(const double *samples, const double *logw, int64_t n, int dim, double top,
                             const int64_t *shape, const double *origin, const double *spacing,
                             const int *periodic, const double *sigma, double reach, double *out, int device,
                             char *err, size_t errlen)

ctypedef fused real:
    float
    double

cdef enum:
    ERRLEN = 512


cdef _raise(char *err):
    raise BackendError(err.decode("utf-8", "replace"))


def device_count():
    """Usable CUDA devices (0 without a GPU or driver)."""
    cdef char err[ERRLEN]
    cdef int count = 0
    if cufes_device_count(&count, err, ERRLEN) != 0:
        _raise(err)
    return count


def device_info(int device):
    cdef char err[ERRLEN]
    cdef char name[256]
    cdef size_t mem = 0
    cdef int major = 0, minor = 0
    if cufes_device_info(device, name, 256, &mem, &major, &minor, err, ERRLEN) != 0:
        _raise(err)
    return {"id": device, "name": name.decode("utf-8", "replace"), "memory": mem,
            "compute_capability": f"{major}.{minor}"}


def warm_up(int device):
    """Make the CUDA context of `device` now (the first CUDA call's cost), without the GIL: a thread does it
    while the caller reads its input. A BackendError when the device cannot be used."""
    cdef char err[ERRLEN]
    cdef int rc
    with nogil:
        rc = cufes_warm_up(device, err, ERRLEN)
    if rc != 0:
        _raise(err)


def versions():
    """(CUDA runtime version, driver version), e.g. (13000, 13000); driver 0 when there is none."""
    cdef int runtime = 0, driver = 0
    cufes_versions(&runtime, &driver)
    return runtime, driver


def runtime_version():
    """The CUDA runtime's version alone (e.g. 13000), without initialising the driver as versions() does."""
    cdef int runtime = 0
    cufes_versions(&runtime, NULL)
    return runtime


class PinnedHost:
    """Host arrays page-locked for the duration of a `with` block (cuda/cufes.h: cufes_host_register), so their
    copies to the GPUs run at the bus's speed; arrays that are small, not contiguous, already locked or that the
    driver cannot lock are left as they are. The driver's work runs without the GIL (other threads go on)."""

    #: Below this many bytes locking costs more than it saves.
    MIN_BYTES = 16 << 20

    def __init__(self, arrays, int device=0):
        self.arrays, self.device, self.locked = list(arrays), device, []

    def __enter__(self):
        cdef char err[ERRLEN]
        cdef int registered = 0, rc, device = self.device
        cdef size_t address, nbytes
        for a in self.arrays:
            if a.nbytes < self.MIN_BYTES or not a.flags.c_contiguous:
                continue
            address, nbytes = a.ctypes.data, a.nbytes
            with nogil:
                rc = cufes_host_register(<void *>address, nbytes, device, &registered, err, ERRLEN)
            if rc != 0:
                self.__exit__(None, None, None)
                _raise(err)
            if registered:
                self.locked.append(address)
        return self

    def __exit__(self, *exc):
        cdef char err[ERRLEN]
        cdef size_t address
        cdef int rc
        failed = None
        while self.locked:
            address = self.locked.pop()
            with nogil:
                rc = cufes_host_unregister(<void *>address, err, ERRLEN)
            if rc != 0 and failed is None:
                failed = err.decode("utf-8", "replace")
        if failed is not None and exc[0] is None:
            raise BackendError(failed)
        return False


def log_density(const real[:, ::1] samples, const real[::1] logw, const real[:, ::1] grid,
                const real[::1] scale, const real[::1] period, double[::1] out, int device=0):
    """Same contract as cyfes.engine._cpu.log_density, on one GPU."""
    cdef char err[ERRLEN]
    cdef int rc
    cdef int64_t n = samples.shape[0], m = grid.shape[0]
    cdef int dim = samples.shape[1]
    if n == 0 or m == 0:
        return
    with nogil:
        if real is float:
            rc = cufes_log_density_f32(&samples[0, 0], &logw[0], n, dim, &grid[0, 0], m, &scale[0], &period[0],
                                       &out[0], device, err, ERRLEN)
        else:
            rc = cufes_log_density_f64(&samples[0, 0], &logw[0], n, dim, &grid[0, 0], m, &scale[0], &period[0],
                                       &out[0], device, err, ERRLEN)
    if rc != 0:
        _raise(err)


cdef class Staged:
    """A call's samples and log-weights held on one GPU (cufes_stage: checked and weighed there), for its truncated
    sums; free() gives the memory back (so does garbage collection)."""
    cdef cufes_staged s

    def __cinit__(self):
        self.s.x = NULL
        self.s.logw = NULL
        self.s.n = 0

    def __dealloc__(self):
        cufes_unstage(&self.s)

    def free(self):
        cufes_unstage(&self.s)

    @property
    def device(self):
        return self.s.device


def stage(const double[:, ::1] x, bias, weights, double inv_kt, const int64_t[::1] edges, int device=0):
    """The host passes of cyfes.engine._cpu (scan_rows, log_weights, block_stats) on one GPU, which keeps the samples and
    log-weights: (staged, scan, stats) with scan = (bad_sample, bad_bias, bad_weight, negative, positive, lo, hi)
    as those functions report them, and stats = (top, kept, log_z, log_z2) per block [edges[b], edges[b + 1])."""
    import numpy as np
    cdef char err[ERRLEN]
    cdef int rc, d
    cdef int64_t n = x.shape[0], nb = edges.shape[0] - 1
    cdef int dim = x.shape[1]
    cdef const double[::1] b, w
    cdef const double *bp = NULL
    cdef const double *wp = NULL
    cdef cufes_scan scan
    staged = Staged()
    cdef Staged st = staged
    if bias is not None:
        b = bias
        bp = &b[0] if n else NULL
    if weights is not None:
        w = weights
        wp = &w[0] if n else NULL
    if nb < 1 or dim < 1 or dim > 8 or (bias is not None and b.shape[0] != n) \
            or (weights is not None and w.shape[0] != n):
        raise ValueError("stage: bias, weights and blocks must match the samples (1 to 8 CVs)")
    top, kept, lz, lz2 = np.empty(nb), np.empty(nb, dtype=np.int64), np.empty(nb), np.empty(nb)
    cdef double[::1] t = top, a = lz, a2 = lz2
    cdef int64_t[::1] k = kept
    with nogil:
        rc = cufes_stage(&x[0, 0] if n else NULL, n, dim, bp, wp, inv_kt, nb, &edges[0], device, &st.s, &scan,
                         &t[0], &k[0], &a[0], &a2[0], err, ERRLEN)
    if rc != 0:
        st.free()
        _raise(err)
    lo = np.array([scan.lo[d] for d in range(dim)])
    hi = np.array([scan.hi[d] for d in range(dim)])
    found = (int(scan.bad_sample), int(scan.bad_bias), int(scan.bad_weight), int(scan.negative),
             int(scan.positive), lo, hi)
    return staged, found, (top, kept, lz, lz2)


cdef cufes_samples _samples(const double[:, ::1] x, const double[::1] logw, int64_t lo, int64_t hi,
                           const double[::1] factor, const double[::1] period, double top, double side,
                           int64_t per_cell, int64_t cap, Staged staged, int device) except *:
    """The block [lo, hi) of x and logw, or of their staged copies on `device` (logw may then be None)."""
    cdef cufes_samples s
    cdef int dim = x.shape[1]
    if not (0 <= lo <= hi <= x.shape[0]) or factor.shape[0] != dim or period.shape[0] != dim \
            or (staged is None and (logw is None or logw.shape[0] != x.shape[0])) \
            or (staged is not None and (staged.s.n != x.shape[0] or staged.s.dim != dim
                                        or staged.s.device != device or staged.s.x == NULL)):
        raise ValueError("truncated sum: samples, log-weights (or their staged copies), factors and periods must "
                         "match")
    s.dim, s.n = dim, hi - lo
    if staged is not None:
        s.x, s.logw, s.on_device = staged.s.x + lo * dim, staged.s.logw + lo, 1
    else:
        s.x = &x[lo, 0] if hi > lo else &x[0, 0]
        s.logw = &logw[lo] if hi > lo else &logw[0]
        s.on_device = 0
    s.factor, s.period = &factor[0], &period[0]
    s.top, s.side, s.per_cell, s.cap = top, side, per_cell, cap
    return s


def truncated_tiles(const double[:, ::1] x, const double[::1] logw, int64_t lo, int64_t hi,
                    const double[::1] factor, const double[::1] period, double top, double side, int64_t per_cell,
                    int64_t cap, double reach, double gap, const real[:, ::1] grid, const int64_t[::1] tile_start,
                    double tol, double[::1] out, double[::1] tile_bound, int64_t[::1] tile_pairs,
                    int[::1] tile_status, int device=0, Staged staged=None):
    """The truncated sum of cyfes.engine._cpu.truncated_tiles on one GPU, which sorts samples [lo, hi) into cells itself
    (arguments as cyfes.engine._cpu.build_cells), for the tiles of tile_start (row offsets into grid and out, which hold
    every tile); tile_status[t] != 0 marks a tile the caller must sum on the CPU (cuda/cufes.h says why).
    staged: the samples and log-weights already on this GPU (stage()); logw may then be None.
    Returns (samples kept, non-empty cells, log of the cells' summed weight relative to top)."""
    cdef char err[ERRLEN]
    cdef int rc
    cdef int64_t ntiles = tile_start.shape[0] - 1
    cdef cufes_samples s = _samples(x, logw, lo, hi, factor, period, top, side, per_cell, cap, staged, device)
    cdef cufes_truncation opt
    cdef cufes_cells_info info
    if grid.shape[1] != s.dim:
        raise ValueError("truncated sum: the grid and the samples must have the same CVs")
    opt.reach, opt.gap, opt.tolerance = reach, gap, tol
    with nogil:
        if real is float:
            rc = cufes_truncated_f32(&s, &grid[0, 0], &tile_start[0], ntiles, &opt, &out[tile_start[0]],
                                     &tile_bound[0] if ntiles > 0 else NULL, &tile_pairs[0] if ntiles > 0 else NULL,
                                     &tile_status[0] if ntiles > 0 else NULL, &info, device, err, ERRLEN)
        else:
            rc = cufes_truncated_f64(&s, &grid[0, 0], &tile_start[0], ntiles, &opt, &out[tile_start[0]],
                                     &tile_bound[0] if ntiles > 0 else NULL, &tile_pairs[0] if ntiles > 0 else NULL,
                                     &tile_status[0] if ntiles > 0 else NULL, &info, device, err, ERRLEN)
    if rc != 0:
        _raise(err)
    return info.kept, info.ncells, info.lall


def build_cells(const double[:, ::1] x, const double[::1] logw, int64_t lo, int64_t hi, const double[::1] factor,
                const double[::1] period, double top, double side, int64_t per_cell, int64_t cap, dtype,
                int device=0, Staged staged=None):
    """cyfes.engine._cpu.build_cells on one GPU, copied back: the same tuple, the same cells (of the staged copies of x
    and logw when given)."""
    import numpy as np
    cdef char err[ERRLEN]
    cdef int rc
    cdef cufes_samples s = _samples(x, logw, lo, hi, factor, period, top, side, per_cell, cap, staged, device)
    cdef cufes_cells_info info
    cdef int dim = s.dim
    cdef int64_t slots = max(cap, 64), n = max(s.n, 1)
    samples_t, lw = np.empty((dim, n), dtype=dtype), np.empty(n, dtype=dtype)
    start, lmass, box = np.empty(slots + 1, dtype=np.int64), np.empty(slots), np.empty((slots, 2 * dim))
    dense, shape = np.empty(slots, dtype=np.int64), np.empty(dim, dtype=np.int64)
    origin, width = np.empty(dim), np.empty(dim)
    cdef int64_t[::1] st = start, de = dense, sh = shape
    cdef double[::1] lm = lmass, og = origin, wd = width
    cdef double[:, ::1] bx = box
    cdef double[:, ::1] s64
    cdef double[::1] w64
    cdef float[:, ::1] s32
    cdef float[::1] w32
    if samples_t.dtype == np.float64:
        s64, w64 = samples_t, lw
        with nogil:
            rc = cufes_cells_f64(&s, &s64[0, 0], &w64[0], &st[0], &lm[0], &bx[0, 0], &de[0], &sh[0], &og[0],
                                 &wd[0], &info, device, err, ERRLEN)
    else:
        s32, w32 = samples_t, lw
        with nogil:
            rc = cufes_cells_f32(&s, &s32[0, 0], &w32[0], &st[0], &lm[0], &bx[0, 0], &de[0], &sh[0], &og[0],
                                 &wd[0], &info, device, err, ERRLEN)
    if rc != 0:
        _raise(err)
    kept, ncells, cells = info.kept, info.ncells, int(np.prod(shape))
    return (np.ascontiguousarray(samples_t[:, :max(kept, 1)]), lw[:max(kept, 1)], start[:ncells + 1],
            lmass[:ncells], box[:ncells], (shape, origin, width, np.asarray(period)), dense[:cells])


def binned_density(const double[:, ::1] samples, const double[::1] logw, double top, const int64_t[::1] shape,
                   const double[::1] origin, const double[::1] spacing, const int[::1] periodic,
                   const double[::1] sigma, double reach, double[::1] out, int device=0):
    """method="binned" on one GPU: the samples' weights exp(logw - top) binned linearly onto the fine grid (shape,
    origin, spacing per CV; periodic CVs wrap) and convolved with the unnormalised Gaussian within `reach` sigmas,
    into out (every node, matrix order)."""
    cdef char err[ERRLEN]
    cdef int rc
    cdef int64_t n = samples.shape[0]
    cdef int dim = samples.shape[1]
    if shape.shape[0] != dim or origin.shape[0] != dim or spacing.shape[0] != dim or periodic.shape[0] != dim \
            or sigma.shape[0] != dim or logw.shape[0] != n:
        raise ValueError("binned_density: the fine grid, sigma and log-weights must match the samples")
    with nogil:
        rc = cufes_binned_density(&samples[0, 0] if n else NULL, &logw[0] if n else NULL, n, dim, top, &shape[0],
                                  &origin[0], &spacing[0], &periodic[0], &sigma[0], reach, &out[0], device, err,
                                  ERRLEN)
    if rc != 0:
        _raise(err)


# ----------------------------------------------------------------------------------------------- hills (hills.h)
cdef extern from "hills.h" nogil:
    enum: CUFES_HILLS_MAX_DIM
    int cufes_hills_sum(int dim, const int64_t *nbin, const double *gmin, const double *dx, const double *period,
                        const double *centers, const double *shape, int multivariate, const double *hA,
                        const double *hB, const int64_t *nneigh, int64_t nh, double cut, int use_cut,
                        double *values, double *der, int device, char *err, size_t errlen)

    int cufes_hills_at_points(const double *points, const int64_t *counts, int64_t n, int dim,
                              const double *centers, const double *shape, int multivariate, const double *heights,
                              int64_t nh, const double *period, double cut, double a, double b, double *out,
                              int device, char *err, size_t errlen)

HILLS_MAX_DIM = CUFES_HILLS_MAX_DIM


def add_hills(double[::1] values, double[:, ::1] der, const int64_t[::1] nbin, const double[::1] gmin,
              const double[::1] dx, const double[::1] period, const double[:, ::1] centers, const double[::1] shape,
              const double[::1] h_a, const double[::1] h_b, const int64_t[:, ::1] nneigh, double cut, bint use_cut,
              bint multivariate, int device=0):
    """Same contract as cyfes.engine._hills.add_hills (der may be None), on one GPU."""
    cdef char err[ERRLEN]
    cdef int rc
    cdef int dim = centers.shape[1]
    cdef int64_t nh = centers.shape[0]
    cdef double *der_p = NULL
    if nh == 0:
        return
    if der is not None:
        der_p = &der[0, 0]
    with nogil:
        rc = cufes_hills_sum(dim, &nbin[0], &gmin[0], &dx[0], &period[0], &centers[0, 0], &shape[0], multivariate,
                             &h_a[0], &h_b[0], &nneigh[0, 0], nh, cut, use_cut, &values[0], der_p, device, err,
                             ERRLEN)
    if rc != 0:
        _raise(err)


def hills_at_points(const double[:, ::1] points, const int64_t[::1] counts, const double[:, ::1] centers,
                    const double[:, ::1] shape, const double[::1] heights, const double[::1] period, double cut,
                    double a, double b, bint multivariate, double[::1] out, int device=0):
    """Same contract as cyfes.engine._hills.hills_at_points (counts ascending), on one GPU."""
    cdef char err[ERRLEN]
    cdef int rc
    cdef int dim = points.shape[1]
    cdef int64_t n = points.shape[0], nh = centers.shape[0]
    if n == 0:
        return
    if nh == 0:
        out[:] = 0.0
        return
    with nogil:
        rc = cufes_hills_at_points(&points[0, 0], &counts[0], n, dim, &centers[0, 0], &shape[0, 0], multivariate,
                                   &heights[0], nh, &period[0], cut, a, b, &out[0], device, err, ERRLEN)
    if rc != 0:
        _raise(err)
