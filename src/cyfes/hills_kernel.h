/* Sum of metadynamics hills on a regular grid, the way PLUMED's sum_hills adds them (CPU).
 *
 * Each hill j adds, to every grid point of the box of +-nneigh_d grid steps around the grid index of its centre,
 *     V(x) += h_j (A exp(-r2/2) + B)   where r2/2 < cut (0 outside),   r2 = sum_d ((x_d - c_jd) / s_jd)^2
 * (diagonal hills) or r2 = dp^T M_j dp (multivariate hills, M_j the metric), and the analytic derivative
 * dV/dx_d. With A = 1/(1 - e^-6.25), B = -e^-6.25 A, cut = 6.25 this is PLUMED's stretched Gaussian; with A = 1,
 * B = 0 and no cut a plain Gaussian on the same box.
 *
 * The grid is flattened as PLUMED flattens it (first CV fastest): index = i0 + n0 (i1 + n1 (i2 + ...)); `der`
 * holds one such array per CV. Grid coordinates, differences (PLUMED's periodic difference: scale by 1/period,
 * subtract the nearest integer as Tools::pbc does, scale back) and r2 are computed with the same operations
 * in the same order as PLUMED (compile without -ffast-math and without FMA contraction), so whether a point
 * lies inside the cut is decided exactly as PLUMED decides it; the Gaussian itself is evaluated as a product
 * of per-CV factors (a few ulp from PLUMED's single exp), which makes the work per point a few multiply-adds.
 *
 * Each call adds hills [0, nh) in order to the grid points whose slowest index (i_{D-1}) lies in
 * [slab_lo, slab_hi): threads own disjoint slabs, so every point receives its hills in file order, as in
 * PLUMED, whatever the number of threads.
 */
#ifndef CYFES_HILLS_KERNEL_H
#define CYFES_HILLS_KERNEL_H

#include <math.h>

#include "glibc_compat.h"
#include <stdint.h>
#include <stdlib.h>

#define CYFES_HILLS_MAXDIM 8

/* The row loops are compiled for AVX-512, AVX2 and baseline x86-64, chosen at run time. Rounding is the same
 * in each: the build forbids FMA contraction (-ffp-contract=off). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define CYFES_HILLS_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define CYFES_HILLS_CLONES
#endif

typedef struct {
  int dim;
  int64_t nbin[CYFES_HILLS_MAXDIM];   /* points per CV */
  int64_t stride[CYFES_HILLS_MAXDIM]; /* flat-index stride per CV */
  double gmin[CYFES_HILLS_MAXDIM];
  double dx[CYFES_HILLS_MAXDIM];
  int periodic[CYFES_HILLS_MAXDIM];
  double period[CYFES_HILLS_MAXDIM];
  double inv_period[CYFES_HILLS_MAXDIM];
  int64_t size;
} cyfes_hills_grid;

/* PLUMED's Tools::pbc for the default rounding mode: bring x into [-0.5, 0.5]. */
static inline double cyfes_pbc(double x) {
  x += 100.0;
  if (x >= 0) return x - (double)(int)(x + 0.5);
  return x - (double)(int)(x - 0.5);
}

/* x - c as PLUMED's -Value::difference(x, c)... i.e. -(c - x), periodic or not. */
static inline double cyfes_dp(const cyfes_hills_grid *g, int d, double x, double c) {
  if (!g->periodic[d]) return -(c - x);
  double s = (c - x) * g->inv_period[d];
  s = cyfes_pbc(s);
  return -(s * g->period[d]);
}

/* Per CV, the box of one hill: grid index, x - c, of each offset; returns the number of offsets kept. */
/* Only indices in [keep_lo, keep_hi) are kept: a thread sets up the slowest CV only inside its slab. */
static int64_t cyfes_hill_axis(const cyfes_hills_grid *g, int d, double c, int64_t nn, int64_t *idx, double *dp,
                               int64_t keep_lo, int64_t keep_hi) {
  int64_t nb = g->nbin[d];
  int64_t ic = (int64_t)floor((c - g->gmin[d]) / g->dx[d]);
  int64_t count = 0, k_lo = -nn, k_hi = nn;
  if (nn < 0) {  /* the whole axis, each point once (untruncated kernels) */
    k_lo = g->periodic[d] ? -(nb / 2) : -ic;
    k_hi = k_lo + nb - 1;
  }
  for (int64_t k = k_lo; k <= k_hi; ++k) {
    int64_t i = ic + k;
    if (!g->periodic[d]) {
      if (i < 0 || i >= nb) continue;
    } else {
      i %= nb;
      if (i < 0) i += nb;
    }
    if (i < keep_lo || i >= keep_hi) continue;
    double x = g->gmin[d] + (double)i * g->dx[d];
    idx[count] = i;
    dp[count] = cyfes_dp(g, d, x, c);
    ++count;
  }
  return count;
}

