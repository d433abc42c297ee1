/* Running statistics of log-weights, shared by the host pass (cpu_scan.h) and the device pass (cuda/stage.cu) so
 * both merge by one rule: a largest finite value m and the sums s1 = sum exp(v - m), s2 = sum exp(2 (v - m)),
 * kept relative to m and rescaled when a larger m arrives. Values are taken CYFES_STATS_CHUNK at a time; within a
 * chunk, terms below e^-700 of its largest count as e^-700 of it. CYFES_STATS_EXP is the exp to use (the host
 * pass binds libm's). */
#ifndef CYFES_LOG_STATS_H
#define CYFES_LOG_STATS_H
#include <float.h>
#include <math.h>

#define CYFES_STATS_CHUNK 2048 /* values per step: read twice, from L1 */
#ifndef CYFES_STATS_EXP
#define CYFES_STATS_EXP exp
#endif

/* Merges (m, s1, s2) into (into_m, into_s1, into_s2), both relative to their own top (m = -DBL_MAX: no finite
 * value yet). */
static inline void cyfes_stats_merge(double m, double s1, double s2, double *into_m, double *into_s1,
                                     double *into_s2) {
  if (m == -DBL_MAX) return;
  if (m > *into_m) {
    const double r = *into_m == -DBL_MAX ? 0.0 : CYFES_STATS_EXP(*into_m - m);
    *into_s1 = *into_s1 * r + s1;
    *into_s2 = *into_s2 * r * r + s2;
    *into_m = m;
  } else {
    const double r = CYFES_STATS_EXP(m - *into_m);
    *into_s1 += s1 * r;
    *into_s2 += s2 * r * r;
  }
}

#endif
