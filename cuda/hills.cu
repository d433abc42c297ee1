// Sums of metadynamics hills on a grid (hills.h): a block owns a tile of grid points and one share of the hills,
// streams its hills through in rounds of 256, keeps those whose box meets the tile (a cheap test, compacted in
// hill order) and adds them to every point of the tile.
//
// Diagonal hills (the usual case) are added as the CPU kernel adds them: exp(-r2/2) is a product of per-CV
// factors, so a batch of kept hills first gets its factor tables for the tile's coordinates on each CV (one
// division and one exp per hill, CV and coordinate, in shared memory), and then each point costs an add, a
// compare and a multiply-add per hill: the work per point no longer holds an exp, a division and a periodic
// difference. The r2 of the cut test is summed from the same (u_d)^2 in the same order as the CPU kernel's, so
// both keep the same points. Multivariate hills (and, for comparison, diagonal ones under
// CUFES_HILLS_KERNEL=points) take the per-point kernel: each thread evaluates its point's Gaussian in full.
//
// Shares of the hills write separate partial sums, added in a fixed order at the end, so results are the same
// from run to run.
#include <cstdint>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "hills.h"
#include "hills_exp.h"
#include "hills_points.h"
#include "host_util.cuh"

// A named namespace: nvcc names anonymous-namespace kernels after a hash of the source file's path, which
// would make the library differ from one build directory to another.
namespace cufes_hills {

constexpr int kThreads = 256;         // points per tile, threads per block
constexpr int64_t kDefaultChunk = 1 << 19;  // hills per transfer (two in flight: one copied while one is summed)
constexpr int kMaxShares = 64;        // hill shares per tile when the grid has few tiles

struct Grid {
  int dim;
  int nbin[CUFES_HILLS_MAX_DIM];
  int tile[CUFES_HILLS_MAX_DIM];      // tile extent per CV (their product <= kThreads)
  int ntiles[CUFES_HILLS_MAX_DIM];
  int periodic[CUFES_HILLS_MAX_DIM];
  double gmin[CUFES_HILLS_MAX_DIM], dx[CUFES_HILLS_MAX_DIM], period[CUFES_HILLS_MAX_DIM],
      inv_period[CUFES_HILLS_MAX_DIM];
  int64_t stride[CUFES_HILLS_MAX_DIM];
  int64_t size;
};

using cufes_internal::DeviceBuffer;
using cufes_internal::DeviceScope;
using cufes_internal::Error;
using cufes_internal::Event;
using cufes_internal::HostArray;
using cufes_internal::Stream;

// A failure recorded in err, returned as the C API's code.
inline int fail(Error &err, int code, const char *what) {
  err.set(code, "cufes: %s", what);
  return err.code;
}

__host__ __device__ inline int64_t floor_div(int64_t a, int64_t b) {  // b > 0
  int64_t q = a / b;
  return (a % b != 0 && a < 0) ? q - 1 : q;
}

__host__ __device__ inline int64_t pos_mod(int64_t a, int64_t b) {
  int64_t r = a % b;
  return r < 0 ? r + b : r;
}

// The grid index of a centre on CV d, as the CPU kernel computes it (once per hill, not per tile).
__host__ __device__ inline int64_t centre_index(const Grid &g, int d, double c) {
  const double f = floor((c - g.gmin[d]) / g.dx[d]);
  return f < -4e18 ? INT64_MIN / 2 : f > 4e18 ? INT64_MAX / 2 : static_cast<int64_t>(f);
}

// How many offsets k in [-nn, nn] of a box centred on index ic land on index i (PLUMED's Grid::getNeighbors
// wraps a periodic box without removing repeats); nn < 0: the whole axis, each point once.
__device__ inline int multiplicity(const Grid &g, int d, int i, int ic, int nn) {
  if (nn < 0) return 1;
  if (!g.periodic[d]) {
    const int64_t k = static_cast<int64_t>(i) - ic;
    return (k >= -nn && k <= nn) ? 1 : 0;
  }
  const int nb = g.nbin[d];
  if (2 * nn + 1 < nb) {  // a box narrower than the axis: no repeats (the usual case, without a division)
    int r = i - ic;
    r = r < -nb || r >= nb ? static_cast<int>(pos_mod(r, nb)) : r < 0 ? r + nb : r;
    return r <= nn || r >= nb - nn ? 1 : 0;
  }
  const int64_t r = pos_mod(static_cast<int64_t>(i) - ic, nb);
  const int64_t count = floor_div(nn - r, nb) + floor_div(nn + r, nb) + 1;  // t with -nn <= r + t nb <= nn
  return count > 0 ? static_cast<int>(count) : 0;
}

// Whether the box of a hill (centre index ic, half-width nn) meets indices [lo, hi] of CV d.
__device__ inline bool box_meets(const Grid &g, int d, int ic, int nn, int lo, int hi) {
  if (nn < 0) return nn == -1;  // -2: off the grid
  if (!g.periodic[d]) return static_cast<int64_t>(ic) + nn >= lo && static_cast<int64_t>(ic) - nn <= hi;
  const int nb = g.nbin[d];
  if (2 * static_cast<int64_t>(nn) + 1 >= nb) return true;
  const int s = static_cast<int>(pos_mod(ic - nn, nb));   // ic in [0, nb), nn < nb / 2: no overflow
  return pos_mod(lo - s, nb) <= 2 * nn || pos_mod(s - lo, nb) <= hi - lo;
}

// x - c as the CPU kernel (and PLUMED) computes it: -(c - x), or through Tools::pbc on a periodic CV.
__device__ inline double difference(const Grid &g, int d, double x, double c) {
  const double a = __dadd_rn(c, -x);
  if (!g.periodic[d]) return -a;
  double s = __dadd_rn(__dmul_rn(a, g.inv_period[d]), 100.0);
  const double r = s >= 0 ? __dadd_rn(s, 0.5) : __dadd_rn(s, -0.5);
  s = __dadd_rn(s, -static_cast<double>(static_cast<int>(r)));
  return -__dmul_rn(s, g.period[d]);
}

// The indices of this block's tile and of this thread's point in it (false when the point is off the grid).
template <int D>
__device__ inline bool tile_point(const Grid &g, int *lo, int *hi, int *idx) {
  int64_t t = blockIdx.x;
  int r = threadIdx.x;
  bool on = true;
  for (int d = 0; d < D; ++d) {
    lo[d] = static_cast<int>(t % g.ntiles[d]) * g.tile[d];
    t /= g.ntiles[d];
    hi[d] = min(lo[d] + g.tile[d], g.nbin[d]) - 1;
    idx[d] = lo[d] + r % g.tile[d];
    r /= g.tile[d];
    on = on && idx[d] <= hi[d];
  }
  return on && r == 0;
}

// The hills of a round kept for a tile: their places in the round, in hill order.
struct Meeting {
  int pos[kThreads];
  int warp_counts[kThreads / 32];
};

// The hills of this round ([base, base + 256) within j1) whose box meets the tile [lo, hi], in hill order, into
// m.pos; returns how many. ic, nn: per hill and CV, the centre's grid index and the box half-width (box_kernel).
template <int D>
__device__ inline int meeting_positions(const Grid &g, const int *__restrict__ ic, const int *__restrict__ nn,
                                        int64_t base, int64_t j1, const int *lo, const int *hi, Meeting &m) {
  const int64_t j = base + threadIdx.x;
  bool meets = j < j1;
  for (int d = 0; d < D && meets; ++d) meets = box_meets(g, d, ic[j * D + d], nn[j * D + d], lo[d], hi[d]);
  const unsigned ballot = __ballot_sync(0xffffffffu, meets);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) m.warp_counts[warp] = __popc(ballot);
  __syncthreads();
  int before = 0, total = 0;
  for (int w = 0; w < kThreads / 32; ++w) {
    before += w < warp ? m.warp_counts[w] : 0;
    total += m.warp_counts[w];
  }
  if (meets) m.pos[before + __popc(ballot & ((1u << lane) - 1u))] = threadIdx.x;
  __syncthreads();
  return total;
}

