/* Truncated CPU kernel of cyfes: the same log-density as cpu_kernel.h, summed only over the groups of samples
 * that can matter, with a proven bound on what is left out.
 *
 * Coordinates are pre-scaled by scale / sqrt(2) (a pair's exponent is logw - sum_d dist_d^2) and periodic ones
 * wrapped into [0, P'). The samples are sorted into cells of a uniform grid (counting sort, two passes); per
 * non-empty cell we keep its sample range, the log of its summed weight L_c and the tight bounding box of its
 * samples. Grid points come in tiles (small boxes). For a tile T and a cell c, with d2min / d2max the smallest /
 * largest squared distance between the two boxes (nearest image on periodic CVs), every sample j of c adds to
 * every point g of T between
 *     exp(L_c - d2max)  (summed over j)   and   exp(L_c - d2min).
 * The first sums to a lower bound of the density at each point of the tile; the second, summed over the cells
 * left out, bounds the neglected mass R. F moves by ln(1 + R / S_inc) <= R / S_inc kT, where S_inc is the
 * included sum: a tile is finished only when R <= tol * min_g S_inc(g), checked after summing (no weight is
 * assumed small: a far cell with a huge bias has a huge L_c and is included).
 *
 * Cells are chosen by their upper bound in 1-nat buckets below the tile's largest bound: a first cut from an
 * estimate of the density, summed, then checked against the actual minimum included sum; when the check fails,
 * a second cut from that minimum (a true lower bound) includes the missing cells, and the check is repeated.
 */
#ifndef CYFES_CPU_TRUNCATED_H
#define CYFES_CPU_TRUNCATED_H
#include "cell_grid.h"
#include "cpu_kernel.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#else
static inline int omp_get_thread_num(void) { return 0; }
static inline int omp_get_num_threads(void) { return 1; }
#endif

#define CYFES_TILE_MAX 256   /* grid points per tile */
#define CYFES_BUCKETS 160    /* 1-nat buckets of cell bounds below the tile's largest; the last takes the rest */
#define CYFES_SAFETY 0.999   /* margin on the check for rounding of the included sums */
#define CYFES_SEP_T 16       /* separable tiles: at most this many points per CV */
#define CYFES_SEP_B 128      /* separable tiles: samples per block of factors (a multiple of CYFES_LANES) */
#define CYFES_LANES 8        /* separable tiles: partial sums per point (one AVX-512 vector of doubles) */
/* Separable factors are clamped at exp(CYFES_SEP_FLOOR): a product of up to 4 of them stays a normal double
 * (denormals cost ~100x per operation, and a shared library cannot set flush-to-zero). A clamped term adds at
 * most exp(u0 + FLOOR); tiles where some point's sum is below exp(u0 - CYFES_SEP_RANGE) are summed again by the
 * per-point kernel, so the clamping changes no sum by more than N exp(FLOOR + RANGE) relatively (~e^-70 N). */
#define CYFES_SEP_FLOOR -170.0
#define CYFES_SEP_RANGE 100.0
/* A tile whose density bounds span more than this (nats) is summed point by point (cyfes_steep). The span
 * includes the bounds' own looseness (a cell's nearest and farthest distance to the tile differ by about the two
 * boxes' diagonals), ~30-60 nats for 64-point tiles at ~1 sigma spacing in 3-D: 3-D 1e6 x 64^3 CPU time 1.43 s
 * at 30, 1.11-1.22 s at 60-100, 24 s when no tile is steep. */
#define CYFES_STEEP 60.0

/* Pre-scaled, wrapped copies for the direct kernel in one pass: out[d * n + j] (transposed) or out[j * dim + d]. */
#define CYFES_DEFINE_SCALED(T, SUFFIX)                                                                      \
  static void cyfes_scaled_rows_##SUFFIX(const T *x, int64_t n, int dim, const double *factor,              \
                                         const double *period, int transpose, T *out) {                     \
    for (int64_t j = 0; j < n; ++j)                                                                          \
      for (int d = 0; d < dim; ++d) {                                                                        \
        T u = (T)cyfes_scaled((double)x[j * dim + d], factor[d], period[d]);                                 \
        out[transpose ? d * n + j : j * dim + d] = u;                                                        \
      }                                                                                                      \
  }
CYFES_DEFINE_SCALED(double, f64)
CYFES_DEFINE_SCALED(float, f32)

/* Pass 1: the cell grid. x: (n, dim) raw samples; logw: n (non-finite = no sample); [lo, hi) the samples used.
 * h: wanted cell side (pre-scaled); at most cyfes_max_cells(kept, per_cell, cap) cells (the side grows to fit).
 * Returns the samples kept. */
static int64_t cyfes_cells_plan(const double *x, const double *logw, int64_t lo, int64_t hi, int dim,
                                const double *factor, const double *period, double h, int64_t per_cell,
                                int64_t cap, cyfes_cell_grid *cg, int threads) {
  double mn[CYFES_MAX_DIM], mx[CYFES_MAX_DIM];
  int64_t kept = 0;
  for (int d = 0; d < dim; ++d) {
    mn[d] = DBL_MAX;
    mx[d] = -DBL_MAX;
  }
#pragma omp parallel num_threads(threads)
  {
    double l[CYFES_MAX_DIM], u[CYFES_MAX_DIM];
    int64_t k = 0;
    for (int d = 0; d < dim; ++d) {
      l[d] = DBL_MAX;
      u[d] = -DBL_MAX;
    }
#pragma omp for schedule(static) nowait
    for (int64_t j = lo; j < hi; ++j) {
      if (!cyfes_finite(logw[j])) continue;
      ++k;
      for (int d = 0; d < dim; ++d) {
        const double v = cyfes_scaled(x[j * dim + d], factor[d], period[d]);
        l[d] = v < l[d] ? v : l[d];
        u[d] = v > u[d] ? v : u[d];
      }
    }
#pragma omp critical
    {
      kept += k;
      for (int d = 0; d < dim; ++d) {
        mn[d] = l[d] < mn[d] ? l[d] : mn[d];
        mx[d] = u[d] > mx[d] ? u[d] : mx[d];
      }
    }
  }
  cyfes_cells_geometry(mn, mx, kept, dim, period, h, cyfes_max_cells(kept, per_cell, cap), cg);
  return kept;
}

/* Passes 2 and 3: sort the kept samples by cell (counting sort: each thread counts its contiguous share of the
 * samples, then writes them at its own offsets, so the order within a cell is the samples' order) into
 * samples_t (dim rows of `kept`) and lw (logw - top), then summarise the non-empty cells: start (ncells + 1
 * offsets), log of the summed weight (relative to top; terms below e^-700 of the cell's largest count as
 * e^-700, which only raises the bounds) and bounding box box[k * 2 dim + 2 d + {0, 1}]. scratch: cells + 1 int64
 * (cells = product of shape), left holding each cell's compact index (-1: empty); cell: hi - lo int64; hist:
 * threads * cells int64. Returns the non-empty cells. */
