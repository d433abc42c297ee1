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
#include "cpu_kernel.h"

#include <float.h>
#include <omp.h>
#include <stdlib.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#define CYFES_TILE_MAX 256   /* grid points per tile */
#define CYFES_BUCKETS 160    /* 1-nat buckets of cell bounds below the tile's largest; the last takes the rest */
#define CYFES_SAFETY 0.999   /* margin on the check for rounding of the included sums */
#define CYFES_SEP_T 16       /* separable tiles: at most this many points per CV */
#define CYFES_SEP_B 128      /* separable tiles: samples per block of factors */
/* Separable factors are clamped at exp(CYFES_SEP_FLOOR): a product of up to 4 of them stays a normal double
 * (denormals cost ~100x per operation, and a shared library cannot set flush-to-zero). A clamped term adds at
 * most exp(u0 + FLOOR); tiles where some point's sum is below exp(u0 - CYFES_SEP_RANGE) are summed again by the
 * per-point kernel, so the clamping changes no sum by more than N exp(FLOOR + RANGE) relatively (~e^-70 N). */
#define CYFES_SEP_FLOOR -170.0
#define CYFES_SEP_RANGE 100.0

/* Per CV: cells along the axis, their origin and width (pre-scaled units). */
typedef struct {
  int64_t shape[CYFES_MAX_DIM];
  double origin[CYFES_MAX_DIM], width[CYFES_MAX_DIM], period[CYFES_MAX_DIM];
  int dim;
} cyfes_cell_grid;

static inline double cyfes_scaled(double x, double factor, double period) {
  double u = x * factor;
  if (period > 0) {
    u -= period * floor(u / period);
    if (u >= period) u -= period; /* floor rounding can leave u == period */
  }
  return u;
}

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

/* isfinite() by the bits: _cpu is built with -ffast-math, under which the compiler may fold isfinite() to true,
 * and zero weights (logw = -inf) must leave their samples out of the cells. */
static inline int cyfes_finite(double x) {
  uint64_t u;
  memcpy(&u, &x, sizeof u);
  return (u & 0x7ff0000000000000ULL) != 0x7ff0000000000000ULL;
}

/* The cell build runs on every core for large blocks: each thread takes one contiguous share of the samples, so the
 * counting sort stays stable (the same order as one thread's) and the result does not depend on the thread count. */
static inline int cyfes_cells_threads(int64_t n) {
  int nt = omp_get_max_threads();
  if (n < (1 << 16)) return 1;
  return nt < 1 ? 1 : (nt > 256 ? 256 : nt);
}

static inline void cyfes_thread_range(int64_t lo, int64_t hi, int64_t *b, int64_t *e) {
  const int t = omp_get_thread_num(), nt = omp_get_num_threads();
  const int64_t n = hi - lo;
  *b = lo + n / nt * t + (t < n % nt ? t : n % nt);
  *e = *b + n / nt + (t < n % nt ? 1 : 0);
}

/* Pass 1: the cell grid. x: (n, dim) raw samples; logw: n (non-finite = no sample); [lo, hi) the samples used.
 * h: wanted cell side (pre-scaled); at most max_cells cells (the side grows to fit). Returns the samples kept. */
