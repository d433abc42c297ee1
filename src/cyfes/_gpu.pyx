# cython: language_level=3, boundscheck=False, wraparound=False
"""GPU backend of cyfes: a thin wrapper over libcufes (cuda/cufes.h). Every CUDA error becomes a BackendError
carrying CUDA's own message."""
from libc.stdint cimport int64_t

from ._errors import BackendError

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
    ctypedef struct cufes_cells:
        int dim
        int64_t n, ncells
        const int64_t *shape
        const double *origin
        const double *width
        const double *period
        const int64_t *start
        const double *lmass
        const double *box
        const int64_t *dense
    ctypedef struct cufes_truncation:
        double lall, reach, gap, tolerance
    int cufes_truncated_f32(const cufes_cells *cells, const float *samples_t, const float *lw, const float *grid,
                            const int64_t *tile_start, int64_t ntiles, const cufes_truncation *opt, double *out,
                            double *tile_bound, int64_t *tile_pairs, int *tile_status, int device, char *err,
                            size_t errlen)
    int cufes_truncated_f64(const cufes_cells *cells, const double *samples_t, const double *lw,
                            const double *grid, const int64_t *tile_start, int64_t ntiles,
                            const cufes_truncation *opt, double *out, double *tile_bound, int64_t *tile_pairs,
                            int *tile_status, int device, char *err, size_t errlen)
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


def versions():
    """(CUDA runtime version, driver version), e.g. (13000, 13000); driver 0 when there is none."""
    cdef int runtime = 0, driver = 0
    cufes_versions(&runtime, &driver)
    return runtime, driver


def log_density(const real[:, ::1] samples, const real[::1] logw, const real[:, ::1] grid,
                const real[::1] scale, const real[::1] period, double[::1] out, int device=0):
    """Same contract as cyfes._cpu.log_density, on one GPU."""
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


def truncated_tiles(const real[:, ::1] samples_t, const real[::1] lw, const int64_t[::1] start,
                    const double[::1] lmass, const double[:, ::1] box, geometry, const int64_t[::1] dense,
                    double lall, double reach, double gap, const real[:, ::1] grid, const int64_t[::1] tile_start,
                    double tol, double[::1] out, double[::1] tile_bound, int64_t[::1] tile_pairs,
                    int[::1] tile_status, int device=0):
    """The truncated sum of cyfes._cpu.truncated_tiles on one GPU, for the tiles of tile_start (row offsets into
    grid and out, which hold every tile); tile_status[t] != 0 marks a tile the caller must sum on the CPU (cuda/cufes.h says why)."""
    cdef char err[ERRLEN]
    cdef int rc
    cdef int64_t ntiles = tile_start.shape[0] - 1
    shape, origin, width, period = geometry
    cdef const int64_t[::1] sh = shape
    cdef const double[::1] og = origin, wd = width, pd = period
    cdef cufes_cells cells
    cdef cufes_truncation opt
    if ntiles <= 0:
        return
    cells.dim = samples_t.shape[0]
    cells.n = samples_t.shape[1]
    cells.ncells = lmass.shape[0]
    cells.shape, cells.origin, cells.width, cells.period = &sh[0], &og[0], &wd[0], &pd[0]
    cells.start, cells.lmass, cells.box, cells.dense = &start[0], &lmass[0], &box[0, 0], &dense[0]
    opt.lall, opt.reach, opt.gap, opt.tolerance = lall, reach, gap, tol
    with nogil:
        if real is float:
            rc = cufes_truncated_f32(&cells, &samples_t[0, 0], &lw[0], &grid[0, 0], &tile_start[0], ntiles, &opt,
                                     &out[tile_start[0]], &tile_bound[0], &tile_pairs[0], &tile_status[0], device, err,
                                     ERRLEN)
        else:
            rc = cufes_truncated_f64(&cells, &samples_t[0, 0], &lw[0], &grid[0, 0], &tile_start[0], ntiles, &opt,
                                     &out[tile_start[0]], &tile_bound[0], &tile_pairs[0], &tile_status[0], device, err,
                                     ERRLEN)
    if rc != 0:
        _raise(err)


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

HILLS_MAX_DIM = CUFES_HILLS_MAX_DIM


def add_hills(double[::1] values, double[:, ::1] der, const int64_t[::1] nbin, const double[::1] gmin,
              const double[::1] dx, const double[::1] period, const double[:, ::1] centers, const double[::1] shape,
              const double[::1] h_a, const double[::1] h_b, const int64_t[:, ::1] nneigh, double cut, bint use_cut,
              bint multivariate, int device=0):
    """Same contract as cyfes._hills.add_hills (der may be None), on one GPU."""
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