#define CYFES_DEFINE_CELLS(T, SUFFIX)                                                                         \
  static int64_t cyfes_cells_fill_##SUFFIX(const double *x, const double *logw, int64_t lo, int64_t hi,       \
                                           int dim, const double *factor, double top,                         \
                                           const cyfes_cell_grid *cg, int64_t kept, int64_t *scratch,         \
                                           int64_t *cell, T *samples_t, T *lw, int64_t *start, double *lmass, \
                                           double *box, int64_t *hist, int threads) {                         \
    int64_t cells = 1, ncells = 0;                                                                            \
    for (int d = 0; d < dim; ++d) cells *= cg->shape[d];                                                      \
    memset(hist, 0, (size_t)threads * (size_t)cells * sizeof(int64_t));                                       \
    _Pragma("omp parallel num_threads(threads)") {                                                            \
      const int t = omp_get_thread_num(), nt = omp_get_num_threads();                                         \
      const int64_t a = lo + (hi - lo) * t / nt, b = lo + (hi - lo) * (t + 1) / nt;                          \
      int64_t *h = hist + (int64_t)t * cells;                                                                 \
      double u[CYFES_MAX_DIM];                                                                                \
      for (int64_t j = a; j < b; ++j) {                                                                       \
        if (!cyfes_finite(logw[j])) {                                                                         \
          cell[j - lo] = -1;                                                                                  \
          continue;                                                                                           \
        }                                                                                                     \
        for (int d = 0; d < dim; ++d) u[d] = cyfes_scaled(x[j * dim + d], factor[d], cg->period[d]);         \
        cell[j - lo] = cyfes_cell_of(cg, u);                                                                  \
        h[cell[j - lo]]++;                                                                                    \
      }                                                                                                       \
      _Pragma("omp barrier") _Pragma("omp single") { /* offsets: cell by cell, thread by thread */           \
        int64_t run = 0;                                                                                      \
        for (int64_t c = 0; c < cells; ++c) {                                                                 \
          for (int s = 0; s < nt; ++s) {                                                                      \
            const int64_t count = hist[(int64_t)s * cells + c];                                               \
            hist[(int64_t)s * cells + c] = run;                                                               \
            run += count;                                                                                     \
          }                                                                                                   \
          scratch[c] = run; /* the end of cell c */                                                           \
        }                                                                                                     \
        /* compact indices of the non-empty cells and their sample ranges */                                 \
        int64_t begin = 0;                                                                                    \
        for (int64_t c = 0; c < cells; ++c) {                                                                 \
          const int64_t end = scratch[c];                                                                     \
          scratch[c] = end == begin ? -1 : ncells;                                                            \
          if (end != begin) start[ncells++] = begin;                                                          \
          begin = end;                                                                                        \
        }                                                                                                     \
        start[ncells] = begin;                                                                                \
      }                                                                                                       \
      for (int64_t j = a; j < b; ++j) {                                                                       \
        const int64_t c = cell[j - lo];                                                                       \
        if (c < 0) continue;                                                                                  \
        const int64_t at = h[c]++;                                                                            \
        for (int d = 0; d < dim; ++d)                                                                         \
          samples_t[d * kept + at] = (T)cyfes_scaled(x[j * dim + d], factor[d], cg->period[d]);              \
        lw[at] = (T)(logw[j] - top);                                                                          \
      }                                                                                                       \
      _Pragma("omp barrier") _Pragma("omp for schedule(dynamic, 64)") for (int64_t k = 0; k < ncells; ++k) {  \
        const int64_t begin = start[k], end = start[k + 1];                                                   \
        double m = -DBL_MAX, s = 0;                                                                           \
        double *bx = box + k * 2 * dim;                                                                       \
        for (int64_t j = begin; j < end; ++j) m = (double)lw[j] > m ? (double)lw[j] : m;                      \
        _Pragma("omp simd reduction(+ : s)") for (int64_t j = begin; j < end; ++j) {                          \
          const double e = (double)lw[j] - m;                                                                 \
          s += cyfes_vexp_f64(e > -700.0 ? e : -700.0);                                                       \
        }                                                                                                     \
        for (int d = 0; d < dim; ++d) {                                                                       \
          const T *v = samples_t + d * kept;                                                                  \
          double l = DBL_MAX, u2 = -DBL_MAX;                                                                  \
          for (int64_t j = begin; j < end; ++j) {                                                             \
            l = (double)v[j] < l ? (double)v[j] : l;                                                          \
            u2 = (double)v[j] > u2 ? (double)v[j] : u2;                                                       \
          }                                                                                                   \
          bx[2 * d] = l;                                                                                      \
          bx[2 * d + 1] = u2;                                                                                 \
        }                                                                                                     \
        lmass[k] = m + cyfes_libm_log(s);                                                                     \
      }                                                                                                       \
    }                                                                                                         \
    return ncells;                                                                                            \
  }

CYFES_DEFINE_CELLS(double, f64)
CYFES_DEFINE_CELLS(float, f32)

/* Smallest and largest squared distance between a cell's box and a tile's box, nearest image on periodic CVs. */
static inline void cyfes_box_d2(const double *cbox, const double *tlo, const double *thi, const double *period,
                                int dim, double *d2min, double *d2max, double *gaps) {
  double lo2 = 0, hi2 = 0;
  for (int d = 0; d < dim; ++d) {
    const double a = cbox[2 * d], b = cbox[2 * d + 1], c = tlo[d], e = thi[d], p = period[d];
    double gap, far;
    if (p > 0) {
      gap = DBL_MAX;
      far = DBL_MAX;
      for (int k = -1; k <= 1; ++k) {
        double sa = a + k * p, sb = b + k * p;
        double g = c - sb > sa - e ? c - sb : sa - e;
        g = g > 0 ? g : 0;
        double f = e - sa > sb - c ? e - sa : sb - c;
        gap = g < gap ? g : gap;
        far = f < far ? f : far;
      }
      far = far < 0.5 * p ? far : 0.5 * p;
    } else {
      gap = c - b > a - e ? c - b : a - e;
      gap = gap > 0 ? gap : 0;
      far = e - a > b - c ? e - a : b - c;
    }
    lo2 += gap * gap;
    hi2 += far * far;
    if (gaps) gaps[d] = gap;
  }
  *d2min = lo2;
  *d2max = hi2;
}