/* Scratch layout per CV d: idx[maxbox] (int64), dp, q, e, f (double), each maxbox long. */
typedef struct {
  int64_t *idx[CYFES_HILLS_MAXDIM];
  double *dp[CYFES_HILLS_MAXDIM], *q[CYFES_HILLS_MAXDIM], *e[CYFES_HILLS_MAXDIM], *f[CYFES_HILLS_MAXDIM];
  int64_t count[CYFES_HILLS_MAXDIM];
  int64_t *runs;   /* CV 0: start offsets of the runs of consecutive grid indices, then count[0] */
  int64_t nruns;
  int mono0;       /* CV 0's differences grow with the offset (no periodic image switch in the box) */
  int64_t kmin0;   /* CV 0's offset of the smallest (u_0)^2 */
  int64_t in_a, in_b;  /* the previous row's offsets inside the cut */
  void *block;
} cyfes_hills_scratch;

static int cyfes_scratch_alloc(cyfes_hills_scratch *s, int dim, int64_t maxbox) {
  size_t per = (size_t)maxbox;
  s->block = malloc((size_t)dim * per * (sizeof(int64_t) + 4 * sizeof(double)) + (per + 1) * sizeof(int64_t) + 64);
  if (!s->block) return -1;
  char *p = (char *)s->block;
  s->runs = (int64_t *)p; p += (per + 1) * sizeof(int64_t);
  for (int d = 0; d < dim; ++d) {
    s->idx[d] = (int64_t *)p; p += per * sizeof(int64_t);
    s->dp[d] = (double *)p; p += per * sizeof(double);
    s->q[d] = (double *)p; p += per * sizeof(double);
    s->e[d] = (double *)p; p += per * sizeof(double);
    s->f[d] = (double *)p; p += per * sizeof(double);
  }
  return 0;
}

/* The runs of offsets along CV 0 over which the grid index grows by one per offset (a periodic box is cut
 * where it wraps), found once per hill, so the row loops below run over contiguous memory and vectorise. */
static inline void cyfes_find_runs(cyfes_hills_scratch *s) {
  const int64_t n = s->count[0], *idx = s->idx[0];
  s->nruns = 0;
  for (int64_t k = 0; k < n; ++k)
    if (k == 0 || idx[k] != idx[k - 1] + 1) s->runs[s->nruns++] = k;
  s->runs[s->nruns] = n;
}

/* One row of a diagonal hill along CV 0 (the contiguous one). q_rest: the other CVs' (u_d)^2 in CV order;
 * e_rest: the product of their exp(-u_d^2/2); f_rest[d]: -(u_d / s_d) e_rest for CV d >= 1. Points outside
 * the cut receive + 0.0, as in PLUMED. */