// Per hill kept for a tile by the per-point kernel: its place in the round and, for diagonal hills, 1/sigma.
template <int D>
struct Kept {
  Meeting m;
  double inv_w[kThreads][D];
};

template <int D, bool MULTI>
__device__ inline int meeting_hills(const Grid &g, const int *__restrict__ ic, const int *__restrict__ nn,
                                    const double *__restrict__ shape, int64_t base, int64_t j1, const int *lo,
                                    const int *hi, Kept<D> &kept) {
  const int total = meeting_positions<D>(g, ic, nn, base, j1, lo, hi, kept.m);
  if (!MULTI) {
    for (int q = threadIdx.x; q < total; q += kThreads)
      for (int d = 0; d < D; ++d) kept.inv_w[q][d] = 1.0 / shape[(base + kept.m.pos[q]) * D + d];
    __syncthreads();
  }
  return total;
}

// r2 of a diagonal hill with PLUMED's rounding (true divisions): only for points at the cut.
template <int D>
__device__ inline double exact_r2(const double *dp, const double *shape) {
  double r2 = 0.0;
  for (int d = 0; d < D; ++d) {
    const double u = __ddiv_rn(dp[d], shape[d]);
    r2 = __dadd_rn(r2, __dmul_rn(u, u));
  }
  return r2;
}

// One hill at one point: adds mult (hA e + hB) and its derivatives where r2/2 < cut.
template <int D, bool MULTI, bool DER>
__device__ inline void add_hill(const Grid &g, const double *x, const int *idx, const double *c,
                                const double *shape, const int *ic, const int *nn, const double *inv_w,
                                double hA, double hB, double cut, bool use_cut, double &acc, double *dacc) {
  int mult = 1;
  double dp[D];
  for (int d = 0; d < D; ++d) {
    mult *= multiplicity(g, d, idx[d], ic[d], nn[d]);
    if (mult == 0) return;
    dp[d] = difference(g, d, x[d], c[d]);
  }
  double r2 = 0.0, grad[D];
  if (MULTI) {
    for (int a = 0; a < D; ++a) {
      grad[a] = 0.0;
      for (int b = 0; b < D; ++b) {
        grad[a] = __dadd_rn(grad[a], __dmul_rn(shape[a * D + b], dp[b]));
        r2 = __dadd_rn(r2, __dmul_rn(__dmul_rn(dp[a], dp[b]), shape[a * D + b]));
      }
    }
  } else {
    for (int d = 0; d < D; ++d) {
      const double u = dp[d] * inv_w[d];  // within an ulp of dp / sigma ...
      grad[d] = u * inv_w[d];
      r2 += u * u;
    }
    // ... so only a point this close to the cut can fall on the other side of it than with true divisions
    if (use_cut && fabs(0.5 * r2 - cut) <= 1e-9 * cut) r2 = exact_r2<D>(dp, shape);
  }
  if (use_cut && !(__dmul_rn(0.5, r2) < cut)) return;
  const double e = exp(-0.5 * r2);
  acc += mult * (hA * e + hB);
  if (DER)
    for (int d = 0; d < D; ++d) dacc[d] -= mult * hA * e * grad[d];
}