/* The non-empty cells (compact ids, via dense[cell id]) whose index box lies within `reach` of the tile box
 * [tlo, thi], into wl; returns how many. *near: a lower bound of the distance from the tile box to any sample
 * outside them (DBL_MAX when the window covers every cell). */
static int64_t cyfes_window(const cyfes_cell_grid *cg, const int64_t *dense, int64_t ncells, const double *tlo,
                            const double *thi, double reach, int64_t *wl, double *near) {
  const int dim = cg->dim;
  int64_t lo[CYFES_MAX_DIM], cnt[CYFES_MAX_DIM], idx[CYFES_MAX_DIM];
  double nr = DBL_MAX;
  int64_t total = 1;
  for (int d = 0; d < dim; ++d) {
    const double w = cg->width[d], o = cg->origin[d];
    const int64_t k = cg->shape[d];
    double fa = floor((tlo[d] - reach - o) / w), fb = floor((thi[d] + reach - o) / w);
    if (cg->period[d] > 0 && fb - fa + 1 < (double)k) {
      lo[d] = (int64_t)fa;
      cnt[d] = (int64_t)(fb - fa) + 1;
      double gl = tlo[d] - (o + fa * w), gh = o + (fb + 1) * w - thi[d];
      nr = gl < nr ? gl : nr;
      nr = gh < nr ? gh : nr;
    } else if (cg->period[d] > 0) {
      lo[d] = 0;
      cnt[d] = k;
    } else {
      int64_t a = fa < 0 ? 0 : (fa > (double)(k - 1) ? k - 1 : (int64_t)fa);
      int64_t b = fb > (double)(k - 1) ? k - 1 : (fb < (double)a ? a : (int64_t)fb);
      if (a > 0) {
        double g = tlo[d] - (o + a * w);
        nr = g < nr ? g : nr;
      }
      if (b < k - 1) {
        double g = o + (b + 1) * w - thi[d];
        nr = g < nr ? g : nr;
      }
      lo[d] = a;
      cnt[d] = b - a + 1;
    }
    total *= cnt[d];
  }
  if (nr == DBL_MAX || total >= ncells * 2) { /* everything (or about as many): every cell, no far bound */
    for (int64_t c = 0; c < ncells; ++c) wl[c] = c;
    *near = DBL_MAX;
    return ncells;
  }
  *near = nr > 0 ? nr * (1 - 1e-12) : 0;
  int64_t found = 0;
  for (int d = 0; d < dim; ++d) idx[d] = 0;
  for (int64_t t = 0; t < total; ++t) {
    int64_t id = 0;
    for (int d = 0; d < dim; ++d) {
      int64_t i = lo[d] + idx[d], k = cg->shape[d];
      i = ((i % k) + k) % k; /* periodic windows wrap; others are inside already */
      id = id * k + i;
    }
    if (dense[id] >= 0) wl[found++] = dense[id];
    for (int d = dim - 1; d >= 0; --d) { /* next index of the window, last CV fastest */
      if (++idx[d] < cnt[d]) break;
      idx[d] = 0;
    }
  }
  return found;
}

static inline void cyfes_lse_add(double *m, double *s, double x) {
  if (x <= *m) {
    *s += cyfes_libm_exp(x - *m);
  } else {
    *s = *s * cyfes_libm_exp(*m - x) + 1.0;
    *m = x;
  }
}

/* Per CV how one cell's samples meet the points g0 + i h (i < t) of a regular tile, for the separable sums:
 * `gap` (smallest cell-tile distance) and, when `rec`, the image shift of the cell that is the nearest image for
 * every pair (periodic CVs) and the factor for the recurrence of cyfes_sep_block. rec needs every pair's exponent
 * gap^2 - dist^2 within [CYFES_SEP_FLOOR, 0]: no clamping, and every ratio of neighbouring factors stays normal. */
typedef struct {
  double g0, h, shift, gap, c;
  int rec;
} cyfes_sep_axis;

static inline void cyfes_sep_plan(const double *cbox, const double *const *axis, const int64_t *t,
                                  const double *pd, const double *gap, int dim, cyfes_sep_axis *plan) {
  for (int d = 0; d < dim; ++d) {
    const double p = pd[d], g0 = axis[d][0];
    double h = t[d] > 1 ? axis[d][1] - axis[d][0] : 0;
    if (p > 0) h -= p * rint(h / p); /* a tile can straddle the wrap: its points are g0 + i h unwrapped */
    const double e = g0 + (double)(t[d] - 1) * h, lo = e < g0 ? e : g0, hi = e < g0 ? g0 : e;
    double a = cbox[2 * d], b = cbox[2 * d + 1], shift = 0;
    if (p > 0) shift = p * rint(((lo + hi) - (a + b)) / (2 * p));
    a += shift;
    b += shift;
    double gp = lo - b > a - hi ? lo - b : a - hi, far = hi - a > b - lo ? hi - a : b - lo;
    gp = gp > 0 ? gp : 0;
    cyfes_sep_axis *q = plan + d;
    q->rec = far * far - gp * gp <= -CYFES_SEP_FLOOR && (p <= 0 || far <= 0.5 * p);
    q->g0 = g0;
    q->h = h;
    q->shift = shift;
    q->gap = q->rec ? gp : gap[d];
    q->c = cyfes_libm_exp(-2 * h * h);
  }
}

/* The multiply-adds of a 2-CV separable block when the tile is K points along CV 1, a row of CV 0 at a time: the
 * row's K lane-vector sums stay in registers while the block's samples stream past (a load of e1 per lane-vector
 * of pairs instead of a load and a store per pair vector), then are added to S as the general loop adds them.
 * 2-D 1e6 x 200^2, sigma 0.1, 2 cores, 8 x 8 tiles: the surface took 0.50 s before, 0.24-0.28 s after (two rows at
 * a time measured the same within the noise). */
