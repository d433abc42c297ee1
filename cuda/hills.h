/* libcufes: sums of metadynamics hills on a regular grid (PLUMED's sum_hills), on a CUDA GPU.
 *
 * The computation of the CPU kernel (src/cyfes/hills_kernel.h), point for point: hill j adds to every grid
 * point of its box (+-nneigh[j, d] grid steps around the grid index of its centre on CV d; -1: the whole axis,
 * each point once; a periodic box wider than its axis visits a point once per offset)
 *     V += hA[j] exp(-r2/2) + hB[j]   where r2/2 < cut (or everywhere when use_cut is 0),
 * r2 = sum_d (dp_d / sigma_jd)^2 (diagonal hills, shape = sigmas (nh, dim)) or dp^T M_j dp (multivariate hills,
 * shape = metrics (nh, dim, dim)), dp the (periodic) difference x - c as PLUMED computes it; with `der`
 * (dim arrays of the grid's size, one after the other; may be NULL) also dV/dx_d. The differences, r2 and
 * the cut test round as the CPU kernel's do (no fused multiply-add there), so both keep the same points.
 *
 * The grid is flat with the first CV fastest; values (and der) are added to, not overwritten. Arrays are
 * C-contiguous host arrays. Hills are sent in chunks, so any number fits in bounded GPU memory; the result
 * does not depend on how they are chunked or scheduled (each grid tile sums its partial sums in a fixed order).
 * dim: 1 to CUFES_HILLS_MAX_DIM. Returns 0, or nonzero with a message in err[errlen].
 *
 * Environment (for tests and tuning): CUFES_HILLS_CHUNK, at most this many hills per transfer.
 */
#ifndef CUFES_HILLS_H
#define CUFES_HILLS_H
#include "cufes.h"

#define CUFES_HILLS_MAX_DIM 4

#ifdef __cplusplus
extern "C" {
#endif

CUFES_API int cufes_hills_sum(int dim, const int64_t *nbin, const double *gmin, const double *dx,
                              const double *period, const double *centers, const double *shape, int multivariate,
                              const double *hA, const double *hB, const int64_t *nneigh, int64_t nh, double cut,
                              int use_cut, double *values, double *der, int device, char *err, size_t errlen);

/* The bias of hills at arbitrary points, for metadynamics reweighting: out[j] = sum over hills i < counts[j] of
 * heights[i] * kernel_i(points[j]) (src/cyfes/engine/kernels/shared/hills_points.h, the CPU kernel's function),
 * in hill order. points (n, dim), counts (n,) ascending in [0, nh]; shape: inverse widths (nh, dim) or metrics
 * (nh, dim, dim); period per CV (0: not periodic); a exp(-s) + b where s < cut. Points are sent in chunks. */
CUFES_API int cufes_hills_at_points(const double *points, const int64_t *counts, int64_t n, int dim,
                                    const double *centers, const double *shape, int multivariate,
                                    const double *heights, int64_t nh, const double *period, double cut, double a,
                                    double b, double *out, int device, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