template <int D, bool MULTI, bool DER>
__global__ void __launch_bounds__(kThreads) hills_kernel(Grid g, const double *__restrict__ centers,
                                                         const double *__restrict__ shape,
                                                         const double *__restrict__ hA,
                                                         const double *__restrict__ hB, const int *__restrict__ ic,
                                                         const int *__restrict__ nn, int64_t n, int64_t share,
                                                         double cut, int use_cut, double *__restrict__ partial) {
  __shared__ Kept<D> kept;
  constexpr int S = MULTI ? D * D : D;
  int lo[D], hi[D], idx[D];
  const bool on = tile_point<D>(g, lo, hi, idx);
  double x[D];
  for (int d = 0; d < D; ++d) x[d] = __dadd_rn(g.gmin[d], __dmul_rn(static_cast<double>(idx[d]), g.dx[d]));
  double acc = 0.0, dacc[D];
  for (int d = 0; d < D; ++d) dacc[d] = 0.0;
  const int64_t j0 = blockIdx.y * share, j1 = min(n, j0 + share);
  for (int64_t base = j0; base < j1; base += kThreads) {
    const int count = meeting_hills<D, MULTI>(g, ic, nn, shape, base, j1, lo, hi, kept);
    if (on) {
      for (int q = 0; q < count; ++q) {
        const int64_t j = base + kept.m.pos[q];
        add_hill<D, MULTI, DER>(g, x, idx, centers + j * D, shape + j * S, ic + j * D, nn + j * D, kept.inv_w[q],
                                hA[j], hB[j], cut, use_cut != 0, acc, dacc);
      }
    }
    __syncthreads();  // kept is refilled next round
  }
  if (!on) return;
  int64_t flat = 0;
  for (int d = 0; d < D; ++d) flat += static_cast<int64_t>(idx[d]) * g.stride[d];
  const int nd = DER ? D + 1 : 1;
  double *mine = partial + static_cast<int64_t>(blockIdx.y) * nd * g.size;
  mine[flat] += acc;
  if (DER)
    for (int d = 0; d < D; ++d) mine[(d + 1) * g.size + flat] += dacc[d];
}

// ----------------------------------------------------------------------------- diagonal hills: factor tables
// A tile is TC points along CV 0 (a warp's row) by up to TR rows (the other CVs' tile extents, TE at most each).
// Threads own one column and RPT rows; factor tables are built for BH kept hills at a time.
template <int D>
struct Shape {
  static constexpr int TC = D == 1 ? kThreads : 32;
  static constexpr int NG = kThreads / TC;     // row groups (warps for D >= 2)
  static constexpr int TR = D == 1 ? 1 : 32;
  static constexpr int RPT = (TR + NG - 1) / NG;
  static constexpr int BH = D == 1 ? 2 : 8;
  static constexpr int R = D > 1 ? D - 1 : 1;  // CVs after the first (an array extent)
  static constexpr int TE = D == 1 ? 1 : D == 2 ? 32 : D == 3 ? 8 : 4;
};

// Per hill of a batch: on CV 0 and on each other CV, for each coordinate of the tile, q = (u_d)^2 (infinite where
// the coordinate is outside the hill's box), m e and m f with e = exp(-q/2), f = -(u_d/s_d) e and m the
// coordinate's multiplicity in the box, and m; per row of the tile the other CVs' q (in CV order) and the row's
// weights hA prod(m e), hB prod(m), hA (m f)_d prod_{d' != d}(m e) (infinite first q: the row is skipped).
template <int D, bool DER>
struct Tables {
  using S = Shape<D>;
  static constexpr int BD = DER ? S::BH : 1;
  double cq[S::BH][S::TC], ce[S::BH][S::TC], cm[S::BH][S::TC], cf[BD][S::TC];
  double aq[S::BH][S::R][S::TE], ae[S::BH][S::R][S::TE], am[S::BH][S::R][S::TE], af[BD][S::R][S::TE];
  double rq[S::BH][S::TR][S::R], rw[S::BH][S::TR], rb[S::BH][S::TR], rf[BD][S::TR][S::R];
  double ha[S::BH], hb[S::BH];
  int lo[D], hi[D];
};

// One factor: coordinate i of CV d (hi: the tile's last on-grid index) for a hill of centre c and width w.
// q rounds as the CPU kernel's (u = dp / w, q = u u); where q alone fails the cut (r2 >= q) e is not needed.
template <bool DER>
__device__ inline void factor(const Grid &g, int d, int i, int hi, double c, double w, int ic, int nn, double lim,
                              double &q, double &e, double &m, double &f) {
  const int mult = i <= hi ? multiplicity(g, d, i, ic, nn) : 0;
  q = __longlong_as_double(0x7ff0000000000000LL);  // +inf
  e = m = f = 0.0;
  if (mult == 0) return;
  const double x = __dadd_rn(g.gmin[d], __dmul_rn(static_cast<double>(i), g.dx[d]));
  const double u = __ddiv_rn(difference(g, d, x, c), w);
  q = __dmul_rn(u, u);
  m = mult;
  if (!(q < lim)) return;
  const double ex = cyfes_hills_exp(__dmul_rn(-0.5, q));
  e = m * ex;
  if (DER) f = m * __dmul_rn(-__ddiv_rn(u, w), ex);
}

template <int D, bool DER>
__device__ inline void batch_factors(const Grid &g, const double *__restrict__ centers,
                                     const double *__restrict__ widths, const double *__restrict__ hA,
                                     const double *__restrict__ hB, const int *__restrict__ ic,
                                     const int *__restrict__ nn, int64_t base, const int *pos, int nb, double lim,
                                     Tables<D, DER> &t) {
  using S = Shape<D>;
  constexpr int per = S::TC + (D > 1 ? S::R * S::TE : 0);
  for (int k = threadIdx.x; k < nb * per; k += kThreads) {
    const int b = k / per, slot = k % per;
    const int d = slot < S::TC ? 0 : 1 + (slot - S::TC) / S::TE;
    const int e = slot < S::TC ? slot : (slot - S::TC) % S::TE;
    if (D != 2 && d > 0 && e >= g.tile[d]) continue;  // D == 2: such rows are marked missed below
    const int64_t j = (base + pos[b]) * D + d;
    double q, ev, m, f;
    factor<DER>(g, d, t.lo[d] + e, t.hi[d], centers[j], widths[j], ic[j], nn[j], lim, q, ev, m, f);
    if (D == 2 && d == 1) {  // the row itself: what batch_rows would make of this one factor, bit for bit
      const int64_t jh = base + pos[b];
      const bool keep = m != 0.0 && q < lim;
      t.rq[b][e][0] = keep ? q : __longlong_as_double(0x7ff0000000000000LL);
      if (keep) {
        t.rw[b][e] = hA[jh] * ev;
        t.rb[b][e] = hB[jh] * m;
        if (DER) t.rf[b][e][0] = hA[jh] * f;
      }
      continue;
    }
    if (d == 0) {
      t.cq[b][e] = q, t.ce[b][e] = ev, t.cm[b][e] = m;
      if (DER) t.cf[b][e] = f;
    } else {
      t.aq[b][d - 1][e] = q, t.ae[b][d - 1][e] = ev, t.am[b][d - 1][e] = m;
      if (DER) t.af[b][d - 1][e] = f;
    }
  }
  if (threadIdx.x < nb) {
    const int64_t j = base + pos[threadIdx.x];
    t.ha[threadIdx.x] = hA[j];
    t.hb[threadIdx.x] = hB[j];
  }
}