#define CYFES_DEFINE_MADD2(K)                                                                                         \
  CYFES_INLINE void cyfes_sep_madd2_##K(const double *a, const double *e0, const double *e1, int64_t t0,              \
                                        int64_t nl, double *S) {                                                      \
    for (int64_t i = 0; i < t0; ++i) {                                                                                \
      const double *row = e0 + i * CYFES_SEP_B;                                                                       \
      double acc[K][CYFES_LANES];                                                                                     \
      for (int k = 0; k < K; ++k)                                                                                     \
        for (int q = 0; q < CYFES_LANES; ++q) acc[k][q] = 0;                                                          \
      for (int64_t j0 = 0; j0 < nl; j0 += CYFES_LANES) {                                                              \
        double w[CYFES_LANES];                                                                                        \
        _Pragma("omp simd") for (int q = 0; q < CYFES_LANES; ++q) w[q] = a[j0 + q] * row[j0 + q];                     \
        for (int k = 0; k < K; ++k) {                                                                                 \
          const double *ek = e1 + k * CYFES_SEP_B + j0;                                                               \
          _Pragma("omp simd") for (int q = 0; q < CYFES_LANES; ++q) acc[k][q] += w[q] * ek[q];                        \
        }                                                                                                             \
      }                                                                                                               \
      for (int k = 0; k < K; ++k) {                                                                                   \
        double *sp = S + (i * K + k) * CYFES_LANES;                                                                   \
        _Pragma("omp simd") for (int q = 0; q < CYFES_LANES; ++q) sp[q] += acc[k][q];                                 \
      }                                                                                                               \
    }                                                                                                                 \
  }
CYFES_DEFINE_MADD2(1)
CYFES_DEFINE_MADD2(2)
CYFES_DEFINE_MADD2(3)
CYFES_DEFINE_MADD2(4)
CYFES_DEFINE_MADD2(5)
CYFES_DEFINE_MADD2(6)
CYFES_DEFINE_MADD2(7)
CYFES_DEFINE_MADD2(8)
CYFES_DEFINE_MADD2(9)
CYFES_DEFINE_MADD2(10)
CYFES_DEFINE_MADD2(11)
CYFES_DEFINE_MADD2(12)
CYFES_DEFINE_MADD2(13)
CYFES_DEFINE_MADD2(14)
CYFES_DEFINE_MADD2(15)
CYFES_DEFINE_MADD2(16)

/* cyfes_sep_madd2_K for t1 = K: 1 when done, 0 for a width without a layout (past CYFES_SEP_T: the general loop). */
CYFES_INLINE int cyfes_sep_madd2(const double *a, const double *e0, const double *e1, int64_t t0, int64_t t1,
                                 int64_t nl, double *S) {
  switch (t1) {
    case 1: cyfes_sep_madd2_1(a, e0, e1, t0, nl, S); return 1;
    case 2: cyfes_sep_madd2_2(a, e0, e1, t0, nl, S); return 1;
    case 3: cyfes_sep_madd2_3(a, e0, e1, t0, nl, S); return 1;
    case 4: cyfes_sep_madd2_4(a, e0, e1, t0, nl, S); return 1;
    case 5: cyfes_sep_madd2_5(a, e0, e1, t0, nl, S); return 1;
    case 6: cyfes_sep_madd2_6(a, e0, e1, t0, nl, S); return 1;
    case 7: cyfes_sep_madd2_7(a, e0, e1, t0, nl, S); return 1;
    case 8: cyfes_sep_madd2_8(a, e0, e1, t0, nl, S); return 1;
    case 9: cyfes_sep_madd2_9(a, e0, e1, t0, nl, S); return 1;
    case 10: cyfes_sep_madd2_10(a, e0, e1, t0, nl, S); return 1;
    case 11: cyfes_sep_madd2_11(a, e0, e1, t0, nl, S); return 1;
    case 12: cyfes_sep_madd2_12(a, e0, e1, t0, nl, S); return 1;
    case 13: cyfes_sep_madd2_13(a, e0, e1, t0, nl, S); return 1;
    case 14: cyfes_sep_madd2_14(a, e0, e1, t0, nl, S); return 1;
    case 15: cyfes_sep_madd2_15(a, e0, e1, t0, nl, S); return 1;
    case 16: cyfes_sep_madd2_16(a, e0, e1, t0, nl, S); return 1;
    default: return 0;
  }
}

/* The result of one tile: the bound achieved (kT) and the pairs summed. */
typedef struct {
  double bound;
  int64_t pairs;
} cyfes_tile_result;