static int64_t cyfes_cells_plan(const double *x, const double *logw, int64_t lo, int64_t hi, int dim,
                                const double *factor, const double *period, double h, int64_t max_cells,
                                cyfes_cell_grid *cg) {
  double mn[CYFES_MAX_DIM], mx[CYFES_MAX_DIM];
  int64_t kept = 0;
  for (int d = 0; d < dim; ++d) {
    mn[d] = DBL_MAX;
    mx[d] = -DBL_MAX;
  }
  const int nt = cyfes_cells_threads(hi - lo);
#pragma omp parallel num_threads(nt)
  {
    double tmn[CYFES_MAX_DIM], tmx[CYFES_MAX_DIM];
    int64_t tkept = 0, b, e;
    cyfes_thread_range(lo, hi, &b, &e);
    for (int d = 0; d < dim; ++d) {
      tmn[d] = DBL_MAX;
      tmx[d] = -DBL_MAX;
    }
    for (int64_t j = b; j < e; ++j) {
      if (!cyfes_finite(logw[j])) continue;
      ++tkept;
      for (int d = 0; d < dim; ++d) {
        double u = cyfes_scaled(x[j * dim + d], factor[d], period[d]);
        tmn[d] = u < tmn[d] ? u : tmn[d];
        tmx[d] = u > tmx[d] ? u : tmx[d];
      }
    }
#pragma omp critical(cyfes_cells_plan)
    {
      kept += tkept;
      for (int d = 0; d < dim; ++d) {
        mn[d] = tmn[d] < mn[d] ? tmn[d] : mn[d];
        mx[d] = tmx[d] > mx[d] ? tmx[d] : mx[d];
      }
    }
  }
  cg->dim = dim;
  for (;;) {
    double total = 1;
    for (int d = 0; d < dim; ++d) {
      cg->period[d] = period[d];
      if (period[d] > 0) {
        double k = floor(period[d] / h);
        cg->shape[d] = k < 1 ? 1 : (int64_t)k;
        cg->origin[d] = 0;
        cg->width[d] = period[d] / (double)cg->shape[d];
      } else {
        double span = kept ? mx[d] - mn[d] : 0;
        double k = ceil(span / h);
        cg->shape[d] = k < 1 ? 1 : (int64_t)k;
        cg->origin[d] = kept ? mn[d] : 0;
        cg->width[d] = span > 0 ? span / (double)cg->shape[d] : 1.0;
      }
      total *= (double)cg->shape[d];
    }
    if (total <= (double)max_cells) break;
    h *= 1.25;
  }
  return kept;
}

static inline int64_t cyfes_cell_of(const cyfes_cell_grid *cg, const double *u) {
  int64_t id = 0;
  for (int d = 0; d < cg->dim; ++d) {
    int64_t k = (int64_t)((u[d] - cg->origin[d]) / cg->width[d]);
    k = k < 0 ? 0 : (k >= cg->shape[d] ? cg->shape[d] - 1 : k);
    id = id * cg->shape[d] + k;
  }
  return id;
}

/* Passes 2 and 3: sort the kept samples by cell (counting sort) into samples_t (dim rows of `kept`) and lw
 * (logw - top), then summarise the non-empty cells: start (ncells + 1 offsets), log of the summed weight
 * (relative to top) and bounding box box[k * 2 dim + 2 d + {0, 1}]. scratch: cells + 1 int64 (cells = product of
 * shape), left holding each cell's compact index (-1: empty); cell: hi - lo int64. Returns the non-empty cells,
 * or -1 when memory for the threads' counts ran out. Each thread counts and places its own share of the samples;
 * a cell's samples keep their input order. */
