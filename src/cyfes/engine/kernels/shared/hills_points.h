/* The bias of metadynamics hills at arbitrary points (the samples of a run, for reweighting), one hill at a
 * time: the CPU kernel (_hills.pyx, OpenMP over points) and the GPU kernel (cuda/hills.cu, a thread per point)
 * call this one function, so both add the same numbers in the same order.
 *
 * Hill i at point x: s = 1/2 sum_d (dx_d w_id)^2 with w the inverse widths (diagonal hills), or s = 1/2 dx^T M_i dx
 * (multivariate hills, M the D x D metric), dx the minimum image of x - c_i on a periodic CV (dx - P rint(dx/P),
 * PLUMED's Value::difference); the kernel is a exp(-s) + b where s < cut, else 0 (a = A, b = B: PLUMED's
 * stretched Gaussian; a = 1, b = 0: the plain one). */
#ifndef CYFES_HILLS_POINTS_H
#define CYFES_HILLS_POINTS_H

#include <math.h>

#include "hills_exp.h" /* CYFES_HILLS_EXP_FN: static inline, __host__ __device__ under nvcc */

#define CYFES_POINTS_MAX_DIM 8

typedef struct {
  double period[CYFES_POINTS_MAX_DIM];     /* 0: not periodic */
  double inv_period[CYFES_POINTS_MAX_DIM];
} cyfes_points_periods;

CYFES_HILLS_EXP_FN double cyfes_hill_at(const double *x, const double *c, const double *shape, int dim,
                                        int multivariate, const cyfes_points_periods *per, double cut, double a,
                                        double b) {
  double d[CYFES_POINTS_MAX_DIM];
  for (int k = 0; k < dim; ++k) {
    double v = x[k] - c[k];
    if (per->period[k] > 0) v -= per->period[k] * rint(v * per->inv_period[k]);
    d[k] = v;
  }
  double s = 0.0;
  if (multivariate) {
    for (int k = 0; k < dim; ++k) {
      double row = 0.0;
      for (int l = 0; l < dim; ++l) row += shape[k * dim + l] * d[l];
      s += d[k] * row;
    }
  } else {
    for (int k = 0; k < dim; ++k) {
      const double u = d[k] * shape[k];
      s += u * u;
    }
  }
  s *= 0.5;
  return s < cut ? a * exp(-s) + b : 0.0;
}

#endif
