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

/* Number of usable CUDA devices (0 with no driver or no GPU: that is not an error). */
CUFES_API int cufes_device_count(int *count, char *err, size_t errlen);

/* Name and total memory of one device. */
CUFES_API int cufes_device_info(int device, char *name, size_t namelen, size_t *total_mem, int *cc_major,
                                int *cc_minor, char *err, size_t errlen);

/* CUDA runtime version this library was built against (e.g. 13000) and the driver's (0 if none). */
CUFES_API int cufes_versions(int *runtime, int *driver);

#ifdef __cplusplus
}
#endif
#endif
