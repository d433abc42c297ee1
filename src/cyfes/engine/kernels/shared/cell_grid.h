/* The cell grid of the truncated sum, shared by the CPU (cpu_truncated.h) and the GPU (cuda/cells.cuh) cell
 * builds so both choose the same cells: per CV the number of cells, their origin and width in pre-scaled units.
 * Periodic CVs are cut into whole cells over one period; the others span the kept samples' range. */
#ifndef CYFES_CELL_GRID_H
#define CYFES_CELL_GRID_H
#include <math.h>
#include <stdint.h>

#define CYFES_GRID_MAX_DIM 8

/* The GPU build (cuda/cells.cuh) calls the functions below in device code too, with products rounded on their
 * own (no fused multiply-add) so a sample lands in the same cell, to the last bit, on both. */
#if defined(__CUDACC__)
#define CYFES_HD __host__ __device__
#else
#define CYFES_HD
#endif
#if defined(__CUDA_ARCH__)
#define CYFES_DMUL(a, b) __dmul_rn((a), (b))
#else
#define CYFES_DMUL(a, b) ((a) * (b))
#endif
#define CYFES_MIN_CELLS 64 /* the cap on cells never goes below this */

typedef struct {
  int64_t shape[CYFES_GRID_MAX_DIM];
  double origin[CYFES_GRID_MAX_DIM], width[CYFES_GRID_MAX_DIM], period[CYFES_GRID_MAX_DIM];
  int dim;
} cyfes_cell_grid;

/* At most one cell per `per_cell` kept samples, at least CYFES_MIN_CELLS, at most `cap`. */
static inline int64_t cyfes_max_cells(int64_t kept, int64_t per_cell, int64_t cap) {
  int64_t m = kept / (per_cell > 0 ? per_cell : 1);
  m = m < cap ? m : cap;
  return m > CYFES_MIN_CELLS ? m : CYFES_MIN_CELLS;
}

/* The grid for `kept` samples whose pre-scaled coordinates span [mn, mx] per CV: cells of side h, grown by 1.25
 * until there are at most max_cells. */
static inline void cyfes_cells_geometry(const double *mn, const double *mx, int64_t kept, int dim,
                                        const double *period, double h, int64_t max_cells, cyfes_cell_grid *cg) {
  cg->dim = dim;
  for (;;) {
    double total = 1;
    for (int d = 0; d < dim; ++d) {
      cg->period[d] = period[d];
      if (period[d] > 0) {
        double k = floor(period[d] / h);
        cg->shape[d] = k < 1 ? 1 : (int64_t)k;
        cg->origin[d] = 0;
        cg->width[d] = period[d] / (double)cg->shape[d];
      } else {
        double span = kept ? mx[d] - mn[d] : 0;
        double k = ceil(span / h);
        cg->shape[d] = k < 1 ? 1 : (int64_t)k;
        cg->origin[d] = kept ? mn[d] : 0;
        cg->width[d] = span > 0 ? span / (double)cg->shape[d] : 1.0;
      }
      total *= (double)cg->shape[d];
    }
    if (total <= (double)max_cells) break;
    h *= 1.25;
  }
}

/* A pre-scaled coordinate, wrapped into [0, period) on a periodic CV. */
static inline CYFES_HD double cyfes_scaled(double x, double factor, double period) {
  double u = CYFES_DMUL(x, factor);
  if (period > 0) {
    u -= CYFES_DMUL(period, floor(u / period));
    if (u >= period) u -= period; /* floor rounding can leave u == period */
  }
  return u;
}

/* The cell (matrix order) of pre-scaled coordinates u; outside the grid: the nearest cell. */
static inline CYFES_HD int64_t cyfes_cell_of(const cyfes_cell_grid *cg, const double *u) {
  int64_t id = 0;
  for (int d = 0; d < cg->dim; ++d) {
    int64_t k = (int64_t)((u[d] - cg->origin[d]) / cg->width[d]);
    k = k < 0 ? 0 : (k >= cg->shape[d] ? cg->shape[d] - 1 : k);
    id = id * cg->shape[d] + k;
  }
  return id;
}
#endif
