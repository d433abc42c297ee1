// The truncated sum on the GPU: the same bound and the same choice of cells as the CPU's
// (src/cyfes/cpu_truncated.h has the proof), one thread block per tile of grid points.
//
// The device sorts the block's samples into cells first (cuda/cells.cuh, the same cells as cyfes._cpu.build_cells:
// pre-scaled coordinates, transposed, log-weights relative to the block's top, per cell its sample range, log of
// its summed weight L_c and its bounding box).
// Per tile T the block
//   1. finds the cells within `reach` of T's box (a window of the cell grid) and `near`, a lower bound of the
//      distance from T to any sample outside it; the window widens while those could matter against a first
//      estimate of the density;
//   2. bounds every cell c of the window: each of its samples adds to each point of T between exp(L_c - d2max)
//      and exp(L_c - d2min) (box-to-box distances, nearest image on periodic CVs); the cells go into 1-nat
//      buckets below the largest upper bound u0;
//   3. sums the cells above a first cut (from an estimate of the density) over every point of T, all threads
//      on one cell's samples at a time, each keeping CHUNK points' sums in registers;
//   4. checks: the neglected mass R (the exact sum of the left-out cells' upper bounds plus the window's far
//      bound) must be <= tol * the smallest included sum of T's points, a true lower bound of each point's
//      density; else the cut moves down from that minimum and the new cells are added (twice at most, then all).
// Sums are taken relative to u0, so no term exceeds 1. A tile the GPU cannot settle (far samples that could
// matter after all, or a point whose sum lies too far below u0 for the precision's exp) is summed again one point
// per tile while the cells are still on the device; what is still unsettled is flagged for the host, which sums
// it on the CPU (running maxima, a window that widens as far as needed).
#include "cells.cuh"
#include "cufes.h"
#include "host_util.cuh"

#include <cuda_runtime.h>

#include <algorithm>
#include <cfloat>
#include <climits>
#include <cmath>

