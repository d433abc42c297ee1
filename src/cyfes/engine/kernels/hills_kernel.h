/* Sum of metadynamics hills on a regular grid, the way PLUMED's sum_hills adds them (CPU).
 *
 * Each hill j adds, to every grid point of the box of +-nneigh_d grid steps around the grid index of its centre,
 *     V(x) += h_j (A exp(-r2/2) + B)   where r2/2 < cut (0 outside),   r2 = sum_d ((x_d - c_jd) / s_jd)^2
 * (diagonal hills) or r2 = dp^T M_j dp (multivariate hills, M_j the metric), and, when `der` is given, the
 * analytic derivative dV/dx_d. With A = 1/(1 - e^-6.25), B = -e^-6.25 A, cut = 6.25 this is PLUMED's stretched
 * Gaussian; with A = 1, B = 0 and no cut a plain Gaussian on the same box.
 *
 * The grid is flattened as PLUMED flattens it (first CV fastest): index = i0 + n0 (i1 + n1 (i2 + ...)); `der`
 * holds one such array per CV. Grid coordinates, differences (PLUMED's periodic difference: scale by 1/period,
 * subtract the nearest integer as Tools::pbc does, scale back) and r2 are computed with the same operations
 * in the same order as PLUMED (compile without -ffast-math and without FMA contraction), so whether a point
 * lies inside the cut is decided exactly as PLUMED decides it; the Gaussian itself is evaluated as a product
 * of per-CV factors (a few ulp from PLUMED's single exp), which makes the work per point a multiply-add.
 *
 * Each call adds hills [0, nh) in order to the grid points whose slowest index (i_{D-1}) lies in
 * [slab_lo, slab_hi): threads own disjoint slabs, so every point receives its hills in file order, as in
 * PLUMED, whatever the number of threads.
 */
#ifndef CYFES_HILLS_KERNEL_H
#define CYFES_HILLS_KERNEL_H

#include <math.h>

#include "glibc_compat.h"
#include "hills_exp.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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

/* PLUMED's Tools::pbc for the default rounding mode: bring x into [-0.5, 0.5]. Written with a select, not a
 * branch, so that the loops over a box's offsets vectorise; the operations are the same. */
static inline double cyfes_pbc(double x) {
  x += 100.0;
  double r = x >= 0 ? x + 0.5 : x - 0.5;
  return x - (double)(int)r;
}

/* Per CV, the box of one hill: grid index, x - c, of each offset; returns the number of offsets kept.
 * Only indices in [keep_lo, keep_hi) are kept: a thread sets up the slowest CV only inside its slab. A
 * periodic box wider than the axis visits a point once per offset, as PLUMED's Grid::getNeighbors does. */