static inline __attribute__((always_inline)) void cyfes_diag_row(const cyfes_hills_grid *g, cyfes_hills_scratch *s, int64_t base,
                                  const double *q_rest, double e_rest, const double *f_rest, double hA, double hB,
                                  double cut, int use_cut, double *restrict values, double *restrict der,
                                  int64_t lo, int64_t hi) {
  const int dim = g->dim;
  const int64_t *idx0 = s->idx[0];
  const double *restrict q0 = s->q[0], *restrict e0 = s->e[0], *restrict f0 = s->f[0];
  const int64_t size = g->size;
  const double w0 = hA * e_rest;
  const double limit = use_cut ? cut : INFINITY;
  for (int64_t r = 0; r < s->nruns; ++r) {
    const int64_t ka = s->runs[r], kb = s->runs[r + 1];
    int64_t first = idx0[ka];
    int64_t a = ka, b = kb;
    if (dim == 1) {  /* the slab clips CV 0 itself */
      if (first < lo) a += lo - first;
      if (first + (kb - ka) > hi) b -= first + (kb - ka) - hi;
    }
    double *restrict v = values + base + first - ka;
    double *restrict d0 = der + base + first - ka;
    if (dim == 1) {
      for (int64_t k = a; k < b; ++k) {
        int in = 0.5 * q0[k] < limit;
        double ee = e0[k] * e_rest;
        v[k] += in ? hA * ee + hB : 0.0;
        d0[k] += in ? w0 * f0[k] : 0.0;
      }
    } else if (dim == 2) {
      const double q1 = q_rest[1], f1 = hA * f_rest[1];
      double *restrict d1 = der + size + base + first - ka;
      if (s->mono0 && use_cut) {
        /* (u_0)^2 falls then rises along the box, so the points inside the cut are one interval [in_a, in_b)
         * around kmin0; it moves little from one row to the next, so it is carried over and adjusted with the
         * exact test. Only 0.0 is added elsewhere, so the loop covers [in_a, in_b) with no test at all. */
        const int64_t n0 = s->count[0], m = s->kmin0;
        int64_t in_a = s->in_a, in_b = s->in_b;
        if (!(0.5 * (q0[m] + q1) < limit)) { s->in_a = s->in_b = m; continue; }
        if (in_b <= in_a) { in_a = m; in_b = m + 1; }
        while (in_a > 0 && 0.5 * (q0[in_a - 1] + q1) < limit) --in_a;
        while (in_a < m && !(0.5 * (q0[in_a] + q1) < limit)) ++in_a;
        while (in_b < n0 && 0.5 * (q0[in_b] + q1) < limit) ++in_b;
        while (in_b > m + 1 && !(0.5 * (q0[in_b - 1] + q1) < limit)) --in_b;
        s->in_a = in_a;
        s->in_b = in_b;
        if (a < in_a) a = in_a;
        if (b > in_b) b = in_b;
        for (int64_t k = a; k < b; ++k) {
          double ee = e0[k] * e_rest;
          v[k] += hA * ee + hB;
          d0[k] += w0 * f0[k];
          d1[k] += f1 * e0[k];
        }
        continue;
      }
      for (int64_t k = a; k < b; ++k) {
        double in = 0.5 * (q0[k] + q1) < limit ? 1.0 : 0.0;  /* a factor, not a branch: this loop vectorises */
        double ee = e0[k] * e_rest;
        v[k] += in * (hA * ee + hB);
        d0[k] += in * (w0 * f0[k]);
        d1[k] += in * (f1 * e0[k]);
      }
    } else {
      for (int64_t k = a; k < b; ++k) {
        double r2 = q0[k];
        for (int d = 1; d < dim; ++d) r2 += q_rest[d];
        int in = 0.5 * r2 < limit;
        double ee = e0[k] * e_rest;
        v[k] += in ? hA * ee + hB : 0.0;
        d0[k] += in ? w0 * f0[k] : 0.0;
        for (int d = 1; d < dim; ++d) der[(int64_t)d * size + base + first - ka + k] += in ? hA * e0[k] * f_rest[d] : 0.0;
      }
    }
  }
}

/* Diagonal hills: widths[j*dim + d] = sigma. */
CYFES_HILLS_CLONES static int cyfes_hills_diag(const cyfes_hills_grid *g, const double *centers, const double *widths,
                            const double *hA, const double *hB, const int64_t *nneigh, int64_t nh, double cut,
                            int use_cut, int64_t maxbox, int64_t slab_lo, int64_t slab_hi, double *values,
                            double *der) {
  const int dim = g->dim;
  cyfes_hills_scratch s;
  if (cyfes_scratch_alloc(&s, dim, maxbox)) return -1;
  int64_t pos[CYFES_HILLS_MAXDIM];
  double q_rest[CYFES_HILLS_MAXDIM], f_rest[CYFES_HILLS_MAXDIM];
  for (int64_t h = 0; h < nh; ++h) {
    const double *c = centers + h * dim, *w = widths + h * dim;
    int empty = 0;
    for (int d = dim - 1; d >= 0; --d) {  /* the slowest CV first: a hill outside this slab stops here */
      int slab = dim > 1 && d == dim - 1;
      s.count[d] = cyfes_hill_axis(g, d, c[d], nneigh[h * dim + d], s.idx[d], s.dp[d], slab ? slab_lo : 0,
                                   slab ? slab_hi : g->nbin[d]);
      if (s.count[d] == 0) { empty = 1; break; }
      for (int64_t k = 0; k < s.count[d]; ++k) {
        double u = s.dp[d][k] / w[d];   /* PLUMED: derivatives[i] = -difference / width */
        s.q[d][k] = u * u;
        s.e[d][k] = exp(-0.5 * s.q[d][k]);
        s.f[d][k] = -(u / w[d]) * s.e[d][k];
      }
    }
    if (empty) continue;
    cyfes_find_runs(&s);
    s.mono0 = !g->periodic[0] || (double)(nneigh[h * dim] + 1) * g->dx[0] < 0.5 * g->period[0];
    s.mono0 = s.mono0 && nneigh[h * dim] >= 0;
    s.kmin0 = 0;
    for (int64_t k = 1; k < s.count[0]; ++k)
      if (s.q[0][k] < s.q[0][s.kmin0]) s.kmin0 = k;
    s.in_a = s.in_b = s.kmin0;
    if (dim == 1) {
      cyfes_diag_row(g, &s, 0, q_rest, 1.0, f_rest, hA[h], hB[h], cut, use_cut, values, der, slab_lo, slab_hi);
      continue;
    }
    for (int d = 1; d < dim; ++d) pos[d] = 0;
    for (;;) {
      int64_t slow = s.idx[dim - 1][pos[dim - 1]];
      if (slow >= slab_lo && slow < slab_hi) {
        double e_rest = 1.0;
        int64_t base = 0;
        for (int d = 1; d < dim; ++d) {
          q_rest[d] = s.q[d][pos[d]];
          e_rest *= s.e[d][pos[d]];
          base += s.idx[d][pos[d]] * g->stride[d];
        }
        for (int d = 1; d < dim; ++d) {
          /* -(u_d/s_d) times the product of every factor but CV 0's */
          double others = 1.0;
          for (int d2 = 1; d2 < dim; ++d2) others *= (d2 == d) ? s.f[d][pos[d]] : s.e[d2][pos[d2]];
          f_rest[d] = others;
        }
        cyfes_diag_row(g, &s, base, q_rest, e_rest, f_rest, hA[h], hB[h], cut, use_cut, values, der, 0, 0);
      }
      int d = 1;
      while (d < dim && ++pos[d] == s.count[d]) pos[d++] = 0;
      if (d == dim) break;
    }
  }
  free(s.block);
  return 0;
}