namespace cufes_internal {
namespace truncated {

constexpr int THREADS = 128;
constexpr int WARPS = THREADS / 32;
constexpr int CHUNK = 32;        // at most this many tile points per pass over the samples
// Tile points per pass over the samples: one accumulator register each per thread (16 doubles keep float64 from
// spilling).
template <typename T>
struct Chunk {
  static constexpr int n = sizeof(T) == 8 ? 16 : 32;
};
constexpr int TILE_MAX = 256;    // points per tile (as the CPU's CYFES_TILE_MAX)
constexpr int BUCKETS = 160;     // as the CPU's CYFES_BUCKETS
constexpr double SAFETY = 0.999; // margin on the check for rounding of the included sums
constexpr int LIST = 1024;       // window positions whose cell and bound are kept in shared memory
constexpr int MAX_ATTEMPTS = 3;  // windows widened on the GPU before a tile goes back to the host
constexpr int MIN_BLOCKS = 6;    // resident blocks per SM the registers must allow (4 -> 6: 3-D passes -10% on an H200)

// Status per tile: what the host does with it.
enum Status : int { DONE = 0, UNDERFLOW = 1, FAR = 2 };

template <typename T>
struct Range;  // how far below u0 a point's sum may lie and still be summed exactly
template <>
struct Range<float> {
  static constexpr double below = 80.0;  // exp(-87) is float's smallest normal
};
template <>
struct Range<double> {
  static constexpr double below = 600.0;
};

struct Cells {
  int dim;
  long long shape[CUFES_MAX_DIM];
  double origin[CUFES_MAX_DIM], width[CUFES_MAX_DIM], period[CUFES_MAX_DIM];
  int64_t ncells;
  const int64_t *start, *dense;
  const double *lmass, *box;
  double lall;
};

template <typename T>
struct Args {
  Cells cells;
  const T *samples_t, *lw, *grid;
  int64_t n;
  const int64_t *tile_start;
  int64_t ntiles;
  double reach, gap, ltol;
  T period[CUFES_MAX_DIM];  // pre-scaled periods (0: not periodic), as the samples
  double *out, *bound;
  int64_t *pairs;
  int *status;
};

struct Window {
  long long lo[CUFES_MAX_DIM], cnt[CUFES_MAX_DIM];
  int64_t total;  // positions to visit
  bool all;       // visit every cell (the window is about as large)
  double near;    // lower bound of the distance from the tile to a sample outside (DBL_MAX: there is none)
};

__device__ Window make_window(const Cells &c, const double *tlo, const double *thi, double reach) {
  Window w;
  double nr = DBL_MAX;
  int64_t total = 1;
  for (int d = 0; d < c.dim; ++d) {
    const double wd = c.width[d], o = c.origin[d];
    const long long k = c.shape[d];
    const double fa = floor((tlo[d] - reach - o) / wd), fb = floor((thi[d] + reach - o) / wd);
    if (c.period[d] > 0 && fb - fa + 1 < static_cast<double>(k)) {
      w.lo[d] = static_cast<long long>(fa);
      w.cnt[d] = static_cast<long long>(fb - fa) + 1;
      nr = fmin(nr, fmin(tlo[d] - (o + fa * wd), o + (fb + 1) * wd - thi[d]));
    } else if (c.period[d] > 0) {
      w.lo[d] = 0;
      w.cnt[d] = k;
    } else {
      const long long a = fa < 0 ? 0 : (fa > static_cast<double>(k - 1) ? k - 1 : static_cast<long long>(fa));
      const long long b = fb > static_cast<double>(k - 1) ? k - 1 : (fb < static_cast<double>(a) ? a : static_cast<long long>(fb));
      if (a > 0) nr = fmin(nr, tlo[d] - (o + a * wd));
      if (b < k - 1) nr = fmin(nr, o + (b + 1) * wd - thi[d]);
      w.lo[d] = a;
      w.cnt[d] = b - a + 1;
    }
    total *= w.cnt[d];
  }
  w.all = nr == DBL_MAX || total >= c.ncells * 4;
  w.total = w.all ? c.ncells : total;
  w.near = w.all ? DBL_MAX : (nr > 0 ? nr * (1 - 1e-12) : 0);
  return w;
}

// The compact index of window position t (last CV fastest), or -1 for an empty cell.
// 32-bit index arithmetic: at most 2^15 cells (cyfes._truncated.MAX_CELLS), and 64-bit division is slow here.
__device__ __forceinline__ int64_t window_cell(const Cells &c, const Window &w, int64_t t) {
  if (w.all) return t;
  unsigned rest = static_cast<unsigned>(t);
  int id = 0, stride = 1;
  for (int d = c.dim - 1; d >= 0; --d) {
    const unsigned cnt = static_cast<unsigned>(w.cnt[d]);
    const int k = static_cast<int>(c.shape[d]);
    int i = static_cast<int>(w.lo[d]) + static_cast<int>(rest % cnt);
    rest /= cnt;
    i = i < 0 ? i + k * (1 - i / k) : i;  // periodic windows wrap; others are inside already
    i = i >= k ? i % k : i;
    id += i * stride;
    stride *= k;
  }
  return c.dense[id];
}

// Smallest and largest squared distance between cell k's box and the tile's box (nearest image if periodic).
__device__ void box_d2(const Cells &c, int64_t k, const double *tlo, const double *thi, double &d2min,
                       double &d2max) {
  const double *cb = c.box + k * 2 * c.dim;
  double lo2 = 0, hi2 = 0;
  for (int d = 0; d < c.dim; ++d) {
    const double a = cb[2 * d], b = cb[2 * d + 1], lo = tlo[d], hi = thi[d], p = c.period[d];
    double gap, far;
    if (p > 0) {
      gap = DBL_MAX;
      far = DBL_MAX;
      for (int s = -1; s <= 1; ++s) {
        const double sa = a + s * p, sb = b + s * p;
        gap = fmin(gap, fmax(fmax(lo - sb, sa - hi), 0.0));
        far = fmin(far, fmax(hi - sa, sb - lo));
      }
      far = fmin(far, 0.5 * p);
    } else {
      gap = fmax(fmax(lo - b, a - hi), 0.0);
      far = fmax(hi - a, b - lo);
    }
    lo2 += gap * gap;
    hi2 += far * far;
  }
  d2min = lo2;
  d2max = hi2;
}

struct Lse {  // a log-sum-exp as (max, sum of exp(x - max))
  double m = -DBL_MAX, s = 0;
  __device__ void add(double x) {
    if (x <= m) {
      s += exp(x - m);
    } else {
      s = s * exp(m - x) + 1.0;
      m = x;
    }
  }
  __device__ void merge(double om, double os) {
    if (os == 0) return;
    if (om <= m) {
      s += os * exp(om - m);
    } else {
      s = s * exp(m - om) + os;
      m = om;
    }
  }
  __device__ double log() const { return s > 0 ? m + ::log(s) : -DBL_MAX; }
};

// Block-wide reductions: every thread gets the result. scratch: 2 * WARPS doubles of shared memory.
__device__ double block_max(double v, double *scratch) {
  for (int o = 16; o; o >>= 1) v = fmax(v, __shfl_xor_sync(0xffffffffu, v, o));
  if ((threadIdx.x & 31) == 0) scratch[threadIdx.x >> 5] = v;
  __syncthreads();
  double r = scratch[0];
  for (int i = 1; i < WARPS; ++i) r = fmax(r, scratch[i]);
  __syncthreads();
  return r;
}

__device__ double block_sum(double v, double *scratch) {
  for (int o = 16; o; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  if ((threadIdx.x & 31) == 0) scratch[threadIdx.x >> 5] = v;
  __syncthreads();
  double r = 0;
  for (int i = 0; i < WARPS; ++i) r += scratch[i];
  __syncthreads();
  return r;
}

__device__ Lse block_lse(Lse v, double *scratch) {
  for (int o = 16; o; o >>= 1) {
    const double om = __shfl_xor_sync(0xffffffffu, v.m, o), os = __shfl_xor_sync(0xffffffffu, v.s, o);
    v.merge(om, os);
  }
  if ((threadIdx.x & 31) == 0) {
    scratch[threadIdx.x >> 5] = v.m;
    scratch[WARPS + (threadIdx.x >> 5)] = v.s;
  }
  __syncthreads();
  Lse r;
  for (int i = 0; i < WARPS; ++i) r.merge(scratch[i], scratch[WARPS + i]);
  __syncthreads();
  return r;
}

__device__ __forceinline__ int bucket_of(double u0, double ub) {
  const double below = u0 - ub;
  return below < BUCKETS - 1 ? static_cast<int>(below) : BUCKETS - 1;
}

template <typename T>
struct Shared {
  T pts[TILE_MAX * CUFES_MAX_DIM];
  double tot[TILE_MAX];
  double bsum[BUCKETS + 1];
  double part[WARPS][CHUNK];
  double tlo[CUFES_MAX_DIM], thi[CUFES_MAX_DIM];
  double scratch[2 * WARPS];
  double ub[LIST];  // per window position: the cell's upper bound (log) and compact index (-1: empty)
  int cell[LIST];
  int inc[LIST];    // the cells of one pass, in window order
  int wcount[WARPS];
};

// Window position t's cell and upper bound: from the shared list when the window fits it (`listed`).
template <typename T>
__device__ __forceinline__ int64_t cell_bound(const Cells &c, const Window &w, const Shared<T> &sh, bool listed,
                                              int64_t t, double &ub) {
  if (listed) {
    ub = sh.ub[t];
    return sh.cell[t];
  }
  const int64_t k = window_cell(c, w, t);
  if (k >= 0) {
    double d2min, d2max;
    box_d2(c, k, sh.tlo, sh.thi, d2min, d2max);
    ub = c.lmass[k] - d2min;
  }
  return k;
}

// Adds cell k's samples to the running sums of points [c0, c0 + qn) of the tile.
// NQ: the points handled at compile time (NQ >= qn); the caller picks the smallest that fits, since predicated-off
// iterations still issue.
template <typename T, int D, bool PERIODIC, int NQ>
__device__ __forceinline__ void sum_cell(const Args<T> &a, const Shared<T> &sh, int64_t k, int64_t c0, int qn,
                                         T u0t, T (&acc)[Chunk<T>::n]) {
  const int dim = D ? D : a.cells.dim;
  const int64_t begin = a.cells.start[k], end = a.cells.start[k + 1];
  for (int64_t j = begin + threadIdx.x; j < end; j += THREADS) {
    T s[CUFES_MAX_DIM];
    for (int d = 0; d < dim; ++d) s[d] = a.samples_t[d * a.n + j];
    const T base = a.lw[j] - u0t;
#pragma unroll
    for (int q = 0; q < NQ; ++q) {
      if (NQ == 1 || q < qn) {
        const T *g = sh.pts + (c0 + q) * dim;
        T d2 = T(0);
        for (int d = 0; d < dim; ++d) {
          T dx = g[d] - s[d];
          if (PERIODIC && a.period[d] > T(0)) {
            dx = dx < T(0) ? -dx : dx;
            const T other = a.period[d] - dx;
            dx = other < dx ? other : dx;
          }
          d2 += dx * dx;
        }
        acc[q] += exp(base - d2);
      }
    }
  }
}

template <typename T, int D, bool PERIODIC>
__device__ __forceinline__ void sum_cell_any(const Args<T> &a, const Shared<T> &sh, int64_t k, int64_t c0, int qn,
                                             T u0t, T (&acc)[Chunk<T>::n]) {
  if (qn == 1)  // the tiles summed again point by point
    sum_cell<T, D, PERIODIC, 1>(a, sh, k, c0, qn, u0t, acc);
  else if (qn <= 8)  // 3-D tiles (2 x 2 x 2)
    sum_cell<T, D, PERIODIC, 8>(a, sh, k, c0, qn, u0t, acc);
  else if (qn <= 16)
    sum_cell<T, D, PERIODIC, 16>(a, sh, k, c0, qn, u0t, acc);
  else
    sum_cell<T, D, PERIODIC, Chunk<T>::n>(a, sh, k, c0, qn, u0t, acc);
}

// The window's cells of buckets [from, cut), in window order, into sh.inc (when at most LIST); returns how many.
template <typename T>
__device__ int compact_included(const Cells &c, const Window &w, Shared<T> &sh, bool listed, double u0, int from,
                                int cut) {
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  int total = 0;
  for (int64_t t0 = 0; t0 < w.total; t0 += THREADS) {
    const int64_t t = t0 + threadIdx.x;
    int64_t k = -1;
    if (t < w.total) {
      double ub;
      k = cell_bound(c, w, sh, listed, t, ub);
      if (k >= 0) {
        const int b = bucket_of(u0, ub);
        if (b < from || b >= cut) k = -1;
      }
    }
    const unsigned ballot = __ballot_sync(0xffffffffu, k >= 0);
    if (lane == 0) sh.wcount[warp] = __popc(ballot);
    __syncthreads();
    int offset = total, round = 0;
    for (int i = 0; i < WARPS; ++i) {
      offset += i < warp ? sh.wcount[i] : 0;
      round += sh.wcount[i];
    }
    const int at = offset + __popc(ballot & ((1u << lane) - 1u));
    if (k >= 0 && at < LIST) sh.inc[at] = static_cast<int>(k);
    total += round;
    __syncthreads();
  }
  return total;
}

// Sums the cells of buckets [from, cut) into sh.tot for the tile's `count` points; returns their samples.
template <typename T, int D, bool PERIODIC>
__device__ int64_t sum_cells(const Args<T> &a, Shared<T> &sh, const Window &w, bool listed, int64_t count,
                             double u0, T u0t, int from, int cut) {
  const Cells &c = a.cells;
  const int ninc = compact_included(c, w, sh, listed, u0, from, cut);
  int64_t summed = 0;
  constexpr int chunk = Chunk<T>::n;
  for (int64_t c0 = 0; c0 < count; c0 += chunk) {
    const int qn = static_cast<int>(count - c0 < chunk ? count - c0 : chunk);
    T acc[chunk];
#pragma unroll
    for (int q = 0; q < chunk; ++q) acc[q] = T(0);
    if (ninc <= LIST) {
      for (int i = 0; i < ninc; ++i) {
        const int64_t k = sh.inc[i];
        if (c0 == 0) summed += c.start[k + 1] - c.start[k];
        sum_cell_any<T, D, PERIODIC>(a, sh, k, c0, qn, u0t, acc);
      }
    } else {  // too many cells to list: walk the window again
      for (int64_t t = 0; t < w.total; ++t) {
        double ub;
        const int64_t k = cell_bound(c, w, sh, listed, t, ub);
        if (k < 0) continue;
        const int b = bucket_of(u0, ub);
        if (b < from || b >= cut) continue;
        if (c0 == 0) summed += c.start[k + 1] - c.start[k];
        sum_cell_any<T, D, PERIODIC>(a, sh, k, c0, qn, u0t, acc);
      }
    }
    // the block's sums of this chunk, added to the tile's totals
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
#pragma unroll
    for (int q = 0; q < chunk; ++q) {
      double v = static_cast<double>(acc[q]);
      for (int o = 16; o; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
      if (lane == 0) sh.part[warp][q] = v;
    }
    __syncthreads();
    if (threadIdx.x < qn) {
      double v = 0;
      for (int i = 0; i < WARPS; ++i) v += sh.part[i][threadIdx.x];
      sh.tot[c0 + threadIdx.x] += v;
    }
    __syncthreads();
  }
  return summed;
}

// Smallest squared distance between a point and cell k's box (nearest image if periodic).
template <int D, typename T>
__device__ __forceinline__ double point_d2min(const Cells &c, int64_t k, const T *pt) {
  const int dim = D ? D : c.dim;
  const double *cb = c.box + k * 2 * dim;
  double d2 = 0;
  for (int d = 0; d < dim; ++d) {
    const double v = static_cast<double>(pt[d]), a = cb[2 * d], b = cb[2 * d + 1], p = c.period[d];
    double gap = fmax(fmax(v - b, a - v), 0.0);
    if (p > 0)
      for (int s = -1; s <= 1; s += 2) gap = fmin(gap, fmax(fmax(v - (b + s * p), (a + s * p) - v), 0.0));
    d2 += gap * gap;
  }
  return d2;
}

// The lowest, over the tile's points, of a point's largest cell bound in the window: an upper bound of that
// point's density. Far from the data a tile's density falls by more than the precision's exp range across it;
// when even this bound lies that far below u0 the tile cannot be summed relative to u0, and goes back to be
// summed point by point before any of its pairs are summed here.
template <typename T, int D>
__device__ double lowest_point_bound(const Cells &c, const Window &w, Shared<T> &sh, bool listed, int64_t count) {
  constexpr int PN = 8;  // points per pass over the window (one register each)
  const int dim = D ? D : c.dim, warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  double lowest = DBL_MAX;
  for (int64_t p0 = 0; p0 < count; p0 += PN) {
    const int pn = static_cast<int>(count - p0 < PN ? count - p0 : PN);
    double best[PN];
#pragma unroll
    for (int q = 0; q < PN; ++q) best[q] = -DBL_MAX;
    for (int64_t t = threadIdx.x; t < w.total; t += THREADS) {  // all threads over the window's cells
      double ub;
      const int64_t k = cell_bound(c, w, sh, listed, t, ub);
      if (k < 0) continue;
#pragma unroll
      for (int q = 0; q < PN; ++q)  // a cell's bound at a point is at most its bound over the tile
        if (q < pn && ub > best[q]) best[q] = fmax(best[q], c.lmass[k] - point_d2min<D>(c, k, sh.pts + (p0 + q) * dim));
    }
#pragma unroll
    for (int q = 0; q < PN; ++q) {
      double v = best[q];
      for (int o = 16; o; o >>= 1) v = fmax(v, __shfl_xor_sync(0xffffffffu, v, o));
      if (lane == 0) sh.part[warp][q] = v;
    }
    __syncthreads();
    for (int q = 0; q < pn; ++q) {
      double v = -DBL_MAX;
      for (int i = 0; i < WARPS; ++i) v = fmax(v, sh.part[i][q]);
      lowest = fmin(lowest, v);
    }
    __syncthreads();  // sh.part is reused
  }
  return lowest;
}

// The window from `reach`, widened while the samples outside could matter against a first density estimate;
// u0: the largest cell bound, lower: a lower bound of the tile's density. Fills the shared list when it fits.
template <typename T>
__device__ Window window_bounds(const Cells &c, Shared<T> &sh, const Args<T> &a, double reach, double &u0,
                                double &lower) {
  for (;;) {
    const Window w = make_window(c, sh.tlo, sh.thi, reach);
    double top = -DBL_MAX, nw = 0;
    Lse lb;
    const bool fits = w.total <= LIST;
    for (int64_t t = threadIdx.x; t < w.total; t += THREADS) {
      const int64_t k = window_cell(c, w, t);
      if (fits) sh.cell[t] = static_cast<int>(k);
      if (k < 0) continue;
      double d2min, d2max;
      box_d2(c, k, sh.tlo, sh.thi, d2min, d2max);
      if (fits) sh.ub[t] = c.lmass[k] - d2min;
      top = fmax(top, c.lmass[k] - d2min);
      lb.add(c.lmass[k] - d2max);
      nw += 1;
    }
    u0 = block_max(top, sh.scratch);  // the reductions synchronise: the list is complete after them
    lower = block_lse(lb, sh.scratch).log();
    nw = block_sum(nw, sh.scratch);
    const double want = c.lall - a.ltol - (nw > 0 ? u0 - a.gap : -DBL_MAX / 4);
    if (w.near == DBL_MAX || (nw > 0 && w.near * w.near >= want)) return w;
    reach = nw > 0 && want > 0 ? sqrt(want) + 2 * reach : 2 * reach + 1;
  }
}

template <typename T, int D, bool PERIODIC>
__global__ void __launch_bounds__(THREADS, MIN_BLOCKS) tiles_kernel(Args<T> a) {
  __shared__ Shared<T> sh;
  const Cells &c = a.cells;
  const int dim = D ? D : c.dim;
  for (int64_t tile = blockIdx.x; tile < a.ntiles; tile += gridDim.x) {
    const int64_t p0 = a.tile_start[tile], count = a.tile_start[tile + 1] - p0;
    for (int64_t i = threadIdx.x; i < count * dim; i += THREADS) sh.pts[i] = a.grid[p0 * dim + i];
    for (int64_t p = threadIdx.x; p < count; p += THREADS) sh.tot[p] = 0;
    __syncthreads();
    if (threadIdx.x < dim) {
      double lo = DBL_MAX, hi = -DBL_MAX;
      for (int64_t p = 0; p < count; ++p) {
        const double v = static_cast<double>(sh.pts[p * dim + threadIdx.x]);
        lo = fmin(lo, v);
        hi = fmax(hi, v);
      }
      sh.tlo[threadIdx.x] = lo;
      sh.thi[threadIdx.x] = hi;
    }
    __syncthreads();

    // 1-4 as above; a tile whose far samples turn out to matter (its density is lower than the first estimate
    // said) starts again with the window that the smallest included sum asks for, as the CPU does.
    double reach = a.reach, bound = 0;
    int status = DONE;
    int64_t summed = 0;
    T u0t = T(0);
    for (int attempt = 0;; ++attempt) {
      for (int64_t p = threadIdx.x; p < count; p += THREADS) sh.tot[p] = 0;
      double u0, lower;
      Window w = window_bounds(c, sh, a, reach, u0, lower);
      const bool listed = w.total <= LIST;
      // `lower` bounds every point's density from below: only a tile where it lies far below u0 can be steep
      if (count > 1 && lower < u0 - Range<T>::below &&
          lowest_point_bound<T, D>(c, w, sh, listed, count) < u0 - Range<T>::below) {
        status = UNDERFLOW;  // steep: summed again point by point
        break;
      }
      for (int b = threadIdx.x; b <= BUCKETS; b += THREADS) sh.bsum[b] = 0;
      __syncthreads();
      for (int64_t t = threadIdx.x; t < w.total; t += THREADS) {
        double ub;
        if (cell_bound(c, w, sh, listed, t, ub) >= 0) atomicAdd(&sh.bsum[bucket_of(u0, ub)], exp(ub - u0));
      }
      __syncthreads();
      if (threadIdx.x == 0)
        for (int b = BUCKETS - 1; b >= 0; --b) sh.bsum[b] += sh.bsum[b + 1];  // suffix sums: mass from b on
      __syncthreads();
      const double lfar = w.near == DBL_MAX ? -DBL_MAX : c.lall - w.near * w.near;
      const double est = fmax(lower, u0 - a.gap);
      int cut = 1;
      while (cut < BUCKETS && !(log(sh.bsum[cut]) + u0 <= a.ltol + est)) ++cut;
      u0t = static_cast<T>(u0);
      const double base = static_cast<double>(u0t);
      int from = 0, fails = 0;
      double smin = DBL_MAX;
      status = DONE;
      for (;;) {
        summed += sum_cells<T, D, PERIODIC>(a, sh, w, listed, count, u0, u0t, from, cut);
        smin = DBL_MAX;
        for (int64_t p = 0; p < count; ++p) smin = fmin(smin, base + log(sh.tot[p]));
        if (!(smin > u0 - Range<T>::below)) {
          status = UNDERFLOW;
          break;
        }
        if (lfar > a.ltol + smin) {
          status = FAR;
          break;
        }
        Lse rest;
        for (int64_t t = threadIdx.x; t < w.total; t += THREADS) {
          double ub;
          if (cell_bound(c, w, sh, listed, t, ub) >= 0 && bucket_of(u0, ub) >= cut) rest.add(ub);
        }
        rest = block_lse(rest, sh.scratch);
        if (lfar > -DBL_MAX) rest.add(lfar);
        const double lr = rest.log();
        if (lr <= a.ltol + smin || cut > BUCKETS - 1) {
          bound = rest.s > 0 ? log1p(exp(lr - smin)) : 0;
          break;
        }
        from = cut;
        ++cut;
        while (cut < BUCKETS && !(log(sh.bsum[cut]) + u0 <= a.ltol + smin)) ++cut;
        if (++fails >= 2) cut = BUCKETS;  // rounding kept failing the check: take everything
      }
      if (status != FAR || attempt >= MAX_ATTEMPTS) break;
      reach = sqrt(c.lall - a.ltol - smin) + 2 * reach;
      __syncthreads();  // everyone has read sh.tot before it is cleared
    }
    for (int64_t p = threadIdx.x; p < count; p += THREADS)
      a.out[p0 + p] = static_cast<double>(u0t) + log(sh.tot[p]);
    if (threadIdx.x == 0) {
      a.bound[tile] = bound;
      a.pairs[tile] = count * summed;
      a.status[tile] = status;
    }
    __syncthreads();  // shared memory is reused by the next tile
  }
}

template <typename T>
using Kernel = void (*)(Args<T>);

template <typename T, bool P>
Kernel<T> pick(int dim) {
  switch (dim) {
    case 1: return tiles_kernel<T, 1, P>;
    case 2: return tiles_kernel<T, 2, P>;
    case 3: return tiles_kernel<T, 3, P>;
    default: return tiles_kernel<T, 0, P>;
  }
}

// The tiles that came back, summed again one point per tile while the cells are still on the device: one
// point has no spread of densities to underflow and its cut is its own. A tile keeps a nonzero status (and the
// host sums it) when any of its points still could not be settled.
template <typename T>
int point_pass(Args<T> a, Kernel<T> kernel, const T *grid, const int64_t *tiles, int64_t ntiles, double *out,
               double *tile_bound, int64_t *tile_pairs, int *tile_status, Error &err) {
  const int dim = a.cells.dim;
  int64_t count = 0;
  for (int64_t t = 0; t < ntiles; ++t)
    if (tile_status[t] != DONE) count += tiles[t + 1] - tiles[t];
  if (count == 0) return 0;
  HostArray<T> pts(static_cast<size_t>(count * dim));
  HostArray<int64_t> rows(static_cast<size_t>(count)), one(static_cast<size_t>(count + 1));
  HostArray<double> pout(static_cast<size_t>(count)), pbound(static_cast<size_t>(count));
  HostArray<int64_t> ppairs(static_cast<size_t>(count));
  HostArray<int> pstatus(static_cast<size_t>(count));
  if (!pts.ok() || !rows.ok() || !one.ok() || !pout.ok() || !pbound.ok() || !ppairs.ok() || !pstatus.ok()) {
    err.set(2, "cufes: out of host memory for %lld points summed one by one", static_cast<long long>(count));
    return err.code;
  }
  int64_t i = 0;
  for (int64_t t = 0; t < ntiles; ++t)
    for (int64_t r = tiles[t]; tile_status[t] != DONE && r < tiles[t + 1]; ++r, ++i) {
      rows[i] = r;
      for (int d = 0; d < dim; ++d) pts[i * dim + d] = grid[r * dim + d];
    }
  for (int64_t p = 0; p <= count; ++p) one[p] = p;
  DeviceBuffer d_grid, d_tiles, d_out, d_bound, d_pairs, d_status;
  if (!upload(d_grid, pts.data(), count * dim, err, "cudaMalloc(points)") ||
      !upload(d_tiles, one.data(), count + 1, err, "cudaMalloc(point tiles)") ||
      !d_out.alloc(count * sizeof(double), err, "cudaMalloc(out)") ||
      !d_bound.alloc(count * sizeof(double), err, "cudaMalloc(bound)") ||
      !d_pairs.alloc(count * sizeof(int64_t), err, "cudaMalloc(pairs)") ||
      !d_status.alloc(count * sizeof(int), err, "cudaMalloc(status)"))
    return err.code;
  a.grid = d_grid.as<T>();
  a.tile_start = d_tiles.as<int64_t>();
  a.ntiles = count;
  a.out = d_out.as<double>();
  a.bound = d_bound.as<double>();
  a.pairs = d_pairs.as<int64_t>();
  a.status = d_status.as<int>();
  kernel<<<static_cast<unsigned>(std::min<int64_t>(count, 1 << 20)), THREADS>>>(a);
  if (!check_launch(err, "truncated tiles_kernel launch (points)") ||
      !CUFES_CHECK(err, cudaMemcpy(pout.data(), d_out.ptr, count * sizeof(double), cudaMemcpyDeviceToHost)) ||
      !CUFES_CHECK(err, cudaMemcpy(pbound.data(), d_bound.ptr, count * sizeof(double), cudaMemcpyDeviceToHost)) ||
      !CUFES_CHECK(err, cudaMemcpy(ppairs.data(), d_pairs.ptr, count * sizeof(int64_t), cudaMemcpyDeviceToHost)) ||
      !CUFES_CHECK(err, cudaMemcpy(pstatus.data(), d_status.ptr, count * sizeof(int), cudaMemcpyDeviceToHost)))
    return err.code;
  i = 0;
  for (int64_t t = 0; t < ntiles; ++t) {
    if (tile_status[t] == DONE) continue;
    int status = DONE;
    for (int64_t r = tiles[t]; r < tiles[t + 1]; ++r, ++i) {
      out[rows[i]] = pout[i];
      tile_bound[t] = std::max(tile_bound[t], pbound[i]);
      tile_pairs[t] += ppairs[i];
      status = pstatus[i] != DONE ? pstatus[i] : status;
    }
    tile_status[t] = status;
  }
  return 0;
}

// The tile offsets relative to the first, checked: every tile has 1..TILE_MAX points.
inline bool tile_offsets(const int64_t *tile_start, int64_t ntiles, HostArray<int64_t> &tiles, Error &err) {
  if (!tiles.ok()) {
    err.set(2, "cufes: out of host memory for %lld tile offsets", static_cast<long long>(ntiles + 1));
    return false;
  }
  for (int64_t t = 0; t < ntiles; ++t)
    if (tile_start[t + 1] - tile_start[t] > TILE_MAX || tile_start[t + 1] < tile_start[t]) {
      err.set(1, "cufes: tile %lld has %lld points (1..%d allowed)", static_cast<long long>(t),
              static_cast<long long>(tile_start[t + 1] - tile_start[t]), TILE_MAX);
      return false;
    }
  for (int64_t t = 0; t <= ntiles; ++t) tiles[t] = tile_start[t] - tile_start[0];
  return true;
}

inline bool check_samples(const cufes_samples *s, Error &err) {
  if (s->dim < 1 || s->dim > CUFES_MAX_DIM) {
    err.set(1, "cufes: dim must be 1..%d, got %d", CUFES_MAX_DIM, s->dim);
    return false;
  }
  if (s->n < 0 || s->n > INT_MAX || s->cap < 1 || s->cap > INT_MAX / 8 || !(s->side > 0)) {
    err.set(1, "cufes: %lld samples (at most %d), %lld cells (1..%d) and a cell side > 0 allowed",
            static_cast<long long>(s->n), INT_MAX, static_cast<long long>(s->cap), INT_MAX / 8);
    return false;
  }
  return true;
}

// The kernels' view of the device cells.
template <typename T>
void describe(const cells::DeviceCells<T> &dc, Args<T> &a, bool &periodic) {
  const int dim = dc.grid.dim;
  a.cells.dim = dim;
  periodic = false;
  for (int d = 0; d < dim; ++d) {
    a.cells.shape[d] = dc.grid.shape[d];
    a.cells.origin[d] = dc.grid.origin[d];
    a.cells.width[d] = dc.grid.width[d];
    a.cells.period[d] = dc.grid.period[d];
    a.period[d] = static_cast<T>(dc.grid.period[d]);
    periodic = periodic || dc.grid.period[d] > 0;
  }
  a.cells.ncells = dc.ncells;
  a.cells.start = dc.start.template as<int64_t>();
  a.cells.dense = dc.dense.template as<int64_t>();
  a.cells.lmass = dc.lmass.template as<double>();
  a.cells.box = dc.box.template as<double>();
  a.cells.lall = dc.lall;
  a.samples_t = dc.samples_t.template as<T>();
  a.lw = dc.lw.template as<T>();
  a.n = dc.kept;
}

template <typename T>
int run(const cufes_samples *samples, const T *grid, const int64_t *tile_start, int64_t ntiles,
        const cufes_truncation *opt, double *out, double *tile_bound, int64_t *tile_pairs, int *tile_status,
        cufes_cells_info *info, int device, Error &err) {
  if (!check_samples(samples, err)) return err.code;
  const int dim = samples->dim;
  HostArray<int64_t> tiles(static_cast<size_t>(ntiles > 0 ? ntiles + 1 : 1));
  if (ntiles > 0 && !tile_offsets(tile_start, ntiles, tiles, err)) return err.code;
  cudaGetLastError();
  DeviceScope scope(device, err);
  if (!scope.ok) return err.code;
  cells::DeviceCells<T> dc;
  if (!cells::build<T>(*samples, dc, err)) return err.code;
  info->kept = dc.kept;
  info->ncells = dc.ncells;
  info->lall = dc.lall;
  if (ntiles <= 0) return 0;
  const int64_t m = tile_start[ntiles] - tile_start[0];
  if (dc.ncells == 0) {  // no sample kept: nothing to sum
    for (int64_t i = 0; i < m; ++i) out[i] = -INFINITY;
    for (int64_t t = 0; t < ntiles; ++t) tile_bound[t] = 0, tile_pairs[t] = 0, tile_status[t] = DONE;
    return 0;
  }
  DeviceBuffer d_grid, d_tiles, d_out, d_bound, d_pairs, d_status;
  if (!upload(d_grid, grid + tile_start[0] * dim, m * dim, err, "cudaMalloc(grid)") ||
      !upload(d_tiles, tiles.data(), ntiles + 1, err, "cudaMalloc(tiles)") ||
      !d_out.alloc(m * sizeof(double), err, "cudaMalloc(out)") ||
      !d_bound.alloc(ntiles * sizeof(double), err, "cudaMalloc(bound)") ||
      !d_pairs.alloc(ntiles * sizeof(int64_t), err, "cudaMalloc(pairs)") ||
      !d_status.alloc(ntiles * sizeof(int), err, "cudaMalloc(status)"))
    return err.code;
  Args<T> a{};
  bool periodic = false;
  describe(dc, a, periodic);
  a.grid = d_grid.as<T>();
  a.tile_start = d_tiles.as<int64_t>();
  a.ntiles = ntiles;
  a.reach = opt->reach;
  a.gap = opt->gap;
  a.ltol = std::log(opt->tolerance) + std::log(SAFETY);
  a.out = d_out.as<double>();
  a.bound = d_bound.as<double>();
  a.pairs = d_pairs.as<int64_t>();
  a.status = d_status.as<int>();
  Kernel<T> kernel = periodic ? pick<T, true>(dim) : pick<T, false>(dim);
  const unsigned blocks = static_cast<unsigned>(std::min<int64_t>(ntiles, 1 << 20));
  kernel<<<blocks, THREADS>>>(a);
  if (!check_launch(err, "truncated tiles_kernel launch")) return err.code;
  if (!CUFES_CHECK(err, cudaMemcpy(out, d_out.ptr, m * sizeof(double), cudaMemcpyDeviceToHost)) ||
      !CUFES_CHECK(err, cudaMemcpy(tile_bound, d_bound.ptr, ntiles * sizeof(double), cudaMemcpyDeviceToHost)) ||
      !CUFES_CHECK(err, cudaMemcpy(tile_pairs, d_pairs.ptr, ntiles * sizeof(int64_t), cudaMemcpyDeviceToHost)) ||
      !CUFES_CHECK(err, cudaMemcpy(tile_status, d_status.ptr, ntiles * sizeof(int), cudaMemcpyDeviceToHost)))
    return err.code;
  return point_pass<T>(a, kernel, grid + tile_start[0] * dim, tiles.data(), ntiles, out, tile_bound, tile_pairs,
                       tile_status, err);
}

// The cells alone, copied back (cufes_cells_f32 says the layout).
template <typename T>
int copy_cells(const cufes_samples *samples, T *samples_t, T *lw, int64_t *start, double *lmass, double *box,
               int64_t *dense, int64_t *shape, double *origin, double *width, cufes_cells_info *info, int device,
               Error &err) {
  if (!check_samples(samples, err)) return err.code;
  cudaGetLastError();
  DeviceScope scope(device, err);
  if (!scope.ok) return err.code;
  cells::DeviceCells<T> dc;
  if (!cells::build<T>(*samples, dc, err)) return err.code;
  const int dim = samples->dim;
  const int64_t kept = dc.kept, ncells = dc.ncells;
  for (int d = 0; d < dim; ++d) {
    shape[d] = dc.grid.shape[d];
    origin[d] = dc.grid.origin[d];
    width[d] = dc.grid.width[d];
  }
  // samples_t rows are `kept` long on the device and n long in the caller's array
  for (int d = 0; d < dim && kept > 0; ++d)
    if (!CUFES_CHECK(err, cudaMemcpy(samples_t + d * samples->n, dc.samples_t.template as<T>() + d * kept,
                                     kept * sizeof(T), cudaMemcpyDeviceToHost)))
      return err.code;
  if (!download(lw, dc.lw, kept, err) || !download(start, dc.start, ncells + 1, err) ||
      !download(lmass, dc.lmass, ncells, err) || !download(box, dc.box, ncells * 2 * dim, err) ||
      !download(dense, dc.dense, dc.cells, err))
    return err.code;
  info->kept = kept;
  info->ncells = ncells;
  info->lall = dc.lall;
  return 0;
}

}  // namespace truncated
}  // namespace cufes_internal

extern "C" {

#define CUFES_TRUNCATED(T, SUFFIX)                                                                             \
  CUFES_API int cufes_truncated_##SUFFIX(const cufes_samples *samples, const T *grid, const int64_t *tile_start, \
                                         int64_t ntiles, const cufes_truncation *opt, double *out,              \
                                         double *tile_bound, int64_t *tile_pairs, int *tile_status,             \
                                         cufes_cells_info *info, int device, char *err, size_t errlen) {        \
    cufes_internal::Error e{err, errlen};                                                                      \
    if (err && errlen) err[0] = '\0';                                                                          \
    return cufes_internal::truncated::run<T>(samples, grid, tile_start, ntiles, opt, out, tile_bound,          \
                                             tile_pairs, tile_status, info, device, e);                        \
  }                                                                                                            \
  CUFES_API int cufes_cells_##SUFFIX(const cufes_samples *samples, T *samples_t, T *lw, int64_t *start,         \
                                     double *lmass, double *box, int64_t *dense, int64_t *shape,               \
                                     double *origin, double *width, cufes_cells_info *info, int device,         \
                                     char *err, size_t errlen) {                                                \
    cufes_internal::Error e{err, errlen};                                                                      \
    if (err && errlen) err[0] = '\0';                                                                          \
    return cufes_internal::truncated::copy_cells<T>(samples, samples_t, lw, start, lmass, box, dense, shape,   \
                                                    origin, width, info, device, e);                          \
  }

CUFES_TRUNCATED(float, f32)
CUFES_TRUNCATED(double, f64)

}  // extern "C"
