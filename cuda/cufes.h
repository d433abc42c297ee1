/* libcufes: reweighted Gaussian KDE on CUDA GPUs, behind a plain C API.
 *
 * The one computation, shared with the CPU backend (src/cyfes/cpu_kernel.h):
 *
 *   out[m] = log  sum_j  exp( logw[j] - 1/2 * sum_d ( wrap_d(grid[m,d] - samples[j,d]) * scale[d] )^2 )
 *
 * wrap_d takes the nearest periodic image when period[d] > 0 and is the identity when period[d] == 0.
 * Arrays are C-contiguous host arrays: samples (n, dim), logw (n), grid (m, dim), scale and period (dim),
 * out (m). The sum is a log-sum-exp with a running maximum, so any range of logw is safe. Work is chunked so
 * that any n and m run in bounded GPU memory. No state survives a call; nothing resets the device.
 *
 * Every function returns 0 on success, otherwise a nonzero code with a message (CUDA's own text, and the call
 * that failed) written into err[errlen].
 *
 * Environment (read on every call; for tests and tuning, not needed in normal use):
 *   CUFES_MAX_SAMPLES  at most this many samples per device chunk (default: from free device memory)
 *   CUFES_MAX_GRID     at most this many grid points per device chunk (default: from free device memory)
 *   CUFES_PPT          float32 grid points per thread, 4 (default) or 8
 */
#ifndef CUFES_H
#define CUFES_H
#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32)
#define CUFES_API __declspec(dllexport)
#else
/* Exported explicitly: with hidden visibility the extension would link but not depend on libcufes. */
#define CUFES_API __attribute__((visibility("default")))
#endif

#define CUFES_MAX_DIM 8

