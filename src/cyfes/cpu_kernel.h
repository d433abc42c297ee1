/* CPU kernel of cyfes: the same computation as the GPU's (cuda/cufes.h), for one grid point at a time.
 *
 *   log_density(g) = log sum_j exp( logw[j] - 1/2 sum_d (wrap_d(g_d - s_jd) * scale_d)^2 )
 *
 * Samples are processed in blocks: one vectorisable pass writes the exponents of a block into a buffer and
 * finds its maximum, a second sums exp(x - max) (glibc's vector exp under -ffast-math). Blocks are merged
 * with a running maximum, so the sum never overflows and far-away grid points keep their precision.
 * The caller guarantees finite inputs (cyfes validates them), which is what makes -ffast-math safe here.
 */
#ifndef CYFES_CPU_KERNEL_H
#define CYFES_CPU_KERNEL_H
#include <math.h>
#include <stdint.h>

#define CYFES_BLOCK 256
#define CYFES_MAX_DIM 8

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define CYFES_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define CYFES_CLONES
#endif

#define CYFES_DEFINE_KERNEL(T, SUFFIX, EXP, LOG, RINT)                                                  \
  CYFES_CLONES static double cyfes_point_##SUFFIX(const T *restrict samples, const T *restrict logw,       \
                                                  int64_t n, int dim, const T *restrict g,                 \
                                                  const T *restrict scale, const T *restrict period,       \
                                                  const T *restrict inv_period) {                          \
    T x[CYFES_BLOCK];                                                                                      \
    double run_max = 0.0, run_sum = 0.0;                                                                   \
    for (int64_t j0 = 0; j0 < n; j0 += CYFES_BLOCK) {                                                      \
      int64_t nb = n - j0 < CYFES_BLOCK ? n - j0 : CYFES_BLOCK;                                            \
      const T *s = samples + j0 * dim;                                                                     \
      for (int64_t j = 0; j < nb; ++j) x[j] = logw[j0 + j];                                                \
      for (int d = 0; d < dim; ++d) {                                                                      \
        const T gd = g[d], sc = scale[d], p = period[d], ip = inv_period[d];                              \
        if (p > 0) {                                                                                       \
          _Pragma("omp simd") for (int64_t j = 0; j < nb; ++j) {                                           \
            T dx = gd - s[j * dim + d];                                                                    \
            dx = (dx - p * RINT(dx * ip)) * sc;                                                            \
            x[j] -= (T)0.5 * dx * dx;                                                                      \
          }                                                                                                \
        } else {                                                                                           \
          _Pragma("omp simd") for (int64_t j = 0; j < nb; ++j) {                                           \
            T dx = (gd - s[j * dim + d]) * sc;                                                             \
            x[j] -= (T)0.5 * dx * dx;                                                                      \
          }                                                                                                \
        }                                                                                                  \
      }                                                                                                    \
      T bmax = x[0];                                                                                       \
      _Pragma("omp simd reduction(max : bmax)") for (int64_t j = 0; j < nb; ++j) bmax =                    \
          x[j] > bmax ? x[j] : bmax;                                                                       \
      T bsum = 0;                                                                                          \
      _Pragma("omp simd reduction(+ : bsum)") for (int64_t j = 0; j < nb; ++j) bsum += EXP(x[j] - bmax);   \
      if (j0 == 0) {                                                                                       \
        run_max = bmax;                                                                                    \
        run_sum = bsum;                                                                                    \
      } else if (bmax > run_max) {                                                                         \
        run_sum = run_sum * exp(run_max - (double)bmax) + bsum;                                            \
        run_max = bmax;                                                                                    \
      } else {                                                                                             \
        run_sum += bsum * exp((double)bmax - run_max);                                                     \
      }                                                                                                    \
    }                                                                                                      \
    return run_max + log(run_sum);                                                                         \
  }

CYFES_DEFINE_KERNEL(double, f64, exp, log, rint)
CYFES_DEFINE_KERNEL(float, f32, expf, logf, rintf)

#endif