// The rows of a batch from the other CVs' factors (D >= 3; with 2 CVs a row is one factor, which batch_factors
// writes as a row itself: one pass and one barrier fewer per batch, 9% of the 2-CV call on an H100).
template <int D, bool DER>
__device__ inline void batch_rows(const Grid &g, int nb, double lim, Tables<D, DER> &t) {
  using S = Shape<D>;
  for (int k = threadIdx.x; k < nb * S::TR; k += kThreads) {
    const int b = k / S::TR, row = k % S::TR;
    int at[S::R], r = row;
#pragma unroll
    for (int d = 0; d < S::R; ++d) {
      at[d] = r % g.tile[d + 1];
      r /= g.tile[d + 1];
    }
    double mr = 1.0, er = 1.0, s = 0.0;
#pragma unroll
    for (int d = 0; d < S::R; ++d) {
      mr *= t.am[b][d][at[d]];
      er *= t.ae[b][d][at[d]];
      s = d == 0 ? t.aq[b][d][at[d]] : s + t.aq[b][d][at[d]];  // r2 >= this partial sum (rounding is monotone)
    }
    if (r != 0 || mr == 0.0 || !(s < lim)) {
      t.rq[b][row][0] = __longlong_as_double(0x7ff0000000000000LL);
      continue;
    }
#pragma unroll
    for (int d = 0; d < S::R; ++d) t.rq[b][row][d] = t.aq[b][d][at[d]];
    t.rw[b][row] = t.ha[b] * er;
    t.rb[b][row] = t.hb[b] * mr;
    if (DER) {
#pragma unroll
      for (int d = 0; d < S::R; ++d) {
        double others = 1.0;
#pragma unroll
        for (int d2 = 0; d2 < S::R; ++d2) others *= d2 == d ? t.af[b][d][at[d]] : t.ae[b][d2][at[d2]];
        t.rf[b][row][d] = t.ha[b] * others;
      }
    }
  }
}

// Each thread adds the batch to its points: per hill and point an add per CV, a compare and a multiply-add.
template <int D, bool DER>
__device__ inline void batch_add(int nb, int col, int grp, double lim, const Tables<D, DER> &t,
                                 double (&acc)[Shape<D>::RPT], double (&dacc)[Shape<D>::RPT][D]) {
  using S = Shape<D>;
  for (int b = 0; b < nb; ++b) {
    const double q0 = t.cq[b][col], e0 = t.ce[b][col], m0 = t.cm[b][col], f0 = DER ? t.cf[b][col] : 0.0;
#pragma unroll
    for (int rr = 0; rr < S::RPT; ++rr) {
      const int row = grp + rr * S::NG;
      if (row >= S::TR) break;
      double r2 = q0, w, hb;
      if constexpr (D == 1) {
        w = t.ha[b];
        hb = t.hb[b];
      } else {
        r2 = r2 + t.rq[b][row][0];  // a row that misses has q = +inf: then r2 fails the cut below
#pragma unroll
        for (int d = 1; d < S::R; ++d) r2 = r2 + t.rq[b][row][d];  // in CV order, as the CPU kernel sums it
        w = t.rw[b][row];
        hb = t.rb[b][row];
      }
      if (r2 < lim) {  // 0.5 r2 < cut, exactly: both sides are scaled by a power of two
        acc[rr] += fma(w, e0, hb * m0);
        if (DER) {
          dacc[rr][0] += w * f0;
          if constexpr (D > 1) {
#pragma unroll
            for (int d = 1; d < D; ++d) dacc[rr][d] += t.rf[b][row][d - 1] * e0;
          }
        }
      }
    }
  }
}

template <int D, bool DER>
__global__ void __launch_bounds__(kThreads) diag_kernel(Grid g, const double *__restrict__ centers,
                                                        const double *__restrict__ widths,
                                                        const double *__restrict__ hA,
                                                        const double *__restrict__ hB, const int *__restrict__ ic,
                                                        const int *__restrict__ nn, int64_t n, int64_t share,
                                                        double lim, double *__restrict__ partial) {
  using S = Shape<D>;
  __shared__ Meeting meet;
  __shared__ Tables<D, DER> t;
  if (threadIdx.x == 0) {
    int64_t r = blockIdx.x;
    for (int d = 0; d < D; ++d) {
      t.lo[d] = static_cast<int>(r % g.ntiles[d]) * g.tile[d];
      r /= g.ntiles[d];
      t.hi[d] = min(t.lo[d] + g.tile[d], g.nbin[d]) - 1;
    }
  }
  __syncthreads();
  int lo[D], hi[D];
#pragma unroll
  for (int d = 0; d < D; ++d) lo[d] = t.lo[d], hi[d] = t.hi[d];
  // grp < NG (kThreads threads): with that the compiler drops the row bound checks of batch_add's unrolled loop
  const int col = threadIdx.x % S::TC, grp = (threadIdx.x / S::TC) % S::NG;
  double acc[S::RPT], dacc[S::RPT][D];
#pragma unroll
  for (int rr = 0; rr < S::RPT; ++rr) {
    acc[rr] = 0.0;
#pragma unroll
    for (int d = 0; d < D; ++d) dacc[rr][d] = 0.0;
  }
  const int64_t j0 = blockIdx.y * share, j1 = min(n, j0 + share);
  for (int64_t base = j0; base < j1; base += kThreads) {
    const int count = meeting_positions<D>(g, ic, nn, base, j1, lo, hi, meet);
    for (int q = 0; q < count; q += S::BH) {
      const int nb = min(S::BH, count - q);
      batch_factors<D, DER>(g, centers, widths, hA, hB, ic, nn, base, meet.pos + q, nb, lim, t);
      __syncthreads();
      if constexpr (D > 2) {  // D == 2: batch_factors wrote the rows
        batch_rows<D, DER>(g, nb, lim, t);
        __syncthreads();
      }
      batch_add<D, DER>(nb, col, grp, lim, t, acc, dacc);
      __syncthreads();  // the tables are refilled next batch, meet.pos next round
    }
  }
  const int nd = DER ? D + 1 : 1;
  double *mine = partial + static_cast<int64_t>(blockIdx.y) * nd * g.size;
  if (lo[0] + col > hi[0]) return;
#pragma unroll
  for (int rr = 0; rr < S::RPT; ++rr) {
    int r = grp + rr * S::NG;
    if (r >= S::TR) break;
    int64_t flat = lo[0] + col;
    bool on = true;
    for (int d = 1; d < D; ++d) {
      const int i = lo[d] + r % g.tile[d];
      r /= g.tile[d];
      on = on && i <= hi[d];
      flat += static_cast<int64_t>(i) * g.stride[d];
    }
    if (!on || r != 0) continue;
    mine[flat] += acc[rr];
    if (DER)
      for (int d = 0; d < D; ++d) mine[(d + 1) * g.size + flat] += dacc[rr][d];
  }
}

