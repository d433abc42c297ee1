/* method="binned" on the CPU: linear binning of the samples' weights exp(logw - top) onto a fine grid, each sample
 * spread over the 2^dim nodes of its cell with multilinear weights (cyfes.engine.binned places cells the same way, and
 * so does cuda/binned.cu). One pass in C, one thread: numpy's bincount per corner took about 1 s per 1e6 samples.
 * Grid: shape[d] nodes per CV in matrix order, node i of CV d at origin[d] + i spacing[d]; a periodic CV's nodes
 * span one period and wrap. */
#ifndef CYFES_CPU_BINNED_H
#define CYFES_CPU_BINNED_H
#include <math.h>
#include <stdint.h>

#include "cpu_kernel.h"

static void cyfes_bin_linear(const double *x, const double *logw, int64_t n, int dim, double top,
                             const int64_t *shape, const double *origin, const double *spacing, const int *periodic,
                             double *bins) {
  int64_t stride[CYFES_MAX_DIM], lower[CYFES_MAX_DIM];
  double frac[CYFES_MAX_DIM];
  int64_t acc = 1;
  for (int d = dim - 1; d >= 0; --d) {
    stride[d] = acc;
    acc *= shape[d];
  }
  for (int64_t j = 0; j < n; ++j) {
    const double w = exp(logw[j] - top);
    if (!(w > 0)) continue;
    for (int d = 0; d < dim; ++d) {
      const double size = (double)shape[d];
      double t = (x[j * dim + d] - origin[d]) / spacing[d];
      if (periodic[d]) t -= size * floor(t / size);
      const double f = floor(t);
      int64_t i = (int64_t)f;
      frac[d] = t - f;
      if (periodic[d])
        i = i >= shape[d] ? i - shape[d] : i;
      else
        i = i < 0 ? 0 : (i > shape[d] - 2 ? shape[d] - 2 : i);
      lower[d] = i;
    }
    for (int corner = 0; corner < (1 << dim); ++corner) {
      int64_t flat = 0;
      double c = w;
      for (int d = 0; d < dim; ++d) {
        const int up = (corner >> (dim - 1 - d)) & 1;
        int64_t i = lower[d] + up;
        if (periodic[d] && i >= shape[d]) i -= shape[d];
        flat += i * stride[d];
        c *= up ? frac[d] : 1.0 - frac[d];
      }
      bins[flat] += c;
    }
  }
}

#endif
