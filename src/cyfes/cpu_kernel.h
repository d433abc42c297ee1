/* CPU kernel of cyfes: the same computation as the GPU's (cuda/cufes.h).
 *
 *   log_density(g) = log sum_j exp( logw[j] - 1/2 sum_d (wrap_d(g_d - s_jd) * scale_d)^2 )
 *
 * The caller (_cpu.pyx) hands the samples over transposed (one contiguous row per CV, so the sample loop
 * is unit-stride and vectorises) and pre-scaled by scale_d / sqrt(2), as are the grid points and periods,
 * with periodic coordinates wrapped into [-P/2, P/2]. The exponent of a pair is then
 *     x = logw[j] - sum_d dist_d^2,   dist_d = g'_d - s'_jd, or min(|.|, P' - |.|) for a periodic CV.
 *
 * One call handles a few grid points against all samples: the samples are walked in blocks that stay in
 * L1/L2, and every point visits a block before the next one is loaded. Per point and block, ONE vectorised
 * pass (specialised per number of CVs, so the CV loop unrolls) sums exp(x - m) with m the point's running
 * maximum, raised lazily as on the GPU: m starts at the exponent of the first sample, and only when a block's
 * sum passes 2^60 (an exponent far above m) is the block swept again to find its maximum, m raised to it,
 * the double accumulator rescaled, and the block summed once more. Sums move into a double accumulator per
 * block, so no bias range overflows and float32 keeps its accuracy for large N. The exp is glibc's libmvec
 * vector exp (-ffast-math). Exponents are clamped at FLOOR below m first: libmvec leaves its fast path for
 * arguments that underflow (measured 8x slower on far grid points); a clamped term adds at most e^-80
 * (float) or e^-700 (double) relative to the largest term, which is >= 1. The caller guarantees finite
 * inputs (cyfes validates them), which is what makes -ffast-math safe here.
 *
 * Runtime dispatch: target_clones builds AVX-512 (x86-64-v4), AVX2+FMA (x86-64-v3) and a baseline x86-64
 * (SSE2) version; the loader picks one through an ifunc, so the module loads on any x86-64.
 */
#ifndef CYFES_CPU_KERNEL_H
#define CYFES_CPU_KERNEL_H
#include <math.h>
#include <stdint.h>

#define CYFES_BLOCK 1024 /* samples per block: (D + 1) * 1024 * 8 bytes stay in L2 */
#define CYFES_POINTS 16  /* grid points per call share each block of samples */
#define CYFES_MAX_DIM 8
#define CYFES_REDO 1.152921504606847e18 /* 2^60: a block sum above this is summed again with a higher m */

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define CYFES_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define CYFES_CLONES
#endif
#define CYFES_INLINE static inline __attribute__((always_inline))

/* sum_j exp(max(x_j - m, FLOOR)) over one block, DIM a literal so the CV loop unrolls. */
#define CYFES_SWEEP(T, EXP, FLOOR, DIM, PERIODIC)                                                       \
  do {                                                                                                  \
    _Pragma("omp simd reduction(+ : bsum)") for (int64_t j = 0; j < nb; ++j) {                          \
      T t = lw[j] - m;                                                                                  \
      for (int d = 0; d < DIM; ++d) {                                                                   \
        T dx = g[d] - s[d][j];                                                                          \
        if (PERIODIC) {                                                                                 \
          dx = dx < 0 ? -dx : dx;                                                                       \
          dx = dx < per[d] - dx ? dx : per[d] - dx;                                                     \
        }                                                                                               \
        t -= dx * dx;                                                                                   \
      }                                                                                                 \
      bsum += EXP(t > FLOOR ? t : FLOOR);                                                               \
    }                                                                                                   \
  } while (0)

#define CYFES_SWEEP_CASE(T, EXP, FLOOR, DIM)                   \
  case DIM:                                                    \
    if (periodic)                                              \
      CYFES_SWEEP(T, EXP, FLOOR, DIM, 1);                      \
    else                                                       \
      CYFES_SWEEP(T, EXP, FLOOR, DIM, 0);                      \
    break;