#ifdef __cplusplus
extern "C" {
#endif

CUFES_API int cufes_log_density_f32(const float *samples, const float *logw, int64_t n, int dim,
                                    const float *grid, int64_t m, const float *scale, const float *period,
                                    double *out, int device, char *err, size_t errlen);

CUFES_API int cufes_log_density_f64(const double *samples, const double *logw, int64_t n, int dim,
                                    const double *grid, int64_t m, const double *scale, const double *period,
                                    double *out, int device, char *err, size_t errlen);

/* The truncated sum (src/cyfes/cpu_truncated.h has the bound; cuda/truncated.cu the GPU's way of it). The raw
 * samples of one block go to the device, which sorts them into cells (cuda/cells.cuh: the same cells as
 * cyfes._cpu.build_cells): coordinates pre-scaled by 1 / (sigma sqrt 2), periodic ones wrapped into [0, P'). */
typedef struct {
  int dim;
  int64_t n;              /* samples: rows of x */
  const double *x;        /* n x dim, row-major, as given */
  const double *logw;     /* n log-weights; a non-finite one leaves its sample out */
  const double *factor;   /* dim: 1 / (sigma sqrt 2) */
  const double *period;   /* dim: pre-scaled periods (0: not periodic) */
  double top;             /* log-weights are kept relative to this */
  double side;            /* wanted cell side (pre-scaled) */
  int64_t per_cell, cap;  /* at most one cell per per_cell kept samples and cap cells (src/cyfes/cell_grid.h) */
  int on_device;          /* 1: x and logw are device pointers on the call's device (a cufes_staged's) */
} cufes_samples;

/* The passes over a call's per-sample inputs on the device that sums them, as src/cyfes/cpu_scan.h does them on
 * the host: the samples and the bias (and weights) are copied once, checked there and their log-weights computed
 * there; samples and log-weights stay on the device (cufes_staged) for the truncated sums that follow, which
 * then copy nothing per sample. */
typedef struct {
  int device, dim;
  int64_t n;
  double *x;    /* device: n x dim samples, as given */
  double *logw; /* device: n log-weights, bias / kT + log(weight); -inf for weight 0 */
} cufes_staged;

typedef struct {
  int64_t bad_sample;                         /* flat index of the first non-finite coordinate; -1: none */
  int64_t bad_bias, bad_weight, negative;     /* first non-finite bias or weight, first negative weight; -1: none */
  int64_t positive;                           /* weights > 0 (n without weights) */
  double lo[CUFES_MAX_DIM], hi[CUFES_MAX_DIM]; /* per CV the samples' range (when bad_sample < 0) */
} cufes_scan;

/* Stages x (n x dim, row-major), bias and weights (each may be NULL) on `device`: cyfes_scan_rows's and
 * cyfes_log_weights's checks and results into scan, and per block [edges[b], edges[b + 1]) cyfes_block_stats's
 * top, kept, lz and lz2 (meaningless when scan reports a bad value). staged: filled here, freed by cufes_unstage
 * (also after a failure). */
CUFES_API int cufes_stage(const double *x, int64_t n, int dim, const double *bias, const double *weights,
                          double inv_kt, int64_t nblocks, const int64_t *edges, int device, cufes_staged *staged,
                          cufes_scan *scan, double *top, int64_t *kept, double *lz, double *lz2, char *err,
                          size_t errlen);
CUFES_API void cufes_unstage(cufes_staged *staged);

/* What the cell build found: samples kept, non-empty cells, log of their summed weight (relative to top). */
typedef struct {
  int64_t kept, ncells;
  double lall;
} cufes_cells_info;

typedef struct {
  double reach;     /* first distance (pre-scaled) within which cells are examined */
  double gap;       /* the first cut assumes a density of at least exp(largest cell bound - gap); checked after */
  double tolerance; /* the neglected mass may change no F by more than this (kT) */
} cufes_truncation;

/* Per tile t (grid rows tile_start[t] - tile_start[0] .. tile_start[t + 1] - tile_start[0], at most 256 points,
 * pre-scaled and wrapped as the samples): out = log of the truncated sum (relative to the top), tile_bound = the
 * bound it achieved (kT), tile_pairs = the pairs summed. Tiles the kernel cannot settle are summed again one
 * point per tile on the device (1: a point's sum is beyond the precision's exp range below the tile's largest
 * bound; 2: samples outside the examined window could matter); tile_status = 0 when done, else that reason for
 * a point still unsettled, and the host must sum the tile itself. grid points from row tile_start[0] on. */
CUFES_API int cufes_truncated_f32(const cufes_samples *samples, const float *grid, const int64_t *tile_start,
                                  int64_t ntiles, const cufes_truncation *opt, double *out, double *tile_bound,
                                  int64_t *tile_pairs, int *tile_status, cufes_cells_info *info, int device,
                                  char *err, size_t errlen);

CUFES_API int cufes_truncated_f64(const cufes_samples *samples, const double *grid, const int64_t *tile_start,
                                  int64_t ntiles, const cufes_truncation *opt, double *out, double *tile_bound,
                                  int64_t *tile_pairs, int *tile_status, cufes_cells_info *info, int device,
                                  char *err, size_t errlen);

/* The cells alone, copied back in the layout of cyfes._cpu.build_cells: samples_t (dim rows of n; the first
 * info->kept columns used), lw (n), start (slots + 1), lmass (slots), box (slots x 2 dim), dense (slots), per CV
 * shape, origin and width of the cell grid; slots = max(cap, 64) bounds the cells of the grid. */
CUFES_API int cufes_cells_f32(const cufes_samples *samples, float *samples_t, float *lw, int64_t *start,
                              double *lmass, double *box, int64_t *dense, int64_t *shape, double *origin,
                              double *width, cufes_cells_info *info, int device, char *err, size_t errlen);

CUFES_API int cufes_cells_f64(const cufes_samples *samples, double *samples_t, double *lw, int64_t *start,
                              double *lmass, double *box, int64_t *dense, int64_t *shape, double *origin,
                              double *width, cufes_cells_info *info, int device, char *err, size_t errlen);

/* method="binned" (src/cyfes/_binned.py): the samples (n x dim, row-major) with weights exp(logw - top) binned
 * linearly onto a fine grid (shape nodes per CV in matrix order, node i of CV d at origin[d] + i spacing[d]; a
 * periodic CV's grid spans one period and wraps), then convolved with exp(-x^2 / 2 sigma^2) per CV, taps within
 * reach sigmas: out (product of shape) is the binned sum at every node. */
CUFES_API int cufes_binned_density(const double *samples, const double *logw, int64_t n, int dim, double top,
                                   const int64_t *shape, const double *origin, const double *spacing,
                                   const int *periodic, const double *sigma, double reach, double *out, int device,
                                   char *err, size_t errlen);

/* Page-locks host memory [ptr, ptr + bytes) for every device (copies from it then run at the bus's speed, ~50
 * GB/s on an H100 host against ~6-8 GB/s from pageable memory); device: where the call's context lives.
 * *registered = 1 when this call locked it (the caller then unlocks it with cufes_host_unregister), 0 when it was
 * locked already or cannot be (copies are then only slower): neither is an error. */
CUFES_API int cufes_host_register(void *ptr, size_t bytes, int device, int *registered, char *err, size_t errlen);
CUFES_API int cufes_host_unregister(void *ptr, char *err, size_t errlen);

/* Number of usable CUDA devices (0 with no driver or no GPU: that is not an error). */
CUFES_API int cufes_device_count(int *count, char *err, size_t errlen);

/* Name and total memory of one device. */
CUFES_API int cufes_device_info(int device, char *name, size_t namelen, size_t *total_mem, int *cc_major,
                                int *cc_minor, char *err, size_t errlen);

/* Makes the primary context of `device` (cudaSetDevice, cudaFree(0)): a process's first CUDA call spends
 * 0.1-0.3 s there, which `cyfes fes` spends while it reads its input (another thread) instead of before its
 * surface. Later calls use the same context; nothing else changes. */
CUFES_API int cufes_warm_up(int device, char *err, size_t errlen);

/* CUDA runtime version this library was built against (e.g. 13000) and the driver's (0 if none). driver may be
 * NULL: the runtime's version alone initialises nothing, while asking the runtime for the driver's calls cuInit. */
CUFES_API int cufes_versions(int *runtime, int *driver);

#ifdef __cplusplus
}
#endif
#endif