// Per hill and CV, as ints: the grid index of the centre (modulo the axis on a periodic CV: the same box) and
// the box half-width (-1: the whole axis). A hill whose box cannot reach the grid gets nn = -2: it is skipped.
__global__ void box_kernel(Grid g, const double *__restrict__ centers, const int64_t *__restrict__ nneigh,
                           int64_t n, int *__restrict__ ic, int *__restrict__ nn) {
  const int64_t j = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (j >= n) return;
  const int64_t big = int64_t{1} << 30;
  bool off = false;
  for (int d = 0; d < g.dim; ++d) {
    int64_t i = centre_index(g, d, centers[j * g.dim + d]), h = nneigh[j * g.dim + d];
    if (g.periodic[d]) i = pos_mod(i, g.nbin[d]);
    if (h >= 0 && g.periodic[d]) h = h < big ? h : big;
    if (h >= 0 && !g.periodic[d] && (i + h < 0 || i - h >= g.nbin[d])) off = true;  // box entirely off the grid
    if (!g.periodic[d]) i = i < -big ? -big : i > big ? big : i;
    if (h >= 0 && !g.periodic[d]) h = h < 2 * big ? h : 2 * big;
    ic[j * g.dim + d] = static_cast<int>(i);
    nn[j * g.dim + d] = static_cast<int>(h < 0 ? -1 : h);
  }
  if (off) nn[j * g.dim] = -2;
}

// partial[0] += partial[1] + ... + partial[shares-1], element by element, in that order.
__global__ void sum_shares(double *partial, int64_t len, int shares) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= len) return;
  double s = partial[i];
  for (int k = 1; k < shares; ++k) s += partial[k * len + i];
  partial[i] = s;
}

// The arrays of one chunk of hills on the device.
struct Chunk {
  const double *c, *s, *a, *b;
  const int *ic, *nn;
  int64_t n, share;
};

template <int D, bool MULTI, bool DER>
void launch_points(const Grid &g, dim3 blocks, cudaStream_t stream, const Chunk &h, double cut, int use_cut,
                   double *partial) {
  hills_kernel<D, MULTI, DER><<<blocks, kThreads, 0, stream>>>(g, h.c, h.s, h.a, h.b, h.ic, h.nn, h.n, h.share, cut,
                                                              use_cut, partial);
}

template <int D, bool MULTI, bool DER>
void launch_diag(const Grid &g, dim3 blocks, cudaStream_t stream, const Chunk &h, double cut, int use_cut,
                 double *partial) {
  const double lim = use_cut ? 2.0 * cut : HUGE_VAL;
  diag_kernel<D, DER><<<blocks, kThreads, 0, stream>>>(g, h.c, h.s, h.a, h.b, h.ic, h.nn, h.n, h.share, lim, partial);
}

using Launcher = void (*)(const Grid &, dim3, cudaStream_t, const Chunk &, double, int, double *);

template <int D>
Launcher pick(bool multi, bool der, bool points) {
  if (multi) return der ? launch_points<D, true, true> : launch_points<D, true, false>;
  if (points) return der ? launch_points<D, false, true> : launch_points<D, false, false>;
  return der ? launch_diag<D, false, true> : launch_diag<D, false, false>;
}

Launcher launcher(int dim, bool multi, bool der, bool points) {
  switch (dim) {
    case 1: return pick<1>(multi, der, points);
    case 2: return pick<2>(multi, der, points);
    case 3: return pick<3>(multi, der, points);
    default: return pick<4>(multi, der, points);
  }
}

// Tile extents: double the extent of the CV with the smallest one (the first such, from CV `first`) until
// `points` points, no CV beyond `cap` (or its axis).
void double_tiles(Grid &g, int first, int points, int cap) {
  for (;;) {
    int best = -1;
    int64_t have = 1;
    for (int d = first; d < g.dim; ++d) have *= g.tile[d];
    if (have * 2 > points) break;
    for (int d = first; d < g.dim; ++d)
      if (g.tile[d] < g.nbin[d] && g.tile[d] < cap && (best < 0 || g.tile[d] < g.tile[best])) best = d;
    if (best < 0) break;
    g.tile[best] *= 2;
  }
}

// The per-point kernel: 256 points per tile. The factor tables: Shape<D>::TC along CV 0 by up to TR rows.
template <int D>
void plan_diag_tiles(Grid &g) {
  g.tile[0] = Shape<D>::TC;
  for (int d = 1; d < D; ++d) g.tile[d] = 1;
  double_tiles(g, 1, Shape<D>::TR, Shape<D>::TE);
}