/* Multivariate hills: metric[j*dim*dim + a*dim + b] = M_ab. r2 and the derivatives are summed as PLUMED's
 * KernelFunctions::evaluate sums them, and exp is taken per point. */
static int cyfes_hills_multi(const cyfes_hills_grid *g, const double *centers, const double *metric,
                             const double *hA, const double *hB, const int64_t *nneigh, int64_t nh, double cut,
                             int use_cut, int64_t maxbox, int64_t slab_lo, int64_t slab_hi, double *values,
                             double *der) {
  const int dim = g->dim;
  cyfes_hills_scratch s;
  if (cyfes_scratch_alloc(&s, dim, maxbox)) return -1;
  int64_t pos[CYFES_HILLS_MAXDIM];
  double dp[CYFES_HILLS_MAXDIM], dv[CYFES_HILLS_MAXDIM];
  for (int64_t h = 0; h < nh; ++h) {
    const double *c = centers + h * dim, *m = metric + h * dim * dim;
    int empty = 0;
    for (int d = dim - 1; d >= 0; --d) {  /* the slowest CV first: a hill outside this slab stops here */
      int slab = d == dim - 1;
      s.count[d] = cyfes_hill_axis(g, d, c[d], nneigh[h * dim + d], s.idx[d], s.dp[d], slab ? slab_lo : 0,
                                   slab ? slab_hi : g->nbin[d]);
      if (s.count[d] == 0) { empty = 1; break; }
    }
    if (empty) continue;
    for (int d = 0; d < dim; ++d) pos[d] = 0;
    for (;;) {
      int64_t slow = s.idx[dim - 1][pos[dim - 1]];
      if (slow >= slab_lo && slow < slab_hi) {
        int64_t j = 0;
        for (int d = 0; d < dim; ++d) {
          dp[d] = s.dp[d][pos[d]];
          j += s.idx[d][pos[d]] * g->stride[d];
        }
        double r2 = 0.0;
        for (int a = 0; a < dim; ++a) {
          dv[a] = 0.0;
          for (int b = 0; b < dim; ++b) {
            dv[a] += m[a * dim + b] * dp[b];
            r2 += dp[a] * dp[b] * m[a * dim + b];
          }
        }
        double v = 0.0, kd = 0.0;
        if (!use_cut || 0.5 * r2 < cut) {
          double ee = exp(-0.5 * r2);
          v = hA[h] * ee + hB[h];
          kd = -hA[h] * ee;
        }
        values[j] += v;
        for (int d = 0; d < dim; ++d) der[(int64_t)d * g->size + j] += dv[d] * kd;
      }
      int d = 0;
      while (d < dim && ++pos[d] == s.count[d]) pos[d++] = 0;
      if (d == dim) break;
    }
  }
  free(s.block);
  return 0;
}

#endif