#define CYFES_DEFINE_KERNEL(T, SUFFIX, EXP, FLOOR)                                                        \
  CYFES_INLINE T cyfes_block_sum_##SUFFIX(const T *const *s, const T *restrict lw, int64_t nb, int dim,    \
                                          const T *restrict g, const T *restrict per, int periodic, T m) { \
    T bsum = 0;                                                                                           \
    switch (dim) {                                                                                        \
      CYFES_SWEEP_CASE(T, EXP, FLOOR, 1)                                                                  \
      CYFES_SWEEP_CASE(T, EXP, FLOOR, 2)                                                                  \
      CYFES_SWEEP_CASE(T, EXP, FLOOR, 3)                                                                  \
      CYFES_SWEEP_CASE(T, EXP, FLOOR, 4)                                                                  \
      CYFES_SWEEP_CASE(T, EXP, FLOOR, 5)                                                                  \
      CYFES_SWEEP_CASE(T, EXP, FLOOR, 6)                                                                  \
      CYFES_SWEEP_CASE(T, EXP, FLOOR, 7)                                                                  \
      CYFES_SWEEP_CASE(T, EXP, FLOOR, 8)                                                                  \
    }                                                                                                     \
    return bsum;                                                                                          \
  }                                                                                                       \
  /* The exponent of sample j for point g (scalar: the rare paths only). */                               \
  CYFES_INLINE T cyfes_exponent_##SUFFIX(const T *const *s, const T *lw, int64_t j, int dim, const T *g,   \
                                         const T *per) {                                                  \
    T t = lw[j];                                                                                          \
    for (int d = 0; d < dim; ++d) {                                                                       \
      T dx = g[d] - s[d][j];                                                                              \
      if (per[d] > 0) {                                                                                   \
        dx = dx < 0 ? -dx : dx;                                                                           \
        dx = dx < per[d] - dx ? dx : per[d] - dx;                                                         \
      }                                                                                                   \
      t -= dx * dx;                                                                                       \
    }                                                                                                     \
    return t;                                                                                             \
  }                                                                                                       \
  /* samples_t: dim rows of n pre-scaled coordinates; grid: (count, dim) pre-scaled points; period:       \
   * pre-scaled, 0 where not periodic; out[count], count <= CYFES_POINTS. */                              \
  CYFES_CLONES static void cyfes_points_##SUFFIX(const T *restrict samples_t, const T *restrict logw,      \
                                                 int64_t n, int dim, const T *restrict grid, int64_t count, \
                                                 const T *restrict period, double *restrict out) {         \
    T m[CYFES_POINTS];                                                                                    \
    double dsum[CYFES_POINTS];                                                                            \
    const T *s[CYFES_MAX_DIM];                                                                            \
    int periodic = 0;                                                                                     \
    for (int d = 0; d < dim; ++d) {                                                                       \
      periodic |= period[d] > 0;                                                                          \
      s[d] = samples_t + (int64_t)d * n;                                                                  \
    }                                                                                                     \
    for (int64_t p = 0; p < count; ++p) {                                                                 \
      m[p] = cyfes_exponent_##SUFFIX(s, logw, 0, dim, grid + p * dim, period);                            \
      dsum[p] = 0;                                                                                        \
    }                                                                                                     \
    for (int64_t j0 = 0; j0 < n; j0 += CYFES_BLOCK) {                                                     \
      const int64_t nb = n - j0 < CYFES_BLOCK ? n - j0 : CYFES_BLOCK;                                     \
      const T *sb[CYFES_MAX_DIM];                                                                         \
      for (int d = 0; d < dim; ++d) sb[d] = s[d] + j0;                                                    \
      for (int64_t p = 0; p < count; ++p) {                                                               \
        const T *g = grid + p * dim;                                                                      \
        T bsum = cyfes_block_sum_##SUFFIX(sb, logw + j0, nb, dim, g, period, periodic, m[p]);             \
        if (!(bsum < (T)CYFES_REDO)) { /* rare: raise m to this block's maximum, sum again */             \
          T top = cyfes_exponent_##SUFFIX(sb, logw + j0, 0, dim, g, period);                              \
          for (int64_t j = 1; j < nb; ++j) {                                                              \
            T e = cyfes_exponent_##SUFFIX(sb, logw + j0, j, dim, g, period);                              \
            top = e > top ? e : top;                                                                      \
          }                                                                                               \
          dsum[p] *= exp((double)m[p] - (double)top);                                                     \
          m[p] = top;                                                                                     \
          bsum = cyfes_block_sum_##SUFFIX(sb, logw + j0, nb, dim, g, period, periodic, m[p]);             \
        }                                                                                                 \
        dsum[p] += (double)bsum;                                                                          \
      }                                                                                                   \
    }                                                                                                     \
    for (int64_t p = 0; p < count; ++p) out[p] = (double)m[p] + log(dsum[p]);                             \
  }

CYFES_DEFINE_KERNEL(double, f64, exp, -700.0)
CYFES_DEFINE_KERNEL(float, f32, expf, -80.0f)

#endif