void plan_tiles(Grid &g, bool diag) {
  for (int d = 0; d < g.dim; ++d) g.tile[d] = 1;
  if (!diag) double_tiles(g, 0, kThreads, 1 << 30);
  else if (g.dim == 1) plan_diag_tiles<1>(g);
  else if (g.dim == 2) plan_diag_tiles<2>(g);
  else if (g.dim == 3) plan_diag_tiles<3>(g);
  else plan_diag_tiles<4>(g);
  for (int d = 0; d < g.dim; ++d) g.ntiles[d] = (g.nbin[d] + g.tile[d] - 1) / g.tile[d];
}

int64_t chunk_size() {
  const char *env = getenv("CUFES_HILLS_CHUNK");
  const long long v = env ? atoll(env) : 0;
  return v > 0 ? v : kDefaultChunk;
}

// CUFES_HILLS_KERNEL=points: diagonal hills through the per-point kernel (the reference for the factor tables).
bool points_kernel() {
  const char *env = getenv("CUFES_HILLS_KERNEL");
  return env && strcmp(env, "points") == 0;
}

// Hill shares per tile: enough blocks for several waves on every SM (the last wave's tail is then short), within
// the chunk and a quarter of the free memory for the partial sums.
int plan_shares(int64_t ntiles, int sms, int64_t chunk, int64_t partial_doubles, size_t free_mem, bool diag) {
  const int64_t blocks = (diag ? 16 : 4) * static_cast<int64_t>(sms);
  int64_t shares = (blocks + ntiles - 1) / ntiles;
  shares = shares < 1 ? 1 : shares > kMaxShares ? kMaxShares : shares;
  if (!diag && shares > 32) shares = 32;
  while (shares > 1 && shares * kThreads > chunk) --shares;
  while (shares > 1 && static_cast<double>(shares) * partial_doubles * 8 > 0.25 * free_mem) --shares;
  return static_cast<int>(shares);
}

// The caller's arrays of hills (host memory), as cufes_hills_sum takes them.
struct HostHills {
  const double *c, *s, *a, *b;
  const int64_t *nb;
};

// The device arrays of one chunk of hills: what is copied (centres, shapes, heights, box widths) and what the
// box kernel makes of it (box centres and half-widths as ints).
struct ChunkBuffers {
  DeviceBuffer c, s, a, b, nb, ic, nn;
  bool alloc(int64_t chunk, int dim, int ns, Error &err) {
    return c.alloc(chunk * dim * sizeof(double), err, "cudaMalloc(centres)") &&
           s.alloc(chunk * ns * sizeof(double), err, "cudaMalloc(widths)") &&
           a.alloc(chunk * sizeof(double), err, "cudaMalloc(heights)") &&
           b.alloc(chunk * sizeof(double), err, "cudaMalloc(heights)") &&
           nb.alloc(chunk * dim * sizeof(int64_t), err, "cudaMalloc(box widths)") &&
           ic.alloc(chunk * dim * sizeof(int), err, "cudaMalloc(box centres)") &&
           nn.alloc(chunk * dim * sizeof(int), err, "cudaMalloc(box widths)");
  }
  // Hills [j, j + n) from the host, on `stream` (pageable memory: the call returns once the driver has them).
  bool upload(const HostHills &h, int64_t j, int64_t n, int dim, int ns, cudaStream_t stream, Error &err) {
    const auto put = [&](DeviceBuffer &dst, const void *src, size_t bytes) {
      return CUFES_CHECK(err, cudaMemcpyAsync(dst.ptr, src, bytes, cudaMemcpyHostToDevice, stream));
    };
    return put(c, h.c + j * dim, n * dim * sizeof(double)) && put(s, h.s + j * ns, n * ns * sizeof(double)) &&
           put(a, h.a + j, n * sizeof(double)) && put(b, h.b + j, n * sizeof(double)) &&
           put(nb, h.nb + j * dim, n * dim * sizeof(int64_t));
  }
  Chunk chunk(int64_t n, int shares) const {
    return Chunk{c.as<double>(), s.as<double>(), a.as<double>(), b.as<double>(), ic.as<int>(), nn.as<int>(), n,
                 (n + shares - 1) / shares};
  }
};