#define CYFES_DEFINE_CELLS(T, SUFFIX)                                                                         \
  static void cyfes_cell_summary_##SUFFIX(const T *samples_t, const T *lw, int64_t kept, int dim,             \
                                          int64_t begin, int64_t end, double *lmass, double *b) {             \
    double m = -DBL_MAX, s = 0;                                                                               \
    for (int d = 0; d < dim; ++d) {                                                                           \
      b[2 * d] = DBL_MAX;                                                                                     \
      b[2 * d + 1] = -DBL_MAX;                                                                                \
    }                                                                                                         \
    for (int64_t j = begin; j < end; ++j) m = (double)lw[j] > m ? (double)lw[j] : m;                          \
    for (int64_t j = begin; j < end; ++j) {                                                                   \
      s += cyfes_libm_exp((double)lw[j] - m);                                                                 \
      for (int d = 0; d < dim; ++d) {                                                                         \
        double v = (double)samples_t[d * kept + j];                                                           \
        b[2 * d] = v < b[2 * d] ? v : b[2 * d];                                                               \
        b[2 * d + 1] = v > b[2 * d + 1] ? v : b[2 * d + 1];                                                   \
      }                                                                                                       \
    }                                                                                                         \
    *lmass = m + cyfes_libm_log(s);                                                                           \
  }                                                                                                           \
  static int64_t cyfes_cells_fill_##SUFFIX(const double *x, const double *logw, int64_t lo, int64_t hi,       \
                                           int dim, const double *factor, double top,                         \
                                           const cyfes_cell_grid *cg, int64_t kept, int64_t *scratch,         \
                                           int64_t *cell, T *samples_t, T *lw, int64_t *start, double *lmass, \
                                           double *box) {                                                     \
    int64_t cells = 1;                                                                                        \
    for (int d = 0; d < dim; ++d) cells *= cg->shape[d];                                                      \
    const int nt = cyfes_cells_threads(hi - lo);                                                              \
    int64_t *counts = (int64_t *)calloc((size_t)nt * (size_t)cells, sizeof(int64_t));                         \
    if (!counts) return -1;                                                                                   \
    _Pragma("omp parallel num_threads(nt)") {                                                                 \
      int64_t b, e, *cnt = counts + (int64_t)omp_get_thread_num() * cells;                                    \
      double u[CYFES_MAX_DIM];                                                                                \
      cyfes_thread_range(lo, hi, &b, &e);                                                                     \
      for (int64_t j = b; j < e; ++j) {                                                                       \
        if (!cyfes_finite(logw[j])) {                                                                             \
          cell[j - lo] = -1;                                                                                  \
          continue;                                                                                           \
        }                                                                                                     \
        for (int d = 0; d < dim; ++d) u[d] = cyfes_scaled(x[j * dim + d], factor[d], cg->period[d]);         \
        cell[j - lo] = cyfes_cell_of(cg, u);                                                                  \
        cnt[cell[j - lo]]++;                                                                                  \
      }                                                                                                       \
    }                                                                                                         \
    /* where each thread's samples of each cell go: cells in order, threads in order within a cell */         \
    int64_t at = 0;                                                                                           \
    for (int64_t c = 0; c < cells; ++c) {                                                                     \
      for (int t = 0; t < nt; ++t) {                                                                          \
        int64_t here = counts[(int64_t)t * cells + c];                                                        \
        counts[(int64_t)t * cells + c] = at;                                                                  \
        at += here;                                                                                           \
      }                                                                                                       \
      scratch[c] = at; /* the end of cell c */                                                                \
    }                                                                                                         \
    _Pragma("omp parallel num_threads(nt)") {                                                                 \
      int64_t b, e, *next = counts + (int64_t)omp_get_thread_num() * cells;                                   \
      cyfes_thread_range(lo, hi, &b, &e);                                                                     \
      for (int64_t j = b; j < e; ++j) {                                                                       \
        int64_t c = cell[j - lo];                                                                             \
        if (c < 0) continue;                                                                                  \
        int64_t to = next[c]++;                                                                               \
        for (int d = 0; d < dim; ++d) samples_t[d * kept + to] = (T)cyfes_scaled(x[j * dim + d], factor[d],   \
                                                                               cg->period[d]);                \
        lw[to] = (T)(logw[j] - top);                                                                          \
      }                                                                                                       \
    }                                                                                                         \
    free(counts);                                                                                             \
    /* the non-empty cells get compact indices; scratch maps a cell id to its compact index from here on */    \
    int64_t k = 0, begin = 0;                                                                                 \
    for (int64_t c = 0; c < cells; ++c) {                                                                     \
      int64_t end = scratch[c];                                                                               \
      scratch[c] = end == begin ? -1 : k;                                                                     \
      if (end == begin) continue;                                                                             \
      start[k++] = begin;                                                                                     \
      begin = end;                                                                                            \
    }                                                                                                         \
    start[k] = begin;                                                                                         \
    const int64_t ncells = k;                                                                                 \
    _Pragma("omp parallel for num_threads(nt) schedule(dynamic, 16)")                                         \
    for (int64_t q = 0; q < ncells; ++q)                                                                      \
      cyfes_cell_summary_##SUFFIX(samples_t, lw, kept, dim, start[q], start[q + 1], lmass + q,                \
                                  box + q * 2 * dim);                                                         \
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
  if (nr == DBL_MAX || total >= ncells * 4) { /* everything (or about as many): every cell, no far bound */
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
   * (gap: the cell-tile distance, so nothing overflows): per sample and block, sum_d t_d exps, then the tile's         \
   * points are multiply-adds. Arguments are clamped at CYFES_SEP_FLOOR (see there). */                                \
  CYFES_INLINE void cyfes_sep_block_##SUFFIX(const T *samples_t, const T *lw, int64_t n, int dim, int64_t j0,        \
                                             int64_t nb, const double *const *axis, const int64_t *t,                 \
                                             const double *pd, const double *gap, double u0, double *S) {             \
    double e[3][CYFES_SEP_T * CYFES_SEP_B], a[CYFES_SEP_B], w[CYFES_SEP_B];                                           \
    double g2 = 0;                                                                                                    \
    for (int d = 0; d < dim; ++d) {                                                                                   \
      const T *s = samples_t + (int64_t)d * n + j0;                                                                   \
      const double p = pd[d], gg = gap[d] * gap[d];                                                                   \
      g2 += gg;                                                                                                       \
      for (int64_t i = 0; i < t[d]; ++i) {                                                                            \
        const double g = axis[d][i];                                                                                  \
        double *ed = e[d] + i * CYFES_SEP_B;                                                                          \
        if (p > 0) {                                                                                                  \
          _Pragma("omp simd") for (int64_t j = 0; j < nb; ++j) {                                                      \
            double dx = fabs(g - (double)s[j]);                                                                       \
            dx = dx < p - dx ? dx : p - dx;                                                                           \
            double x = gg - dx * dx;                                                                                  \
            ed[j] = cyfes_vexp_f64(x > CYFES_SEP_FLOOR ? x : CYFES_SEP_FLOOR);                                                                     \
          }                                                                                                           \
        } else {                                                                                                      \
          _Pragma("omp simd") for (int64_t j = 0; j < nb; ++j) {                                                      \
            double dx = g - (double)s[j];                                                                             \
            double x = gg - dx * dx;                                                                                  \
            ed[j] = cyfes_vexp_f64(x > CYFES_SEP_FLOOR ? x : CYFES_SEP_FLOOR);                                                                     \
          }                                                                                                           \
        }                                                                                                             \
      }                                                                                                               \
    }                                                                                                                 \
    _Pragma("omp simd") for (int64_t j = 0; j < nb; ++j) {                                                            \
      double x = (double)lw[j0 + j] - u0 - g2;                                                                        \
      a[j] = cyfes_vexp_f64(x > CYFES_SEP_FLOOR ? x : CYFES_SEP_FLOOR);                                                                            \
    }                                                                                                                 \
    const int64_t t1 = t[1], t2 = dim == 3 ? t[2] : 1;                                                                \
    for (int64_t i = 0; i < t[0]; ++i) {                                                                              \
      for (int64_t k = 0; k < t1; ++k) {                                                                              \
        const double *e0 = e[0] + i * CYFES_SEP_B, *e1 = e[1] + k * CYFES_SEP_B;                                      \
        if (dim == 2) {                                                                                               \
          double acc = 0;                                                                                             \
          _Pragma("omp simd reduction(+ : acc)") for (int64_t j = 0; j < nb; ++j) acc += a[j] * e0[j] * e1[j];        \
          S[i * t1 + k] += acc;                                                                                       \
          continue;                                                                                                   \
        }                                                                                                             \
        _Pragma("omp simd") for (int64_t j = 0; j < nb; ++j) w[j] = a[j] * e0[j] * e1[j];                             \
        for (int64_t l = 0; l < t2; ++l) {                                                                            \
          const double *e2 = e[2] + l * CYFES_SEP_B;                                                                  \
          double acc = 0;                                                                                             \
          _Pragma("omp simd reduction(+ : acc)") for (int64_t j = 0; j < nb; ++j) acc += w[j] * e2[j];                \
          S[(i * t1 + k) * t2 + l] += acc;                                                                            \
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
      cyfes_box_d2(box + k * 2 * dim, tlo, thi, pd, dim, &lo2, &hi2, gap);                                            \
      for (int64_t j0 = start[k]; j0 < start[k + 1]; j0 += CYFES_SEP_B) {                                             \
        const int64_t nb = start[k + 1] - j0 < CYFES_SEP_B ? start[k + 1] - j0 : CYFES_SEP_B;                         \
        cyfes_sep_block_##SUFFIX(samples_t, lw, n, dim, j0, nb, axis, t, pd, gap, u0, S);                             \
      }                                                                                                               \
      summed += start[k + 1] - start[k];                                                                              \
    }                                                                                                                 \
    return summed;                                                                                                    \
  }                                                                                                                   \
  /* One tile of `count` points g0 (pre-scaled, wrapped): out[p] = log of the truncated sum. tshape: the tile's       \
   * extent per CV when it is a box of a regular grid (points in matrix order), else NULL. */                          \
  CYFES_CLONES static cyfes_tile_result cyfes_tile_##SUFFIX(                                                          \
      const T *samples_t, const T *lw, int64_t n, int dim, const T *per, int64_t ncells,                              \
      const int64_t *start, const double *lmass, const double *box, const cyfes_cell_grid *cg, const int64_t *dense,  \
      double lall, double reach, double gap, const T *g0, int64_t count, const int64_t *tshape, double tol,         \
      double *ub, int16_t *bucket, int64_t *wl, double *out) {                                                        \
    cyfes_tile_result res = {0, 0};                                                                                   \
    double tlo[CYFES_MAX_DIM], thi[CYFES_MAX_DIM], pd[CYFES_MAX_DIM];                                                 \
    int periodic = 0;                                                                                                 \
    for (int d = 0; d < dim; ++d) {                                                                                   \
      pd[d] = (double)per[d];                                                                                         \
      periodic |= per[d] > 0;                                                                                         \
      tlo[d] = DBL_MAX;                                                                                               \
      thi[d] = -DBL_MAX;                                                                                              \
      for (int64_t p = 0; p < count; ++p) {                                                                           \
        double v = (double)g0[p * dim + d];                                                                           \
        tlo[d] = v < tlo[d] ? v : tlo[d];                                                                             \
        thi[d] = v > thi[d] ? v : thi[d];                                                                             \
      }                                                                                                               \
    }                                                                                                                 \
    /* separable when the tile is a box of 2 or 3 CVs: per-CV coordinates of the box */                              \
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
    /* the cells within `reach` of the tile; a sample outside is at least `near` away (all samples: exp(lall)) */   \
    const double ltol = cyfes_libm_log(tol) + cyfes_libm_log(CYFES_SAFETY);                                                                 \
    int64_t nw;                                                                                                       \
    double near, u0, lbm, lbs;                                                                                        \
    for (;;) {                                                                                                        \
      nw = cyfes_window(cg, dense, ncells, tlo, thi, reach, wl, &near);                                               \
      u0 = -DBL_MAX, lbm = -DBL_MAX, lbs = 0;                                                                         \
      for (int64_t i = 0; i < nw; ++i) {                                                                              \
        double d2min, d2max;                                                                                          \
        cyfes_box_d2(box + wl[i] * 2 * dim, tlo, thi, pd, dim, &d2min, &d2max, NULL);                                 \
        ub[i] = lmass[wl[i]] - d2min;                                                                                 \
        u0 = ub[i] > u0 ? ub[i] : u0;                                                                                 \
        cyfes_lse_add(&lbm, &lbs, lmass[wl[i]] - d2max);                                                              \
      }                                                                                                               \
      /* the far samples must be negligible against a first estimate of the density, else look further */           \
      const double want = lall - ltol - (nw ? u0 - gap : -DBL_MAX / 4);                                     \
      if (near == DBL_MAX || (nw && near * near >= want)) break;                                                      \
      reach = nw && want > 0 ? sqrt(want) + 2 * reach : 2 * reach + 1;                                                \
    }                                                                                                                 \
    const double lower = lbm + cyfes_libm_log(lbs);                                                                              \
    double bsum[CYFES_BUCKETS + 1];                                                                                   \
    memset(bsum, 0, sizeof bsum);                                                                                     \
    for (int64_t k = 0; k < nw; ++k) {                                                                                \
      double below = u0 - ub[k];                                                                                      \
      int b = below < CYFES_BUCKETS - 1 ? (int)below : CYFES_BUCKETS - 1;                                             \
      bucket[k] = (int16_t)b;                                                                                         \
      bsum[b] += cyfes_libm_exp(-below);                                                                                         \
    }                                                                                                                 \
    for (int b = CYFES_BUCKETS - 1; b >= 0; --b) bsum[b] += bsum[b + 1]; /* suffix sums: mass from b on */           \
    const double lfar = near == DBL_MAX ? -DBL_MAX : lall - near * near; /* bound of the samples outside */         \
    /* first cut from an estimate of the density; the check below decides */                                        \
    double est = lower > u0 - gap ? lower : u0 - gap;                                             \
    int cut = 1;                                                                                                      \
    while (cut < CYFES_BUCKETS && !(cyfes_libm_log(bsum[cut]) + u0 <= ltol + est)) ++cut;                                        \
    T m[CYFES_TILE_MAX];                                                                                              \
    double dsum[CYFES_TILE_MAX], S[CYFES_TILE_MAX];                                                                   \
    int started = 0, from = 0, fails = 0;                                                                             \
    if (sep) memset(S, 0, sizeof S);                                                                                  \
    for (;;) { /* ends: a passed check, or all cells taken (after two failed checks or a full first cut) */          \
      int64_t summed = sep ? cyfes_sep_cells_##SUFFIX(samples_t, lw, n, dim, axis, tshape, pd, tlo, thi, nw, wl,      \
                                                      start, box, bucket, from, cut, u0, S)                           \
                           : cyfes_cells_sum_##SUFFIX(samples_t, lw, n, dim, g0, count, per, periodic, nw, wl, start, \
                                                      bucket, from, cut, m, dsum, &started);                          \
      res.pairs += count * summed;                                                                                    \
      double smin = DBL_MAX;                                                                                          \
      for (int64_t p = 0; p < count; ++p) {                                                                           \
        out[p] = sep ? u0 + cyfes_libm_log(S[p]) : (double)m[p] + cyfes_libm_log(dsum[p]);                                                  \
        smin = out[p] < smin ? out[p] : smin;                                                                         \
      }                                                                                                               \
      if (sep && !(smin > u0 - CYFES_SEP_RANGE)) { /* a point far below the tile's bound: sum again with running maxima */      \
        sep = 0;                                                                                                      \
        from = 0;                                                                                                     \
        continue;                                                                                                     \
      }                                                                                                               \
      /* the neglected mass, summed exactly over the cells left out */                                               \
      double rm = -DBL_MAX, rs = 0;                                                                                   \
      for (int64_t k = 0; k < nw; ++k)                                                                                \
        if (bucket[k] >= cut) cyfes_lse_add(&rm, &rs, ub[k]);                                                         \
      if (lfar > -DBL_MAX) cyfes_lse_add(&rm, &rs, lfar);                                                             \
      double lr = rs > 0 ? rm + cyfes_libm_log(rs) : -DBL_MAX;                                                                   \
      if (lfar > ltol + smin) { /* the samples outside the window could matter after all: widen it, start again */  \
        cyfes_tile_result again = cyfes_tile_##SUFFIX(samples_t, lw, n, dim, per, ncells, start, lmass, box, cg,      \
                                                      dense, lall, sqrt(lall - ltol - smin) + 2 * reach, gap, g0, count, \
                                                      tshape, tol, ub, bucket, wl, out);                              \
        again.pairs += res.pairs;                                                                                     \
        return again;                                                                                                 \
      }                                                                                                               \
      if (lr <= ltol + smin || cut > CYFES_BUCKETS - 1) {                                                             \
        res.bound = rs > 0 ? log1p(cyfes_libm_exp(lr - smin)) : 0;                                                               \
        return res;                                                                                                   \
      }                                                                                                               \
      /* next cut from the included minimum, a true lower bound of every point's density */                          \
      from = cut;                                                                                                     \
      ++cut;                                                                                                          \
      while (cut < CYFES_BUCKETS && !(cyfes_libm_log(bsum[cut]) + u0 <= ltol + smin)) ++cut;                                     \
      if (++fails >= 2) cut = CYFES_BUCKETS; /* rounding kept failing the check: take everything */                  \
    }                                                                                                                 \
  }

CYFES_DEFINE_TILE(double, f64)
CYFES_DEFINE_TILE(float, f32)

#endif
