/* exp(x) for x <= 0 of the hills kernels: the CPU kernel (hills_kernel.h) and the GPU kernel (cuda/hills.cu)
 * evaluate the per-CV Gaussian factors with this one polynomial. */
#ifndef CYFES_HILLS_EXP_H
#define CYFES_HILLS_EXP_H

#include <stdint.h>
#include <string.h>

#ifdef __CUDACC__
#define CYFES_HILLS_EXP_FN static inline __host__ __device__
#else
#define CYFES_HILLS_EXP_FN static inline
#endif

/* exp(x) for x <= 0, within a few ulp of libm's, for the per-CV factor tables: written so that the loops
 * over a box's offsets vectorise (libm's exp is one call per number). Below -708 it returns about 3e-308
 * instead of a denormal or 0 (those factors vanish in the products). */
CYFES_HILLS_EXP_FN double cyfes_hills_exp(double x) {
  const double log2e = 1.4426950408889634, ln2_hi = 6.93147180369123816490e-01,
               ln2_lo = 1.90821492927058770002e-10, shifter = 6755399441055744.0; /* 1.5 * 2^52 */
  x = x < -708.0 ? -708.0 : x;
  double t = x * log2e + shifter;  /* the nearest integer n to x log2(e) sits in t's low bits */
  double n = t - shifter;
  double r = x - n * ln2_hi;
  r = r - n * ln2_lo;               /* |r| <= ln2/2: Taylor to degree 13 is exact to 1e-17 */
  double p = 1.0 / 6227020800.0;
  p = p * r + 1.0 / 479001600.0;
  p = p * r + 1.0 / 39916800.0;
  p = p * r + 1.0 / 3628800.0;
  p = p * r + 1.0 / 362880.0;
  p = p * r + 1.0 / 40320.0;
  p = p * r + 1.0 / 5040.0;
  p = p * r + 1.0 / 720.0;
  p = p * r + 1.0 / 120.0;
  p = p * r + 1.0 / 24.0;
  p = p * r + 1.0 / 6.0;
  p = p * r + 0.5;
  p = p * r + 1.0;
  p = p * r + 1.0;
  int64_t bits, tb, sb;
  memcpy(&tb, &t, sizeof tb);
  memcpy(&sb, &shifter, sizeof sb);
  bits = (tb - sb + 1023) << 52;   /* 2^n, n >= -1022 after the clamp */
  double scale;
  memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

#endif
