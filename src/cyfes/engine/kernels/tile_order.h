/* Regular grids in tiles (src/cyfes/_truncated.py, regular_tiles): the grid (shape[d] points per CV, matrix
 * order) is cut into boxes of side[d] points per CV, the last box on an axis short; boxes follow in matrix order
 * of their corners and the points of a box in matrix order within it, box t from row tile_start[t] on. These
 * loops write a grid's points in that order and bring per-point values back: one pass each, threaded, no index
 * arrays (numpy's transposed copies of the 2 x 2 x 2 boxes of 3-D grids ran at ~10 ns a value). */
#ifndef CYFES_TILE_ORDER_H
#define CYFES_TILE_ORDER_H
#include <stdint.h>

#define CYFES_TILE_MAX_DIM 8

/* Box t's first grid index and extent per CV; returns its number of points. */
static inline int64_t cyfes_box_of(int64_t t, const int64_t *shape, const int64_t *side, int dim, int64_t *first,
                                   int64_t *extent) {
  int64_t count = 1;
  for (int d = dim - 1; d >= 0; --d) {
    const int64_t per_axis = (shape[d] + side[d] - 1) / side[d];
    first[d] = (t % per_axis) * side[d];
    t /= per_axis;
    extent[d] = shape[d] - first[d] < side[d] ? shape[d] - first[d] : side[d];
    count *= extent[d];
  }
  return count;
}

/* The next index in matrix order within a box of `extent`. */
static inline void cyfes_odometer(int64_t *at, const int64_t *extent, int dim) {
  for (int d = dim - 1; d >= 0; --d) {
    if (++at[d] < extent[d]) return;
    at[d] = 0;
  }
}

/* out[(tile_start[t] + i) * dim + d] = axes[d][grid index of point i of box t along d]; axes: the CVs' axes one
 * after another (axis d from the sum of shape[0 .. d-1] on). */
#define CYFES_DEFINE_TILE_ORDER(T, SUFFIX)                                                                    \
  static void cyfes_grid_in_tile_order_##SUFFIX(const double *axes, const int64_t *shape, const int64_t *side,  \
                                                int dim, const int64_t *tile_start, int64_t ntiles, T *out,     \
                                                int threads) {                                                  \
    int64_t offset[CYFES_TILE_MAX_DIM];                                                                       \
    offset[0] = 0;                                                                                            \
    for (int d = 1; d < dim; ++d) offset[d] = offset[d - 1] + shape[d - 1];                                   \
    _Pragma("omp parallel for schedule(static) num_threads(threads)") for (int64_t t = 0; t < ntiles; ++t) {   \
      int64_t first[CYFES_TILE_MAX_DIM], extent[CYFES_TILE_MAX_DIM];                                          \
      const int64_t count = cyfes_box_of(t, shape, side, dim, first, extent);                                 \
      int64_t at[CYFES_TILE_MAX_DIM] = {0}; /* the point's index within the box, counted up as an odometer */ \
      T *row = out + tile_start[t] * dim;                                                                     \
      for (int64_t i = 0; i < count; ++i) {                                                                   \
        for (int d = 0; d < dim; ++d) row[i * dim + d] = (T)axes[offset[d] + first[d] + at[d]];               \
        cyfes_odometer(at, extent, dim);                                                                      \
      }                                                                                                       \
    }                                                                                                         \
  }
CYFES_DEFINE_TILE_ORDER(double, f64)
CYFES_DEFINE_TILE_ORDER(float, f32)

/* out[matrix index of point i of box t] = values[tile_start[t] + i]. */
static void cyfes_from_tile_order(const double *values, const int64_t *shape, const int64_t *side, int dim,
                                  const int64_t *tile_start, int64_t ntiles, double *out, int threads) {
  int64_t stride[CYFES_TILE_MAX_DIM];
  stride[dim - 1] = 1;
  for (int d = dim - 2; d >= 0; --d) stride[d] = stride[d + 1] * shape[d + 1];
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int64_t t = 0; t < ntiles; ++t) {
    int64_t first[CYFES_TILE_MAX_DIM], extent[CYFES_TILE_MAX_DIM];
    const int64_t count = cyfes_box_of(t, shape, side, dim, first, extent);
    const double *row = values + tile_start[t];
    int64_t at[CYFES_TILE_MAX_DIM] = {0};
    for (int64_t i = 0; i < count; ++i) {
      int64_t flat = 0;
      for (int d = 0; d < dim; ++d) flat += (first[d] + at[d]) * stride[d];
      out[flat] = row[i];
      cyfes_odometer(at, extent, dim);
    }
  }
}
#endif
