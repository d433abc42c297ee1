/* Passes over a surface's per-point values (log densities, then F), one threaded loop each: the affine map
 * v = a + b v in place, or none, and the range of the finite results with the count of the others. A surface
 * pays these once per grid point (1e6 points in 3-D), where numpy's passes run on one thread each. */
#ifndef CYFES_POINT_PASS_H
#define CYFES_POINT_PASS_H
#include <float.h>
#include <stdint.h>

#include "cpu_kernel.h" /* cyfes_finite */

/* lo/hi: the lowest and highest finite value after the map (DBL_MAX / -DBL_MAX when none); returns the number of
 * non-finite values (NaN, +-inf). apply = 0 leaves v as it is. */
static int64_t cyfes_affine_range(double *v, int64_t n, double a, double b, int apply, double *lo, double *hi,
                                  int threads) {
  double low = DBL_MAX, high = -DBL_MAX;
  int64_t other = 0;
#pragma omp parallel for schedule(static) num_threads(threads) reduction(min : low) reduction(max : high) \
    reduction(+ : other)
  for (int64_t i = 0; i < n; ++i) {
    const double x = apply ? a + b * v[i] : v[i];
    if (apply) v[i] = x;
    if (cyfes_finite(x)) {
      low = x < low ? x : low;
      high = x > high ? x : high;
    } else {
      ++other;
    }
  }
  *lo = low;
  *hi = high;
  return other;
}
#endif
