/* The host passes of cyfes over its inputs before any sum, threaded (OpenMP), each input array read once:
 *   cyfes_scan_rows:    finiteness and per-column range of an (n, dim) array (samples, grid points);
 *   cyfes_log_weights:  log w_j = bias_j / kT + log(weight_j) with the checks of both arrays;
 *   cyfes_block_stats:  per block of log-weights its largest finite value, the samples of weight > 0 and
 *                       log sum w, log sum w^2 (for F's normalisation and Kish's effective sample size).
 * Non-finite values are recognised by their exponent bits (cyfes_finite). */
#ifndef CYFES_CPU_SCAN_H
#define CYFES_CPU_SCAN_H
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "cpu_kernel.h"
#define CYFES_STATS_EXP cyfes_libm_exp
#include "log_stats.h"

/* lo/hi: dim entries; returns the flat index of the first non-finite value, or -1 (lo/hi then undefined). */
static int64_t cyfes_scan_rows(const double *x, int64_t n, int dim, double *lo, double *hi, int threads) {
  int64_t bad = INT64_MAX;
  for (int d = 0; d < dim; ++d) {
    lo[d] = DBL_MAX;
    hi[d] = -DBL_MAX;
  }
#pragma omp parallel num_threads(threads)
  {
    double l[CYFES_MAX_DIM], h[CYFES_MAX_DIM];
    int64_t b = INT64_MAX;
    for (int d = 0; d < dim; ++d) {
      l[d] = DBL_MAX;
      h[d] = -DBL_MAX;
    }
#pragma omp for schedule(static) nowait
    for (int64_t j = 0; j < n; ++j)
      for (int d = 0; d < dim; ++d) {
        const double v = x[j * dim + d];
        if (!cyfes_finite(v) && j * dim + d < b) b = j * dim + d;
        l[d] = v < l[d] ? v : l[d];
        h[d] = v > h[d] ? v : h[d];
      }
#pragma omp critical
    {
      bad = b < bad ? b : bad;
      for (int d = 0; d < dim; ++d) {
        lo[d] = l[d] < lo[d] ? l[d] : lo[d];
        hi[d] = h[d] > hi[d] ? h[d] : hi[d];
      }
    }
  }
  return bad == INT64_MAX ? -1 : bad;
}

/* out[j] = bias[j] * inv_kt (0 without bias) + log(weights[j]) (nothing without weights; -inf where the weight is
 * 0). bad[0..2]: first index of a non-finite bias, a non-finite weight, a negative weight (-1: none). Returns the
 * number of positive weights (n without weights). */
static int64_t cyfes_log_weights(const double *bias, const double *weights, int64_t n, double inv_kt, double *out,
                                 int64_t *bad, int threads) {
  int64_t b0 = INT64_MAX, b1 = INT64_MAX, b2 = INT64_MAX, positive = 0;
#pragma omp parallel for schedule(static) num_threads(threads) reduction(min : b0, b1, b2) reduction(+ : positive)
  for (int64_t j = 0; j < n; ++j) {
    double v = 0;
    if (bias) {
      if (!cyfes_finite(bias[j]) && j < b0) b0 = j;
      v = bias[j] * inv_kt;
    }
    if (weights) {
      const double w = weights[j];
      if (!cyfes_finite(w)) {
        if (j < b1) b1 = j;
      } else if (w < 0) {
        if (j < b2) b2 = j;
      } else if (w > 0) {
        ++positive;
        v += cyfes_libm_log(w);
      } else {
        v = cyfes_minus_inf();
      }
    } else {
      ++positive;
    }
    out[j] = v;
  }
  bad[0] = b0 == INT64_MAX ? -1 : b0;
  bad[1] = b1 == INT64_MAX ? -1 : b1;
  bad[2] = b2 == INT64_MAX ? -1 : b2;
  return positive;
}

/* One chunk of log-weights: its finite values counted, and its own top, sum exp(v - top), sum exp(2 (v - top))
 * merged into the running (*m, *s1, *s2) (exponents below -700 count as -700). Cloned per instruction set, so the
 * exps are vectorised: it is called from inside a parallel region, whose outlined body would otherwise be
 * compiled for the baseline only. */
CYFES_CLONES static int64_t cyfes_stats_chunk(const double *restrict v, int64_t n, double *m, double *s1,
                                              double *s2) {
  double top = -DBL_MAX;
  int64_t k = 0;
  for (int64_t j = 0; j < n; ++j)
    if (cyfes_finite(v[j])) {
      ++k;
      top = v[j] > top ? v[j] : top;
    }
  if (!k) return 0;
  double a1 = 0, a2 = 0;
#pragma omp simd reduction(+ : a1, a2)
  for (int64_t j = 0; j < n; ++j) {
    const int fin = cyfes_finite(v[j]);
    double x = fin ? v[j] - top : -700.0;
    x = x > -700.0 ? x : -700.0;
    const double e = fin ? cyfes_vexp_f64(x) : 0.0;
    a1 += e;
    a2 += e * e;
  }
  cyfes_stats_merge(top, a1, a2, m, s1, s2);
  return k;
}

/* Blocks [edges[b], edges[b+1]) of finite-or--inf log-weights: top[b] (largest finite, -DBL_MAX when none),
 * kept[b] (finite entries), lz[b] = log sum exp(logw), lz2[b] = log sum exp(2 logw) (-DBL_MAX when none). One
 * pass: each thread keeps a running top and rescales its sums when it rises. Terms below e^-700 of their chunk's
 * top count as e^-700 of it (at most e^-700 of the block's: a relative change of at most n e^-700); chunks merge by
 * log_stats.h's rule, shared with the device pass (cuda/stage.cu). */
static void cyfes_block_stats(const double *logw, int64_t nblocks, const int64_t *edges, double *top,
                              int64_t *kept, double *lz, double *lz2, int threads) {
  for (int64_t b = 0; b < nblocks; ++b) {
    const int64_t lo = edges[b], hi = edges[b + 1];
    const int64_t chunks = (hi - lo + CYFES_STATS_CHUNK - 1) / CYFES_STATS_CHUNK;
    double m = -DBL_MAX, s1 = 0, s2 = 0;
    int64_t k = 0;
#pragma omp parallel num_threads(threads)
    {
      double tm = -DBL_MAX, t1 = 0, t2 = 0;
      int64_t tk = 0;
#pragma omp for schedule(static) nowait
      for (int64_t c = 0; c < chunks; ++c) {
        const int64_t a = lo + c * CYFES_STATS_CHUNK, e = a + CYFES_STATS_CHUNK < hi ? a + CYFES_STATS_CHUNK : hi;
        tk += cyfes_stats_chunk(logw + a, e - a, &tm, &t1, &t2);
      }
#pragma omp critical
      {
        k += tk;
        cyfes_stats_merge(tm, t1, t2, &m, &s1, &s2);
      }
    }
    top[b] = m;
    kept[b] = k;
    lz[b] = k ? m + cyfes_libm_log(s1) : -DBL_MAX;
    lz2[b] = k ? 2 * m + cyfes_libm_log(s2) : -DBL_MAX;
  }
}

#endif