int run(Grid &g, const double *centers, const double *shape, bool multi, const double *hA, const double *hB,
        const int64_t *nneigh, int64_t nh, double cut, int use_cut, double *values, double *der, int device,
        Error &err) {
  const bool points = points_kernel();
  plan_tiles(g, !multi && !points);
  DeviceScope scope(device, err);
  int sms = 1;
  if (!scope.ok || !CUFES_CHECK(err, cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device)))
    return err.code;
  int64_t ntiles = 1;
  for (int d = 0; d < g.dim; ++d) ntiles *= g.ntiles[d];
  if (ntiles > 2147483647LL) {
    err.set(1, "cufes: a hills grid of %lld points is too large", (long long)g.size);
    return err.code;
  }
  const int64_t chunk = nh < chunk_size() ? nh : chunk_size();
  const int nd = der ? g.dim + 1 : 1;
  size_t free_mem = 0, total_mem = 0;
  if (!CUFES_CHECK(err, cudaMemGetInfo(&free_mem, &total_mem))) return err.code;
  const int shares = plan_shares(ntiles, sms, chunk, 2 * nd * g.size, free_mem, !multi && !points);
  const int ns = multi ? g.dim * g.dim : g.dim;
  // Two sets of everything a chunk needs, chunk k on set k % 2: its copy (on `copying`) overlaps the sums of chunk
  // k - 1, and its kernel (on its set's stream) may start while chunk k - 1's last blocks finish. Each set's
  // kernels add to their own partial sums, in chunk order, so the result is the same from run to run.
  const int64_t len = nd * g.size;
  const size_t half = static_cast<size_t>(shares) * len;
  DeviceBuffer b_partial;
  ChunkBuffers sets[2];
  Stream copying, summing[2];
  Event copied[2], summed[2];
  if (!sets[0].alloc(chunk, g.dim, ns, err) || !sets[1].alloc(chunk, g.dim, ns, err) ||
      !b_partial.alloc(2 * half * sizeof(double), err, "cudaMalloc(partial sums)") || !copying.create(err) ||
      !summing[0].create(err) || !summing[1].create(err) || !copied[0].create(err) || !copied[1].create(err) ||
      !summed[0].create(err) || !summed[1].create(err) ||
      !CUFES_CHECK(err, cudaMemsetAsync(b_partial.ptr, 0, 2 * half * sizeof(double), summing[0].s)) ||
      !CUFES_CHECK(err, cudaEventRecord(summed[0].e, summing[0].s)) ||
      !CUFES_CHECK(err, cudaStreamWaitEvent(summing[1].s, summed[0].e, 0)))
    return err.code;
  const Launcher go = launcher(g.dim, multi, der != nullptr, points);
  const HostHills host{centers, shape, hA, hB, nneigh};
  int64_t chunks = 0;
  for (int64_t j = 0; j < nh; j += chunk, ++chunks) {
    const int64_t n = nh - j < chunk ? nh - j : chunk;
    const int k = static_cast<int>(chunks & 1);
    ChunkBuffers &set = sets[k];
    cudaStream_t run_on = summing[k].s;
    if ((chunks >= 2 && !CUFES_CHECK(err, cudaStreamWaitEvent(copying.s, summed[k].e, 0))) ||
        !set.upload(host, j, n, g.dim, ns, copying.s, err) || !CUFES_CHECK(err, cudaEventRecord(copied[k].e, copying.s)) ||
        !CUFES_CHECK(err, cudaStreamWaitEvent(run_on, copied[k].e, 0)))
      return err.code;
    Chunk h = set.chunk(n, shares);
    box_kernel<<<static_cast<unsigned>((n + 255) / 256), 256, 0, run_on>>>(g, h.c, set.nb.as<int64_t>(), n,
                                                                          set.ic.as<int>(), set.nn.as<int>());
    if (!cufes_internal::check_launch(err, "hills box kernel")) return err.code;
    go(g, dim3(static_cast<unsigned>(ntiles), static_cast<unsigned>((n + h.share - 1) / h.share)), run_on, h, cut,
       use_cut, b_partial.as<double>() + k * half);
    if (!cufes_internal::check_launch(err, "hills kernel") || !CUFES_CHECK(err, cudaEventRecord(summed[k].e, run_on)))
      return err.code;
  }
  // partial[0] += the other shares of set 0, then set 1's, in that order, once both sets are done
  if (!CUFES_CHECK(err, cudaStreamWaitEvent(summing[0].s, summed[1].e, 0))) return err.code;
  sum_shares<<<static_cast<unsigned>((len + 255) / 256), 256, 0, summing[0].s>>>(b_partial.as<double>(), len,
                                                                                 2 * shares);
  if (!cufes_internal::check_launch(err, "sum_shares") || !CUFES_CHECK(err, cudaStreamSynchronize(summing[0].s)))
    return err.code;
  HostArray<double> sums(static_cast<size_t>(len));
  if (!sums.ok()) return fail(err, 2, "out of host memory for the hills' sums");
  if (!CUFES_CHECK(err, cudaMemcpy(sums.data(), b_partial.ptr, len * sizeof(double), cudaMemcpyDeviceToHost)))
    return err.code;
  for (int64_t i = 0; i < g.size; ++i) values[i] += sums[i];
  if (der)
    for (int64_t i = 0; i < g.dim * g.size; ++i) der[i] += sums[g.size + i];
  return 0;
}

// ---------------------------------------------------------------------------------------------- hills at points
// The bias of the first counts[j] hills at each point j (metadynamics reweighting): a thread per point, the
// hills staged through shared memory a tile at a time, each added with hills_points.h's cyfes_hill_at in hill
// order (so the GPU adds what the CPU kernel adds, in the same order). Points come sorted by count, so the
// threads of a block stop at about the same hill.
constexpr int kPointsTile = 128;
constexpr int64_t kPointsChunk = 1 << 22;  // points per transfer

template <int D, bool MULTI>
__global__ void points_kernel(const double *__restrict__ pts, const int64_t *__restrict__ counts, int64_t n,
                              const double *__restrict__ centers, const double *__restrict__ shape,
                              const double *__restrict__ heights, cyfes_points_periods per, double cut, double a,
                              double b, double *__restrict__ out) {
  constexpr int NS = MULTI ? D * D : D;
  __shared__ double s_c[kPointsTile * D], s_s[kPointsTile * NS], s_h[kPointsTile];
  const int64_t first = static_cast<int64_t>(blockIdx.x) * blockDim.x, j = first + threadIdx.x;
  const int64_t last = first + blockDim.x - 1 < n - 1 ? first + blockDim.x - 1 : n - 1;
  const int64_t top = counts[last];  // the block's most hills: counts ascend
  double x[D];
  int64_t mine = 0;
  if (j < n) {
    for (int d = 0; d < D; ++d) x[d] = pts[j * D + d];
    mine = counts[j];
  }
  double v = 0.0;
  for (int64_t t0 = 0; t0 < top; t0 += kPointsTile) {
    const int m = top - t0 < kPointsTile ? static_cast<int>(top - t0) : kPointsTile;
    __syncthreads();
    for (int k = threadIdx.x; k < m; k += blockDim.x) {
      for (int d = 0; d < D; ++d) s_c[k * D + d] = centers[(t0 + k) * D + d];
      for (int e = 0; e < NS; ++e) s_s[k * NS + e] = shape[(t0 + k) * NS + e];
      s_h[k] = heights[t0 + k];
    }
    __syncthreads();
    const int64_t left = mine - t0;
    const int lim = left <= 0 ? 0 : (left < m ? static_cast<int>(left) : m);
    for (int k = 0; k < lim; ++k)
      v += s_h[k] * cyfes_hill_at(x, &s_c[k * D], &s_s[k * NS], D, MULTI, &per, cut, a, b);
  }
  if (j < n) out[j] = v;
}

using PointsLaunch = void (*)(unsigned, const double *, const int64_t *, int64_t, const double *, const double *,
                              const double *, cyfes_points_periods, double, double, double, double *);

