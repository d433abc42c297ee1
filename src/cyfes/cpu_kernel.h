/* CPU kernel of cyfes: the same computation as the GPU's (cuda/cufes.h).
 *
 *   log_density(g) = log sum_j exp( logw[j] - 1/2 sum_d (wrap_d(g_d - s_jd) * scale_d)^2 )
 *
 * The caller (_cpu.pyx) hands the samples over transposed (one contiguous row per CV, so the sample loop
 * is unit-stride and vectorises) and pre-scaled by scale_d / sqrt(2), as are the grid points and periods, so
 * the exponent of a pair is  x = logw[j] - sum_d (g'_d - s'_jd)^2.
 *
 * One call handles a range of grid points against all samples: the samples are walked in blocks small
 * enough for L1, and every point of the range visits a block before the next block is loaded. Per point
 * and block, one vectorised pass writes the exponents and their maximum, a second sums exp(x - max)
 * (glibc's libmvec vector exp under -ffast-math). Blocks merge into a per-point running (max, sum) in
 * double, so no bias range overflows and float32 mode keeps its accuracy for large N.
 * Exponents are clamped at FLOOR below the block maximum before exp: libmvec's vector exp leaves its fast
 * path for arguments that underflow (measured: 8x slower for far grid points) and denormals are slow too.
 * A clamped term adds at most e^-80 (float) or e^-700 (double) relative to the block's largest term, far
 * below rounding.
 * The caller guarantees finite inputs (cyfes validates them), which is what makes -ffast-math safe here.
 *
 * Runtime dispatch: target_clones builds AVX-512 (x86-64-v4), AVX2+FMA (x86-64-v3) and a baseline
 * x86-64 (SSE2) version; the loader picks one through an ifunc, so the module loads on any x86-64.
 */
#ifndef CYFES_CPU_KERNEL_H
#define CYFES_CPU_KERNEL_H
#include <math.h>
#include <stdint.h>

#define CYFES_BLOCK 512   /* samples per block: (D + 2) * 512 * 8 bytes stay in L1/L2 */
#define CYFES_POINTS 16   /* grid points per call share each block of samples */
#define CYFES_MAX_DIM 8

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define CYFES_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define CYFES_CLONES
#endif

/* samples_t: dim rows of n pre-scaled coordinates; grid: (count, dim) pre-scaled points; period/inv_period:
 * pre-scaled, 0 where not periodic; out[count]. */
#define CYFES_DEFINE_KERNEL(T, SUFFIX, EXP, RINT, FLOOR)                                                           \
  CYFES_CLONES static void cyfes_points_##SUFFIX(const T *restrict samples_t, const T *restrict logw,       \
                                                 int64_t n, int dim, const T *restrict grid, int64_t count,  \
                                                 const T *restrict period, const T *restrict inv_period,     \
                                                 double *restrict out) {                                    \
    T x[CYFES_BLOCK];                                                                                       \
    double run_max[CYFES_POINTS], run_sum[CYFES_POINTS];                                                    \
    int periodic = 0;                                                                                       \
    for (int d = 0; d < dim; ++d) periodic |= period[d] > 0;                                                \
    for (int64_t j0 = 0; j0 < n; j0 += CYFES_BLOCK) {                                                       \
      const int64_t nb = n - j0 < CYFES_BLOCK ? n - j0 : CYFES_BLOCK;                                       \
      const T *restrict lw = logw + j0;                                                                     \
      for (int64_t p = 0; p < count; ++p) {                                                                 \
        const T *g = grid + p * dim;                                                                        \
        for (int64_t j = 0; j < nb; ++j) x[j] = lw[j];                                                      \
        for (int d = 0; d < dim; ++d) {                                                                     \
          const T *restrict s = samples_t + (int64_t)d * n + j0;                                            \
          const T gd = g[d], per = period[d], ip = inv_period[d];                                           \
          if (periodic && per > 0) {                                                                        \
            _Pragma("omp simd") for (int64_t j = 0; j < nb; ++j) {                                          \
              T dx = gd - s[j];                                                                             \
              dx -= per * RINT(dx * ip);                                                                    \
              x[j] -= dx * dx;                                                                              \
            }                                                                                               \
          } else {                                                                                          \
            _Pragma("omp simd") for (int64_t j = 0; j < nb; ++j) {                                          \
              T dx = gd - s[j];                                                                             \
              x[j] -= dx * dx;                                                                              \
            }                                                                                               \
          }                                                                                                 \
        }                                                                                                   \
        T bmax = x[0];                                                                                      \
        _Pragma("omp simd reduction(max : bmax)") for (int64_t j = 0; j < nb; ++j) bmax =                   \
            x[j] > bmax ? x[j] : bmax;                                                                      \
        T bsum = 0;                                                                                         \
        _Pragma("omp simd reduction(+ : bsum)") for (int64_t j = 0; j < nb; ++j) {                          \
          T t = x[j] - bmax;                                                                                \
          bsum += EXP(t > FLOOR ? t : FLOOR);                                                               \
        }                                                                                                   \
        if (j0 == 0) {                                                                                      \
          run_max[p] = bmax;                                                                                \
          run_sum[p] = bsum;                                                                                \
        } else if (bmax > run_max[p]) {                                                                     \
          run_sum[p] = run_sum[p] * exp(run_max[p] - (double)bmax) + bsum;                                  \
          run_max[p] = bmax;                                                                                \
        } else {                                                                                            \
          run_sum[p] += bsum * exp((double)bmax - run_max[p]);                                              \
        }                                                                                                   \
      }                                                                                                     \
    }                                                                                                       \
    for (int64_t p = 0; p < count; ++p) out[p] = run_max[p] + log(run_sum[p]);                              \
  }

CYFES_DEFINE_KERNEL(double, f64, exp, rint, -700.0)
CYFES_DEFINE_KERNEL(float, f32, expf, rintf, -80.0f)

#endif