static inline int64_t cyfes_hill_axis(const cyfes_hills_grid *g, int d, double c, int64_t nn, int64_t *restrict idx,
                               double *restrict dp, int64_t keep_lo, int64_t keep_hi) {
  const int64_t nb = g->nbin[d];
  const int64_t ic = (int64_t)floor((c - g->gmin[d]) / g->dx[d]);
  int64_t count = 0, k_lo = -nn, k_hi = nn;
  if (nn < 0) {  /* the whole axis, each point once (untruncated kernels) */
    k_lo = g->periodic[d] ? -(nb / 2) : -ic;
    k_hi = k_lo + nb - 1;
  }
  int64_t i = ic + k_lo;
  if (g->periodic[d]) {
    i %= nb;
    if (i < 0) i += nb;
    for (int64_t k = k_lo; k <= k_hi; ++k) {
      if (i >= keep_lo && i < keep_hi) idx[count++] = i;
      if (++i == nb) i = 0;
    }
  } else {
    const int64_t lo = keep_lo > 0 ? keep_lo : 0, hi = keep_hi < nb ? keep_hi : nb;
    for (int64_t k = k_lo; k <= k_hi; ++k, ++i)
      if (i >= lo && i < hi) idx[count++] = i;
  }
  const double gmin = g->gmin[d], dx = g->dx[d], period = g->period[d], inv_period = g->inv_period[d];
  if (g->periodic[d]) {  /* -Value::difference(x, c) */
    for (int64_t m = 0; m < count; ++m) {
      double x = gmin + (double)idx[m] * dx;
      double sc = cyfes_pbc((c - x) * inv_period);
      dp[m] = -(sc * period);
    }
  } else {
    for (int64_t m = 0; m < count; ++m) dp[m] = -(c - (gmin + (double)idx[m] * dx));
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

/* The box of hill c on every CV, the slowest first: a hill that misses this thread's slab stops there.
 * The slowest CV is clipped to the slab (also CV 0 of a 1-D grid, whose rows the slab clips again).
 * Returns 0 when the box is empty. */
static inline int cyfes_hill_box(const cyfes_hills_grid *g, const double *c, const int64_t *nn, cyfes_hills_scratch *s,
                          int64_t slab_lo, int64_t slab_hi) {
  for (int d = g->dim - 1; d >= 0; --d) {
    int slab = d == g->dim - 1;
    s->count[d] = cyfes_hill_axis(g, d, c[d], nn[d], s->idx[d], s->dp[d], slab ? slab_lo : 0,
                                  slab ? slab_hi : g->nbin[d]);
    if (s->count[d] == 0) return 0;
  }
  return 1;
}

/* The next row of the box: advance the offsets of CVs first..dim-1 like an odometer; 0 after the last row. */
static inline int cyfes_next_row(int64_t *pos, const int64_t *count, int first, int dim) {
  int d = first;
  while (d < dim && ++pos[d] == count[d]) pos[d++] = 0;
  return d < dim;
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

/* PLUMED's r2 at CV-0 offset k of a row, summed in CV order (the cut test must round as PLUMED's does). */
static inline __attribute__((always_inline)) double cyfes_row_r2(const cyfes_hills_scratch *s, int64_t k, const double *q_rest, int dim) {
  double r2 = s->q[0][k];
  for (int d = 1; d < dim; ++d) r2 += q_rest[d];
  return r2;
}

/* The offsets of a row inside the cut, one interval [in_a, in_b) around kmin0 since (u_0)^2 falls then rises
 * along a box with no periodic image switch. It moves little from one row to the next, so it is carried over
 * and adjusted with the exact test. Returns 0 when no point of the row is inside. */
static inline __attribute__((always_inline)) int cyfes_row_interval(cyfes_hills_scratch *s, const double *q_rest, int dim, double limit) {
  const int64_t n0 = s->count[0], m = s->kmin0;
  int64_t a = s->in_a, b = s->in_b;
  if (!(0.5 * cyfes_row_r2(s, m, q_rest, dim) < limit)) { s->in_a = s->in_b = m; return 0; }
  if (b <= a) { a = m; b = m + 1; }
  while (a > 0 && 0.5 * cyfes_row_r2(s, a - 1, q_rest, dim) < limit) --a;
  while (a < m && !(0.5 * cyfes_row_r2(s, a, q_rest, dim) < limit)) ++a;
  while (b < n0 && 0.5 * cyfes_row_r2(s, b, q_rest, dim) < limit) ++b;
  while (b > m + 1 && !(0.5 * cyfes_row_r2(s, b - 1, q_rest, dim) < limit)) --b;
  s->in_a = a;
  s->in_b = b;
  return 1;
}

/* One row of a diagonal hill along CV 0 (the contiguous one). q_rest: the other CVs' (u_d)^2 in CV order;
 * e_rest: the product of their exp(-u_d^2/2); f_rest[d]: -h A (u_d / s_d) e_rest for CV d >= 1. der may be NULL
 * (values only). lo, hi: the slab, for a 1-D grid. Points outside the cut receive + 0.0, as in PLUMED. */
static inline __attribute__((always_inline)) void cyfes_diag_row(
    const cyfes_hills_grid *g, const int dim, cyfes_hills_scratch *s, int64_t base, const double *q_rest,
    double e_rest, const double *f_rest, double hA, double hB, double cut, int use_cut, double *restrict values,
    double *restrict der, int64_t lo, int64_t hi) {
  const double *restrict e0 = s->e[0], *restrict f0 = s->f[0];
  const double w0 = hA * e_rest;
  const double limit = use_cut ? cut : INFINITY;
  /* with one interval inside the cut, the points outside (which would add 0.0) are skipped: no test per point */
  const int interval = s->mono0 && use_cut;
  if (interval && !cyfes_row_interval(s, q_rest, dim, limit)) return;
  for (int64_t r = 0; r < s->nruns; ++r) {
    const int64_t ka = s->runs[r], kb = s->runs[r + 1];
    const int64_t first = s->idx[0][ka];
    int64_t a = ka, b = kb;
    if (dim == 1) {  /* the slab clips CV 0 itself */
      if (first < lo) a += lo - first;
      if (first + (kb - ka) > hi) b -= first + (kb - ka) - hi;
    }
    if (interval) {
      if (a < s->in_a) a = s->in_a;
      if (b > s->in_b) b = s->in_b;
    }
    double *restrict v = values + base + first - ka;
    if (der == NULL && interval) {
      for (int64_t k = a; k < b; ++k) v[k] += hA * (e0[k] * e_rest) + hB;
    } else if (der == NULL) {
      for (int64_t k = a; k < b; ++k) {
        double in = 0.5 * cyfes_row_r2(s, k, q_rest, dim) < limit ? 1.0 : 0.0;  /* a factor: it vectorises */
        v[k] += in * (hA * (e0[k] * e_rest) + hB);
      }
    } else {
      for (int64_t k = a; k < b; ++k) {
        double in = interval || 0.5 * cyfes_row_r2(s, k, q_rest, dim) < limit ? 1.0 : 0.0;
        v[k] += in * (hA * (e0[k] * e_rest) + hB);
        der[base + first - ka + k] += in * (w0 * f0[k]);
        for (int d = 1; d < dim; ++d) der[(int64_t)d * g->size + base + first - ka + k] += in * (f_rest[d] * e0[k]);
      }
    }
  }
}

/* Per CV of a diagonal hill: (u_d)^2, exp(-u_d^2/2) and -(u_d/s_d) exp(-u_d^2/2) of each offset of its box. */
static inline void cyfes_diag_factors(cyfes_hills_scratch *s, int dim, const double *w) {
  for (int d = 0; d < dim; ++d) {
    for (int64_t k = 0; k < s->count[d]; ++k) {
      double u = s->dp[d][k] / w[d];   /* PLUMED: derivatives[i] = -difference / width */
      s->q[d][k] = u * u;
      s->e[d][k] = cyfes_hills_exp(-0.5 * s->q[d][k]);
      s->f[d][k] = -(u / w[d]) * s->e[d][k];
    }
  }
}

/* CV 0 of a hill: its runs, whether the cut leaves one interval per row, and where (u_0)^2 is smallest. */
static inline void cyfes_diag_cv0(cyfes_hills_scratch *s, const cyfes_hills_grid *g, int64_t nn0) {
  cyfes_find_runs(s);
  s->mono0 = nn0 >= 0 && (!g->periodic[0] || (double)(nn0 + 1) * g->dx[0] < 0.5 * g->period[0]);
  s->kmin0 = 0;
  for (int64_t k = 1; k < s->count[0]; ++k)
    if (s->q[0][k] < s->q[0][s->kmin0]) s->kmin0 = k;
  s->in_a = s->in_b = s->kmin0;
}

/* Diagonal hills: widths[j*dim + d] = sigma. der may be NULL (values only). */
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
    if (!cyfes_hill_box(g, centers + h * dim, nneigh + h * dim, &s, slab_lo, slab_hi)) continue;
    cyfes_diag_factors(&s, dim, widths + h * dim);
    cyfes_diag_cv0(&s, g, nneigh[h * dim]);
    for (int d = 0; d < dim; ++d) pos[d] = 0;
    do {
      double e_rest = 1.0;
      int64_t base = 0;
      for (int d = 1; d < dim; ++d) {
        q_rest[d] = s.q[d][pos[d]];
        e_rest *= s.e[d][pos[d]];
        base += s.idx[d][pos[d]] * g->stride[d];
      }
      for (int d = 1; der != NULL && d < dim; ++d) {
        /* -(u_d/s_d) times the product of every factor but CV 0's */
        double others = 1.0;
        for (int d2 = 1; d2 < dim; ++d2) others *= (d2 == d) ? s.f[d][pos[d]] : s.e[d2][pos[d2]];
        f_rest[d] = hA[h] * others;
      }
      if (dim == 2)  /* the common case, with its r2 sums unrolled */
        cyfes_diag_row(g, 2, &s, base, q_rest, e_rest, f_rest, hA[h], hB[h], cut, use_cut, values, der, 0, 0);
      else
        cyfes_diag_row(g, dim, &s, base, q_rest, e_rest, f_rest, hA[h], hB[h], cut, use_cut, values, der,
                       slab_lo, slab_hi);
    } while (cyfes_next_row(pos, s.count, 1, dim));
  }
  free(s.block);
  return 0;
}

/* Multivariate hills: metric[j*dim*dim + a*dim + b] = M_ab. r2 and the derivatives are summed as PLUMED's
 * KernelFunctions::evaluate sums them, and exp is taken per point. der may be NULL (values only). */
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
    const double *m = metric + h * dim * dim;
    if (!cyfes_hill_box(g, centers + h * dim, nneigh + h * dim, &s, slab_lo, slab_hi)) continue;
    for (int d = 0; d < dim; ++d) pos[d] = 0;
    do {
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
      for (int d = 0; der != NULL && d < dim; ++d) der[(int64_t)d * g->size + j] += dv[d] * kd;
    } while (cyfes_next_row(pos, s.count, 0, dim));
  }
  free(s.block);
  return 0;
}

#endif