template <int D, bool MULTI>
void launch_points(unsigned blocks, const double *pts, const int64_t *counts, int64_t n, const double *c,
                   const double *s, const double *h, cyfes_points_periods per, double cut, double a, double b,
                   double *out) {
  points_kernel<D, MULTI><<<blocks, kThreads>>>(pts, counts, n, c, s, h, per, cut, a, b, out);
}

PointsLaunch points_launcher(int dim, bool multi) {
  static const PointsLaunch table[2][CUFES_HILLS_MAX_DIM] = {
      {launch_points<1, false>, launch_points<2, false>, launch_points<3, false>, launch_points<4, false>},
      {launch_points<1, true>, launch_points<2, true>, launch_points<3, true>, launch_points<4, true>}};
  return table[multi ? 1 : 0][dim - 1];
}

int points_run(const double *points, const int64_t *counts, int64_t n, int dim, const double *centers,
               const double *shape, int multivariate, const double *heights, int64_t nh,
               const cyfes_points_periods &per, double cut, double a, double b, double *out, int device, Error &err) {
  DeviceScope scope(device, err);
  if (!scope.ok) return err.code;
  const int64_t ns = multivariate ? dim * dim : dim;
  const int64_t chunk = n < kPointsChunk ? n : kPointsChunk;
  DeviceBuffer b_c, b_s, b_h, b_p, b_n, b_o;
  if (!cufes_internal::upload(b_c, centers, nh * dim, err, "cudaMalloc(centres)") ||
      !cufes_internal::upload(b_s, shape, nh * ns, err, "cudaMalloc(widths)") ||
      !cufes_internal::upload(b_h, heights, nh, err, "cudaMalloc(heights)") ||
      !b_p.alloc(chunk * dim * sizeof(double), err, "cudaMalloc(points)") ||
      !b_n.alloc(chunk * sizeof(int64_t), err, "cudaMalloc(counts)") ||
      !b_o.alloc(chunk * sizeof(double), err, "cudaMalloc(bias at points)"))
    return err.code;
  const PointsLaunch go = points_launcher(dim, multivariate != 0);
  for (int64_t j = 0; j < n; j += chunk) {
    const int64_t m = n - j < chunk ? n - j : chunk;
    if (!CUFES_CHECK(err, cudaMemcpy(b_p.ptr, points + j * dim, m * dim * sizeof(double), cudaMemcpyHostToDevice)) ||
        !CUFES_CHECK(err, cudaMemcpy(b_n.ptr, counts + j, m * sizeof(int64_t), cudaMemcpyHostToDevice)))
      return err.code;
    go(static_cast<unsigned>((m + kThreads - 1) / kThreads), b_p.as<double>(), b_n.as<int64_t>(), m,
       b_c.as<double>(), b_s.as<double>(), b_h.as<double>(), per, cut, a, b, b_o.as<double>());
    if (!cufes_internal::check_launch(err, "hills-at-points kernel") ||
        !CUFES_CHECK(err, cudaMemcpy(out + j, b_o.ptr, m * sizeof(double), cudaMemcpyDeviceToHost)))
      return err.code;
  }
  return 0;
}

}  // namespace cufes_hills

using namespace cufes_hills;

CUFES_API int cufes_hills_sum(int dim, const int64_t *nbin, const double *gmin, const double *dx,
                              const double *period, const double *centers, const double *shape, int multivariate,
                              const double *hA, const double *hB, const int64_t *nneigh, int64_t nh, double cut,
                              int use_cut, double *values, double *der, int device, char *errbuf, size_t errlen) {
  Error err{errbuf, errlen};
  if (dim < 1 || dim > CUFES_HILLS_MAX_DIM) {
    err.set(1, "cufes: the GPU sums hills of 1 to %d CVs, not %d", CUFES_HILLS_MAX_DIM, dim);
    return err.code;
  }
  if (nh <= 0) return 0;
  Grid g{};
  g.dim = dim;
  int64_t acc = 1;
  for (int d = 0; d < dim; ++d) {
    if (nbin[d] < 1 || nbin[d] > 2147483647LL) {
      err.set(1, "cufes: bad number of grid points %lld", (long long)nbin[d]);
      return err.code;
    }
    g.nbin[d] = static_cast<int>(nbin[d]);
    g.stride[d] = acc;
    acc *= nbin[d];
    g.gmin[d] = gmin[d];
    g.dx[d] = dx[d];
    g.periodic[d] = period[d] > 0;
    g.period[d] = period[d];
    g.inv_period[d] = period[d] > 0 ? 1.0 / period[d] : 0.0;
  }
  g.size = acc;
  return run(g, centers, shape, multivariate != 0, hA, hB, nneigh, nh, cut, use_cut, values, der, device, err);
}

CUFES_API int cufes_hills_at_points(const double *points, const int64_t *counts, int64_t n, int dim,
                                    const double *centers, const double *shape, int multivariate,
                                    const double *heights, int64_t nh, const double *period, double cut, double a,
                                    double b, double *out, int device, char *errbuf, size_t errlen) {
  Error err{errbuf, errlen};
  if (dim < 1 || dim > CUFES_HILLS_MAX_DIM) {
    err.set(1, "cufes: the GPU sums hills of 1 to %d CVs, not %d", CUFES_HILLS_MAX_DIM, dim);
    return err.code;
  }
  for (int64_t j = 0; j < n; ++j)
    if (counts[j] < 0 || counts[j] > nh || (j > 0 && counts[j] < counts[j - 1])) {
      err.set(1, "cufes: hill counts must ascend within [0, %lld]", (long long)nh);
      return err.code;
    }
  if (n <= 0) return 0;
  cyfes_points_periods per{};
  for (int d = 0; d < dim; ++d) {
    per.period[d] = period[d] > 0 ? period[d] : 0.0;
    per.inv_period[d] = period[d] > 0 ? 1.0 / period[d] : 0.0;
  }
  return points_run(points, counts, n, dim, centers, shape, multivariate, heights, nh, per, cut, a, b, out, device,
                    err);
}
