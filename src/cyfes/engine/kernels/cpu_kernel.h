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
 * block, so no bias range overflows and float32 keeps its accuracy for large N. The caller guarantees finite
 * inputs (cyfes validates them), which is what makes -ffast-math safe here.
 *
 * The exp is our own (cyfes_vexp_*), not glibc's libmvec: the module then needs nothing from glibc newer than
 * 2.17, so one wheel loads on every manylinux2014 machine (libmvec alone would set the floor to glibc 2.22, and
 * exp/expf as this host's libm versions them to 2.29/2.27). It is written so the vectoriser inlines it into
 * the sweep: round to the nearest multiple of ln 2, a polynomial on [-ln2/2, ln2/2] (SLEEF's for double,
 * Cephes's for float: within 1-2 ulp), the power of two built in the exponent bits. Exponents are clamped to
 * [FLOOR, CEIL] first, which keeps 2^n a normal number: a term clamped at FLOOR adds at most e^-80 (float)
 * or e^-700 (double) relative to the largest term, which is >= 1, and a term clamped at CEIL still pushes the
 * block sum past CYFES_REDO, so the block is summed again against a higher maximum.
 * The scalar exp/log of the rare paths are glibc's, bound to their first x86-64 versions (below).
 *
 * Runtime dispatch: target_clones builds AVX-512 (x86-64-v4), AVX2+FMA (x86-64-v3), SSE4.2 (x86-64-v2: the
 * first with a vector round, which the exp needs to vectorise) and a baseline x86-64 (SSE2, scalar) version;
 * the loader picks one through an ifunc, so the module loads on any x86-64.
 */
#ifndef CYFES_CPU_KERNEL_H
#define CYFES_CPU_KERNEL_H
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "glibc_compat.h"

#define CYFES_BLOCK 1024 /* samples per block: (D + 1) * 1024 * 8 bytes stay in L2 */
#define CYFES_POINTS 16  /* grid points per call share each block of samples */
#define CYFES_MAX_DIM 8
#define CYFES_REDO 1.152921504606847e18 /* 2^60: a block sum above this is summed again with a higher m */

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define CYFES_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "arch=x86-64-v2", "default")))
#else
#define CYFES_CLONES
#endif
#define CYFES_INLINE static inline __attribute__((always_inline))

/* glibc's scalar exp and log for the rare paths; not inlined, so the vectoriser cannot turn a loop of them
 * into libmvec calls (GLIBC_2.22). */
static __attribute__((noinline)) double cyfes_libm_exp(double x) { return exp(x); }
static __attribute__((noinline)) double cyfes_libm_log(double x) { return log(x); }

/* Non-finite values by their exponent bits: the module is built with -ffast-math, under which the compiler may
 * assume isfinite() is always true. */
static inline double cyfes_minus_inf(void) {
  const uint64_t bits = 0xfff0000000000000ULL;
  double x;
  memcpy(&x, &bits, 8);
  return x;
}

static inline int cyfes_finite(double x) {
  uint64_t bits;
  memcpy(&bits, &x, 8);
  return (bits & 0x7ff0000000000000ULL) != 0x7ff0000000000000ULL;
}

/* exp(x) for x in [-708, 708]; vectorisable (no calls, no branches, no table). */
CYFES_INLINE double cyfes_vexp_f64(double x) {
  const double shift = 0x1.8p52; /* n + shift has n in its low mantissa bits, exactly */
  double n = __builtin_rint(x * 0x1.71547652b82fep0);
  double r = x - n * 0x1.62e42fefa3800p-1 - n * 0x1.ef35793c76730p-45; /* x - n ln2, ln2 split in two */
  double u = 2.08860621107283687536341e-09;
  u = u * r + 2.51112930892876518610661e-08;
  u = u * r + 2.75573911234900471893338e-07;
  u = u * r + 2.75572362911928827629423e-06;
  u = u * r + 2.4801587159235472998791e-05;
  u = u * r + 0.000198412698960509205564975;
  u = u * r + 0.00138888888889774492207962;
  u = u * r + 0.00833333333331652721664984;
  u = u * r + 0.0416666666666665047591422;
  u = u * r + 0.166666666666666851703837;
  u = u * r + 0.5;
  u = r * r * u + r + 1.0;
  double biased = n + shift, scale;
  int64_t bits, shift_bits;
  memcpy(&bits, &biased, 8);
  memcpy(&shift_bits, &shift, 8);
  bits = (bits - shift_bits + 1023) << 52; /* 2^n */
  memcpy(&scale, &bits, 8);
  return u * scale;
}