#define CYFES_DEFINE_TILE(T, SUFFIX)                                                                          \
  /* Sum samples [b, e) into the running (m, dsum) of `count` points (as cyfes_points_##SUFFIX does). */      \
  CYFES_INLINE void cyfes_range_##SUFFIX(const T *samples_t, const T *lw, int64_t n, int dim, const T *g0,   \
                                         int64_t count, const T *per, int periodic, int64_t b, int64_t e,    \
                                         T *m, double *dsum, int *started) {                                  \
    const T *s[CYFES_MAX_DIM];                                                                                \
    for (int d = 0; d < dim; ++d) s[d] = samples_t + (int64_t)d * n;                                          \
    if (!*started) {                                                                                          \
      for (int64_t p = 0; p < count; ++p) {                                                                   \
        m[p] = cyfes_exponent_##SUFFIX(s, lw, b, dim, g0 + p * dim, per);                                     \
        dsum[p] = 0;                                                                                          \
      }                                                                                                       \
      *started = 1;                                                                                           \
    }                                                                                                         \
    for (int64_t j0 = b; j0 < e; j0 += CYFES_BLOCK) {                                                         \
      const int64_t nb = e - j0 < CYFES_BLOCK ? e - j0 : CYFES_BLOCK;                                         \
      const T *sb[CYFES_MAX_DIM];                                                                             \
      for (int d = 0; d < dim; ++d) sb[d] = s[d] + j0;                                                        \
      for (int64_t p = 0; p < count; ++p) {                                                                   \
        const T *g = g0 + p * dim;                                                                            \
        T bsum = cyfes_block_sum_##SUFFIX(sb, lw + j0, nb, dim, g, per, periodic, m[p]);                      \
        if (!(bsum < (T)CYFES_REDO)) {                                                                        \
          T top = cyfes_exponent_##SUFFIX(sb, lw + j0, 0, dim, g, per);                                       \
          for (int64_t j = 1; j < nb; ++j) {                                                                  \
            T x = cyfes_exponent_##SUFFIX(sb, lw + j0, j, dim, g, per);                                       \
            top = x > top ? x : top;                                                                          \
          }                                                                                                   \
          dsum[p] *= cyfes_libm_exp((double)m[p] - (double)top);                                                         \
          m[p] = top;                                                                                         \
          bsum = cyfes_block_sum_##SUFFIX(sb, lw + j0, nb, dim, g, per, periodic, m[p]);                      \
        }                                                                                                     \
        dsum[p] += (double)bsum;                                                                              \
      }                                                                                                       \
    }                                                                                                         \
  }                                                                                                           \
  /* Sum the cells whose bucket lies in [from, to), adjacent cells merged into one sample range. */          \
  CYFES_INLINE int64_t cyfes_cells_sum_##SUFFIX(const T *samples_t, const T *lw, int64_t n, int dim,         \
                                                const T *g0, int64_t count, const T *per, int periodic,      \
                                                int64_t nlist, const int64_t *list, const int64_t *start,    \
                                                const int16_t *bucket, int from, int to, T *m, double *dsum,  \
                                                int *started) {                                               \
    int64_t summed = 0, b = -1, e = -1;                                                                       \
    for (int64_t i = 0; i <= nlist; ++i) {                                                                    \
      int take = i < nlist && bucket[i] >= from && bucket[i] < to;                                            \
      const int64_t k = take ? list[i] : 0;                                                                   \
      if (take && start[k] == e) {                                                                            \
        e = start[k + 1];                                                                                     \
        continue;                                                                                             \
      }                                                                                                       \
      if (e > b && b >= 0) {                                                                                  \
        cyfes_range_##SUFFIX(samples_t, lw, n, dim, g0, count, per, periodic, b, e, m, dsum, started);        \
        summed += e - b;                                                                                      \
      }                                                                                                       \
      b = take ? start[k] : -1;                                                                               \
      e = take ? start[k + 1] : -1;                                                                           \
    }                                                                                                         \
    return summed;                                                                                            \
  }                                                                                                           \
  /* Separable sums on a regular tile (2 or 3 CVs): a pair's term exp(lw - u0 - sum_d dist_d^2) is                \
   * a_j * prod_d e_d[i_d][j] with a_j = exp(lw_j - u0 - gap^2) <= 1 and e_d = exp(gap_d^2 - dist_d^2) <= 1          \
   * (gap: the cell-tile distance, so nothing overflows): per sample and block, exps per CV, then the tile's          \
   * points are multiply-adds. Per CV, the factors of the points g0 + i h follow a recurrence (two exps per sample,   \
   * not t): with x = g0 - s, e[i+1] = e[i] r[i], r[0] = exp(-h (2 x + h)), r[i+1] = r[i] exp(-2 h^2); where that     \
   * cannot be done without clamping (plan.rec = 0) every factor is an exp, its argument clamped at CYFES_SEP_FLOOR. */\
  CYFES_INLINE void cyfes_sep_block_##SUFFIX(const T *samples_t, const T *lw, int64_t n, int dim, int64_t j0,        \
                                             int64_t nb, const double *const *axis, const int64_t *t,                 \
                                             const double *pd, const cyfes_sep_axis *plan, double u0, double *S) {    \
    double e[3][CYFES_SEP_T * CYFES_SEP_B], a[CYFES_SEP_B], w[CYFES_SEP_B];                                           \
    double g2 = 0;                                                                                                    \
    for (int d = 0; d < dim; ++d) {                                                                                   \
      const T *s = samples_t + (int64_t)d * n + j0;                                                                   \
      const double p = pd[d], gg = plan[d].gap * plan[d].gap;                                                         \
      g2 += gg;                                                                                                       \
      if (plan[d].rec) {                                                                                              \
        const double g0 = plan[d].g0 - plan[d].shift, h = plan[d].h, c = plan[d].c;                                   \
        double *r = w; /* w is free until the multiply-adds */                                                        \
        _Pragma("omp simd") for (int64_t j = 0; j < nb; ++j) {                                                        \
          const double x = g0 - (double)s[j];                                                                         \
          e[d][j] = cyfes_vexp_f64(gg - x * x);                                                                       \
          r[j] = cyfes_vexp_f64(-h * (2 * x + h));                                                                    \
        }                                                                                                             \
        for (int64_t i = 1; i < t[d]; ++i) {                                                                          \
          double *ed = e[d] + i * CYFES_SEP_B;                                                                        \
          const double *ep = ed - CYFES_SEP_B;                                                                        \
          _Pragma("omp simd") for (int64_t j = 0; j < nb; ++j) {                                                      \
            ed[j] = ep[j] * r[j];                                                                                     \
            r[j] *= c;                                                                                                \
          }                                                                                                           \
        }                                                                                                             \
        continue;                                                                                                     \
      }                                                                                                               \
      for (int64_t i = 0; i < t[d]; ++i) {                                                                            \
        const double g = axis[d][i];                                                                                  \
        double *ed = e[d] + i * CYFES_SEP_B;                                                                          \
        if (p > 0) {                                                                                                  \
          _Pragma("omp simd") for (int64_t j = 0; j < nb; ++j) {                                                      \
            double dx = fabs(g - (double)s[j]);                                                                       \
            dx = dx < p - dx ? dx : p - dx;                                                                           \
            double x = gg - dx * dx;                                                                                  \
            ed[j] = cyfes_vexp_f64(x > CYFES_SEP_FLOOR ? x : CYFES_SEP_FLOOR);                                        \
          }                                                                                                           \
        } else {                                                                                                      \
          _Pragma("omp simd") for (int64_t j = 0; j < nb; ++j) {                                                      \
            double dx = g - (double)s[j];                                                                             \
            double x = gg - dx * dx;                                                                                  \
            ed[j] = cyfes_vexp_f64(x > CYFES_SEP_FLOOR ? x : CYFES_SEP_FLOOR);                                        \
          }                                                                                                           \
        }                                                                                                             \
      }                                                                                                               \
    }                                                                                                                 \
    _Pragma("omp simd") for (int64_t j = 0; j < nb; ++j) {                                                            \
      double x = (double)lw[j0 + j] - u0 - g2;                                                                        \
      a[j] = cyfes_vexp_f64(x > CYFES_SEP_FLOOR ? x : CYFES_SEP_FLOOR);                                               \
    }                                                                                                                 \
    /* the block padded to whole lanes with zero terms; each point keeps CYFES_LANES partial sums (S[p * LANES + l],  \
     * added up once per tile), so no horizontal reduction per point and block */                                     \
    const int64_t t1 = t[1], t2 = dim == 3 ? t[2] : 1, nl = (nb + CYFES_LANES - 1) / CYFES_LANES * CYFES_LANES;       \
    for (int64_t j = nb; j < nl; ++j) a[j] = 0;                                                                       \
    for (int d = 0; d < dim; ++d)                                                                                     \
      for (int64_t i = 0; i < t[d]; ++i)                                                                              \
        for (int64_t j = nb; j < nl; ++j) e[d][i * CYFES_SEP_B + j] = 0;                                              \
    if (dim == 2 && cyfes_sep_madd2(a, e[0], e[1], t[0], t1, nl, S)) return;                                           \
    for (int64_t i = 0; i < t[0]; ++i) {                                                                              \
      const double *e0 = e[0] + i * CYFES_SEP_B;                                                                      \
      for (int64_t k = 0; k < t1; ++k) {                                                                              \
        const double *e1 = e[1] + k * CYFES_SEP_B;                                                                    \
        _Pragma("omp simd") for (int64_t j = 0; j < nl; ++j) w[j] = a[j] * e0[j] * e1[j];                             \
        for (int64_t l = 0; l < t2; ++l) {                                                                            \
          double acc[CYFES_LANES] = {0};                                                                              \
          if (dim == 3) {                                                                                             \
            const double *e2 = e[2] + l * CYFES_SEP_B;                                                                \
            for (int64_t j0 = 0; j0 < nl; j0 += CYFES_LANES)                                                          \
              _Pragma("omp simd") for (int q = 0; q < CYFES_LANES; ++q) acc[q] += w[j0 + q] * e2[j0 + q];             \
          } else {                                                                                                    \
            for (int64_t j0 = 0; j0 < nl; j0 += CYFES_LANES)                                                          \
              _Pragma("omp simd") for (int q = 0; q < CYFES_LANES; ++q) acc[q] += w[j0 + q];                          \
          }                                                                                                           \
          double *sp = S + ((i * t1 + k) * t2 + l) * CYFES_LANES;                                                     \
          _Pragma("omp simd") for (int q = 0; q < CYFES_LANES; ++q) sp[q] += acc[q];                                  \
        }                                                                                                             \
      }                                                                                                               \
    }                                                                                                                 \
  }                                                                                                                   \
  /* The cells with bucket in [from, to), separably; returns the samples summed. */                                   \
  CYFES_INLINE int64_t cyfes_sep_cells_##SUFFIX(const T *samples_t, const T *lw, int64_t n, int dim,                 \
                                                const double *const *axis, const int64_t *t, const double *pd,        \
                                                const double *tlo, const double *thi, int64_t nlist,                  \
                                                const int64_t *list, const int64_t *start, const double *box,         \
                                                const int16_t *bucket, int from, int to, double u0, double *S) {      \
    int64_t summed = 0;                                                                                               \
    for (int64_t i = 0; i < nlist; ++i) {                                                                             \
      if (bucket[i] < from || bucket[i] >= to) continue;                                                              \
      const int64_t k = list[i];                                                                                      \
      double gap[CYFES_MAX_DIM], lo2, hi2;                                                                            \
      cyfes_sep_axis plan[3];                                                                                         \
      cyfes_box_d2(box + k * 2 * dim, tlo, thi, pd, dim, &lo2, &hi2, gap);                                            \
      cyfes_sep_plan(box + k * 2 * dim, axis, t, pd, gap, dim, plan);                                                 \
      for (int64_t j0 = start[k]; j0 < start[k + 1]; j0 += CYFES_SEP_B) {                                             \
        const int64_t nb = start[k + 1] - j0 < CYFES_SEP_B ? start[k + 1] - j0 : CYFES_SEP_B;                         \
        cyfes_sep_block_##SUFFIX(samples_t, lw, n, dim, j0, nb, axis, t, pd, plan, u0, S);                            \
      }                                                                                                               \
      summed += start[k + 1] - start[k];                                                                              \
    }                                                                                                                 \
    return summed;                                                                                                    \
  }                                                                                                                   \
  /* Choose and sum cells for `count` points: cells by bucket (1-nat buckets of ub below u0) until the neglected      \
   * bound R (the cells left out, plus lfar for the samples outside the window) is at most tol times the smallest     \
   * included sum. ex: nw doubles of scratch. *widen = 1: lfar was not negligible (nothing else is valid then). */    \
  CYFES_INLINE cyfes_tile_result cyfes_cut_##SUFFIX(                                                                  \
      const T *samples_t, const T *lw, int64_t n, int dim, const T *per, const int64_t *start, const double *box,     \
      const double *pd, const T *g0, int64_t count, int sep, const double *const *axis, const int64_t *tshape,        \
      const double *tlo, const double *thi, int64_t nw, const int64_t *wl, const double *ub, int16_t *bucket,         \
      double *ex, double u0, double est, double lfar, double ltol, double *out, double *smin_out, int *widen) {       \
    cyfes_tile_result res = {0, 0};                                                                                   \
    int periodic = 0;                                                                                                 \
    for (int d = 0; d < dim; ++d) periodic |= per[d] > 0;                                                             \
    /* bsum[b]: the bound of the cells from bucket b on, relative to u0; arguments clamped at -700 (only ever         \
     * raises the bound) */                                                                                           \
    double bsum[CYFES_BUCKETS + 1];                                                                                   \
    memset(bsum, 0, sizeof bsum);                                                                                     \
    _Pragma("omp simd") for (int64_t k = 0; k < nw; ++k) {                                                            \
      const double x = ub[k] - u0;                                                                                    \
      ex[k] = cyfes_vexp_f64(x > -700.0 ? x : -700.0);                                                                \
    }                                                                                                                 \
    _Pragma("omp simd") for (int64_t k = 0; k < nw; ++k) {                                                            \
      const double below = u0 - ub[k];                                                                                \
      bucket[k] = (int16_t)(below < CYFES_BUCKETS - 1 ? below : CYFES_BUCKETS - 1);                                   \
    }                                                                                                                 \
    for (int64_t k = 0; k < nw; ++k) bsum[bucket[k]] += ex[k];                                                        \
    for (int b = CYFES_BUCKETS - 1; b >= 0; --b) bsum[b] += bsum[b + 1]; /* suffix sums: mass from b on */            \
    /* first cut from an estimate of the density; the check below decides */                                          \
    int cut = 1;                                                                                                      \
    while (cut < CYFES_BUCKETS && !(cyfes_libm_log(bsum[cut]) + u0 <= ltol + est)) ++cut;                             \
    T m[CYFES_TILE_MAX];                                                                                              \
    double dsum[CYFES_TILE_MAX], S[CYFES_TILE_MAX * CYFES_LANES];                                                     \
    int started = 0, from = 0, fails = 0;                                                                             \
    *widen = 0;                                                                                                       \
    if (sep) memset(S, 0, sizeof S);                                                                                  \
    for (;;) { /* ends: a passed check, or all cells taken (after two failed checks or a full first cut) */           \
      int64_t summed = sep ? cyfes_sep_cells_##SUFFIX(samples_t, lw, n, dim, axis, tshape, pd, tlo, thi, nw, wl,      \
                                                      start, box, bucket, from, cut, u0, S)                           \
                           : cyfes_cells_sum_##SUFFIX(samples_t, lw, n, dim, g0, count, per, periodic, nw, wl, start, \
                                                      bucket, from, cut, m, dsum, &started);                          \
      res.pairs += count * summed;                                                                                    \
      double smin = DBL_MAX;                                                                                          \
      for (int64_t p = 0; p < count; ++p) {                                                                           \
        double sp = 0;                                                                                                \
        if (sep)                                                                                                      \
          for (int q = 0; q < CYFES_LANES; ++q) sp += S[p * CYFES_LANES + q];                                         \
        out[p] = sep ? u0 + cyfes_libm_log(sp) : (double)m[p] + cyfes_libm_log(dsum[p]);                              \
        smin = out[p] < smin ? out[p] : smin;                                                                         \
      }                                                                                                               \
      if (sep && !(smin > u0 - CYFES_SEP_RANGE)) { /* a point far below the tile's bound: sum again per point */      \
        sep = 0;                                                                                                      \
        from = 0;                                                                                                     \
        continue;                                                                                                     \
      }                                                                                                               \
      double lr = cut < CYFES_BUCKETS && bsum[cut] > 0 ? u0 + cyfes_libm_log(bsum[cut]) : -DBL_MAX; /* left out */    \
      if (lfar > -DBL_MAX)                                                                                            \
        lr = lr == -DBL_MAX ? lfar : (lfar > lr ? lfar + log1p(cyfes_libm_exp(lr - lfar))                             \
                                                : lr + log1p(cyfes_libm_exp(lfar - lr)));                             \
      *smin_out = smin;                                                                                               \
      if (lfar > ltol + smin) { /* the samples outside the window could matter after all */                           \
        *widen = 1;                                                                                                   \
        return res;                                                                                                   \
      }                                                                                                               \
      if (lr <= ltol + smin || cut > CYFES_BUCKETS - 1) {                                                             \
        res.bound = lr > -DBL_MAX ? log1p(cyfes_libm_exp(lr - smin)) : 0;                                             \
        return res;                                                                                                   \
      }                                                                                                               \
      /* next cut from the included minimum, a true lower bound of every point's density */                           \
      from = cut;                                                                                                     \
      ++cut;                                                                                                          \
      while (cut < CYFES_BUCKETS && !(cyfes_libm_log(bsum[cut]) + u0 <= ltol + smin)) ++cut;                          \
      if (++fails >= 2) cut = CYFES_BUCKETS; /* rounding kept failing the check: take everything */                   \
    }                                                                                                                 \
  }                                                                                                                   \
  /* A steep tile (its density changes by more than CYFES_STEEP nats over it, so one cut for all its points would     \
   * be set by the lowest and include far too much for the others), one point at a time: each point's cell bounds     \
   * from its own distance to the cells of the tile's window (a subset of the tile's bounds' cells; lfar still holds). \
   * work: (2 dim + 3) nw doubles. *widen = 1: some point needs a wider window (the results are then invalid). */     \
  CYFES_INLINE cyfes_tile_result cyfes_steep_##SUFFIX(                                                                \
      const T *samples_t, const T *lw, int64_t n, int dim, const T *per, const int64_t *start, const double *lmass,   \
      const double *box, const double *pd, const T *g0, int64_t count, int64_t nw, const int64_t *wl,                 \
      int16_t *bucket, double *work, double gap, double lfar, double ltol, double *out, int *widen) {                 \
    cyfes_tile_result res = {0, 0};                                                                                   \
    double *lo = work, *hw = work + dim * nw, *lm = work + 2 * dim * nw, *ubp = lm + nw, *ex = ubp + nw;              \
    for (int64_t i = 0; i < nw; ++i) { /* the window's cells as centre and half-width per CV */                       \
      const int64_t k = wl[i];                                                                                        \
      lm[i] = lmass[k];                                                                                               \
      for (int d = 0; d < dim; ++d) {                                                                                 \
        lo[d * nw + i] = 0.5 * (box[k * 2 * dim + 2 * d] + box[k * 2 * dim + 2 * d + 1]);                             \
        hw[d * nw + i] = 0.5 * (box[k * 2 * dim + 2 * d + 1] - box[k * 2 * dim + 2 * d]);                             \
      }                                                                                                               \
    }                                                                                                                 \
    for (int64_t p = 0; p < count; ++p) {                                                                             \
      const T *g = g0 + p * dim;                                                                                      \
      memcpy(ubp, lm, (size_t)nw * sizeof(double));                                                                   \
      for (int d = 0; d < dim; ++d) { /* nearest-image gap between the point and each cell's box */                   \
        const double gd = (double)g[d], P = pd[d];                                                                    \
        const double *c = lo + d * nw, *h = hw + d * nw;                                                              \
        _Pragma("omp simd") for (int64_t i = 0; i < nw; ++i) {                                                        \
          double dl = fabs(gd - c[i]);                                                                                \
          dl = P > 0 && P - dl < dl ? P - dl : dl;                                                                    \
          dl = dl - h[i] > 0 ? dl - h[i] : 0;                                                                         \
          ubp[i] -= dl * dl;                                                                                          \
        }                                                                                                             \
      }                                                                                                               \
      double u0 = -DBL_MAX, smin;                                                                                     \
      for (int64_t i = 0; i < nw; ++i) u0 = ubp[i] > u0 ? ubp[i] : u0;                                                \
      cyfes_tile_result r = cyfes_cut_##SUFFIX(samples_t, lw, n, dim, per, start, box, pd, g, 1, 0, NULL, NULL, NULL, \
                                               NULL, nw, wl, ubp, bucket, ex, u0, u0 - gap, lfar, ltol, out + p,      \
                                               &smin, widen);                                                         \
      res.pairs += r.pairs;                                                                                           \
      if (*widen) return res;                                                                                         \
      res.bound = r.bound > res.bound ? r.bound : res.bound;                                                          \
    }                                                                                                                 \
    return res;                                                                                                       \
  }                                                                                                                   \
  /* One tile of `count` points g0 (pre-scaled, wrapped): out[p] = log of the truncated sum. tshape: the tile's       \
   * extent per CV when it is a box of a regular grid (points in matrix order), else NULL. ub, bucket, wl: ncells     \
   * entries of scratch, work: (2 dim + 3) ncells. */                                                                 \
  CYFES_CLONES static cyfes_tile_result cyfes_tile_##SUFFIX(                                                          \
      const T *samples_t, const T *lw, int64_t n, int dim, const T *per, int64_t ncells,                              \
      const int64_t *start, const double *lmass, const double *box, const cyfes_cell_grid *cg, const int64_t *dense,  \
      double lall, double reach, double gap, const T *g0, int64_t count, const int64_t *tshape, double tol,           \
      double *ub, int16_t *bucket, int64_t *wl, double *work, double *out) {                                          \
    double tlo[CYFES_MAX_DIM], thi[CYFES_MAX_DIM], pd[CYFES_MAX_DIM];                                                 \
    for (int d = 0; d < dim; ++d) {                                                                                   \
      pd[d] = (double)per[d];                                                                                         \
      tlo[d] = DBL_MAX;                                                                                               \
      thi[d] = -DBL_MAX;                                                                                              \
      for (int64_t p = 0; p < count; ++p) {                                                                           \
        double v = (double)g0[p * dim + d];                                                                           \
        tlo[d] = v < tlo[d] ? v : tlo[d];                                                                             \
        thi[d] = v > thi[d] ? v : thi[d];                                                                             \
      }                                                                                                               \
    }                                                                                                                 \
    /* separable when the tile is a box of 2 or 3 CVs: per-CV coordinates of the box */                               \
    int sep = tshape != NULL && (dim == 2 || dim == 3);                                                               \
    double axes[3][CYFES_SEP_T];                                                                                      \
    const double *axis[3] = {axes[0], axes[1], axes[2]};                                                              \
    if (sep) {                                                                                                        \
      int64_t stride = 1;                                                                                             \
      for (int d = dim - 1; d >= 0; --d) {                                                                            \
        if (tshape[d] > CYFES_SEP_T) sep = 0;                                                                         \
        for (int64_t i = 0; sep && i < tshape[d]; ++i) axes[d][i] = (double)g0[i * stride * dim + d];                 \
        stride *= tshape[d];                                                                                          \
      }                                                                                                               \
    }                                                                                                                 \
    /* the cells within `reach` of the tile; a sample outside is at least `near` away (all samples: exp(lall)) */     \
    const double ltol = cyfes_libm_log(tol) + cyfes_libm_log(CYFES_SAFETY);                                           \
    int64_t nw;                                                                                                       \
    double near, u0, lbm, lbs, *lb = work; /* lb: each cell's lower bound, until the cut needs work */                \
    for (;;) {                                                                                                        \
      nw = cyfes_window(cg, dense, ncells, tlo, thi, reach, wl, &near);                                               \
      u0 = -DBL_MAX, lbm = -DBL_MAX, lbs = 0;                                                                         \
      for (int64_t i = 0; i < nw; ++i) {                                                                              \
        double d2min, d2max;                                                                                          \
        cyfes_box_d2(box + wl[i] * 2 * dim, tlo, thi, pd, dim, &d2min, &d2max, NULL);                                 \
        ub[i] = lmass[wl[i]] - d2min;                                                                                 \
        lb[i] = lmass[wl[i]] - d2max;                                                                                 \
        u0 = ub[i] > u0 ? ub[i] : u0;                                                                                 \
        lbm = lb[i] > lbm ? lb[i] : lbm;                                                                              \
      }                                                                                                               \
      /* lower only guides the first cut and the choice of cyfes_steep (the checks use the included sums):            \
       * terms below e^-700 of the largest may be rounded up */                                                       \
      _Pragma("omp simd reduction(+ : lbs)") for (int64_t i = 0; i < nw; ++i) {                                       \
        const double x = lb[i] - lbm;                                                                                 \
        lbs += cyfes_vexp_f64(x > -700.0 ? x : -700.0);                                                               \
      }                                                                                                               \
      /* the far samples must be negligible against a first estimate of the density, else look further */             \
      const double want = lall - ltol - (nw ? u0 - gap : -DBL_MAX / 4);                                               \
      if (near == DBL_MAX || (nw && near * near >= want)) break;                                                      \
      reach = nw && want > 0 ? sqrt(want) + 2 * reach : 2 * reach + 1;                                                \
    }                                                                                                                 \
    const double lower = lbs > 0 ? lbm + cyfes_libm_log(lbs) : -DBL_MAX;                                                             \
    const double lfar = near == DBL_MAX ? -DBL_MAX : lall - near * near; /* bound of the samples outside */           \
    cyfes_tile_result res = {0, 0}, r;                                                                                \
    int widen = 0;                                                                                                    \
    double smin;                                                                                                      \
    if (count > 1 && u0 - lower > CYFES_STEEP && lfar <= ltol + lower - 1) {                                          \
      /* cells whose bound is below tol e^(lower - 2) / nw together change no point by more than e^-2 tol: left out   \
      * of every point's list up front (moved to the back of wl) and counted with the far samples */                  \
      const double thr = lower + ltol - 2 - cyfes_libm_log((double)nw);                                               \
      int64_t nc = 0;                                                                                                 \
      for (int64_t i = 0; i < nw; ++i)                                                                                \
        if (ub[i] >= thr) {                                                                                           \
          const int64_t w = wl[i];                                                                                    \
          const double u = ub[i];                                                                                     \
          wl[i] = wl[nc], ub[i] = ub[nc];                                                                             \
          wl[nc] = w, ub[nc++] = u;                                                                                   \
        }                                                                                                             \
      double lf = lfar;                                                                                               \
      if (nc < nw) {                                                                                                  \
        const double le = thr + cyfes_libm_log((double)(nw - nc));                                                    \
        lf = lf == -DBL_MAX ? le : (lf > le ? lf + log1p(cyfes_libm_exp(le - lf)) : le + log1p(cyfes_libm_exp(lf - le))); \
      }                                                                                                               \
      r = cyfes_steep_##SUFFIX(samples_t, lw, n, dim, per, start, lmass, box, pd, g0, count, nc, wl, bucket, work,    \
                               gap, lf, ltol, out, &widen);                                                           \
      if (!widen) return r;                                                                                           \
      res.pairs += r.pairs; /* a point needs a wider window: the tile as a whole below */                             \
    }                                                                                                                 \
    r = cyfes_cut_##SUFFIX(samples_t, lw, n, dim, per, start, box, pd, g0, count, sep, axis, tshape, tlo, thi, nw, wl, \
                           ub, bucket, work, u0, lower > u0 - gap ? lower : u0 - gap, lfar, ltol, out, &smin, &widen); \
    res.pairs += r.pairs;                                                                                             \
    if (!widen) {                                                                                                     \
      res.bound = r.bound;                                                                                            \
      return res;                                                                                                     \
    }                                                                                                                 \
    /* the samples outside the window could matter after all: widen it, start again */                                \
    r = cyfes_tile_##SUFFIX(samples_t, lw, n, dim, per, ncells, start, lmass, box, cg, dense, lall,                   \
                            sqrt(lall - ltol - smin) + 2 * reach, gap, g0, count, tshape, tol, ub, bucket, wl, work,  \
                            out);                                                                                     \
    r.pairs += res.pairs;                                                                                             \
    return r;                                                                                                         \
  }

CYFES_DEFINE_TILE(double, f64)
CYFES_DEFINE_TILE(float, f32)

#endif