/* expf(x) for x in [-87, 87]. */
CYFES_INLINE float cyfes_vexp_f32(float x) {
  const float shift = 0x1.8p23f;
  float n = __builtin_rintf(x * 0x1.715476p0f);
  float r = x - n * 0x1.62e4p-1f - n * 0x1.7f7d1cp-20f;
  float u = 1.9875691500E-4f;
  u = u * r + 1.3981999507E-3f;
  u = u * r + 8.3334519073E-3f;
  u = u * r + 4.1665795894E-2f;
  u = u * r + 1.6666665459E-1f;
  u = u * r + 5.0000001201E-1f;
  u = r * r * u + r + 1.0f;
  float biased = n + shift, scale;
  int32_t bits, shift_bits;
  memcpy(&bits, &biased, 4);
  memcpy(&shift_bits, &shift, 4);
  bits = (bits - shift_bits + 127) << 23;
  memcpy(&scale, &bits, 4);
  return u * scale;
}

/* sum_j exp(clamp(x_j - m, FLOOR, CEIL)) over one block, DIM a literal so the CV loop unrolls. */
#define CYFES_SWEEP(T, EXP, FLOOR, CEIL, DIM, PERIODIC)                                                       \
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
      t = t > FLOOR ? t : FLOOR;                                                                        \
      bsum += EXP(t < CEIL ? t : CEIL);                                                                 \
    }                                                                                                   \
  } while (0)

#define CYFES_SWEEP_CASE(T, EXP, FLOOR, CEIL, DIM)                   \
  case DIM:                                                    \
    if (periodic)                                              \
      CYFES_SWEEP(T, EXP, FLOOR, CEIL, DIM, 1);                      \
    else                                                       \
      CYFES_SWEEP(T, EXP, FLOOR, CEIL, DIM, 0);                      \
    break;

#define CYFES_DEFINE_KERNEL(T, SUFFIX, EXP, FLOOR, CEIL)                                                        \
  CYFES_INLINE T cyfes_block_sum_##SUFFIX(const T *const *s, const T *restrict lw, int64_t nb, int dim,    \
                                          const T *restrict g, const T *restrict per, int periodic, T m) { \
    T bsum = 0;                                                                                           \
    switch (dim) {                                                                                        \
      CYFES_SWEEP_CASE(T, EXP, FLOOR, CEIL, 1)                                                                  \
      CYFES_SWEEP_CASE(T, EXP, FLOOR, CEIL, 2)                                                                  \
      CYFES_SWEEP_CASE(T, EXP, FLOOR, CEIL, 3)                                                                  \
      CYFES_SWEEP_CASE(T, EXP, FLOOR, CEIL, 4)                                                                  \
      CYFES_SWEEP_CASE(T, EXP, FLOOR, CEIL, 5)                                                                  \
      CYFES_SWEEP_CASE(T, EXP, FLOOR, CEIL, 6)                                                                  \
      CYFES_SWEEP_CASE(T, EXP, FLOOR, CEIL, 7)                                                                  \
      CYFES_SWEEP_CASE(T, EXP, FLOOR, CEIL, 8)                                                                  \
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
          dsum[p] *= cyfes_libm_exp((double)m[p] - (double)top);                                                   \
          m[p] = top;                                                                                     \
          bsum = cyfes_block_sum_##SUFFIX(sb, logw + j0, nb, dim, g, period, periodic, m[p]);             \
        }                                                                                                 \
        dsum[p] += (double)bsum;                                                                          \
      }                                                                                                   \
    }                                                                                                     \
    for (int64_t p = 0; p < count; ++p) out[p] = (double)m[p] + cyfes_libm_log(dsum[p]);                         \
  }

CYFES_DEFINE_KERNEL(double, f64, cyfes_vexp_f64, -700.0, 700.0)
CYFES_DEFINE_KERNEL(float, f32, cyfes_vexp_f32, -80.0f, 80.0f)

#endif
