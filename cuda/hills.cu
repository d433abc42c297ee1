// Sums of metadynamics hills on a grid (hills.h): one thread per grid point of a tile, the hills streamed
// through each tile's block, those whose box misses the tile dropped by a cheap test first.
//
// Work split: a block owns one tile of grid points (a small box of the grid) and one share of the hills. It
// reads its hills 256 at a time, keeps those whose box meets the tile (compacted in hill order), and every
// thread adds them to its point. Shares of the hills write separate partial sums, added in a fixed order at
// the end, so results are the same from run to run.
#include <cstdint>
#include <cstdlib>

#include "hills.h"
#include "host_util.cuh"

// A named namespace: nvcc names anonymous-namespace kernels after a hash of the source file's path, which
// would make the library differ from one build directory to another.
namespace cufes_hills {

constexpr int kThreads = 256;         // points per tile, threads per block
constexpr int64_t kDefaultChunk = 1 << 21;  // hills per transfer
constexpr int kMaxShares = 32;        // hill shares per tile when the grid has few tiles

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
using cufes_internal::HostArray;

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

// The grid index of a centre on CV d, as the CPU kernel computes it (on the host: once per hill, not per tile).
inline int64_t centre_index(const Grid &g, int d, double c) {
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

// Per hill kept for a tile: its place in the round and, for diagonal hills, 1/sigma per CV.
template <int D>
struct Kept {
  int pos[kThreads];
  double inv_w[kThreads][D];
  int warp_counts[kThreads / 32];
};

// The hills of this round ([base, base + 256) within j1) whose box meets the tile, in hill order, into kept;
// returns how many. ic, nn: per hill and CV, the centre's grid index and the box half-width (hills.cu's host
// part computes them once).
template <int D, bool MULTI>
__device__ inline int meeting_hills(const Grid &g, const int *__restrict__ ic, const int *__restrict__ nn,
                                    const double *__restrict__ shape, int64_t base, int64_t j1, const int *lo,
                                    const int *hi, Kept<D> &kept) {
  const int64_t j = base + threadIdx.x;
  bool meets = j < j1;
  for (int d = 0; d < D && meets; ++d) meets = box_meets(g, d, ic[j * D + d], nn[j * D + d], lo[d], hi[d]);
  const unsigned ballot = __ballot_sync(0xffffffffu, meets);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) kept.warp_counts[warp] = __popc(ballot);
  __syncthreads();
  int before = 0, total = 0;
  for (int w = 0; w < kThreads / 32; ++w) {
    before += w < warp ? kept.warp_counts[w] : 0;
    total += kept.warp_counts[w];
  }
  if (meets) {
    const int at = before + __popc(ballot & ((1u << lane) - 1u));
    kept.pos[at] = threadIdx.x;
    for (int d = 0; d < D; ++d) kept.inv_w[at][d] = MULTI ? 0.0 : 1.0 / shape[j * D + d];
  }
  __syncthreads();
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
        const int64_t j = base + kept.pos[q];
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

// partial[0] += partial[1] + ... + partial[shares-1], element by element, in that order.
__global__ void sum_shares(double *partial, int64_t len, int shares) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= len) return;
  double s = partial[i];
  for (int k = 1; k < shares; ++k) s += partial[k * len + i];
  partial[i] = s;
}

template <int D, bool MULTI, bool DER>
void launch(const Grid &g, dim3 blocks, const double *c, const double *s, const double *a, const double *b,
            const int *ic, const int *nn, int64_t n, int64_t share, double cut, int use_cut, double *partial) {
  hills_kernel<D, MULTI, DER><<<blocks, kThreads>>>(g, c, s, a, b, ic, nn, n, share, cut, use_cut, partial);
}

using Launcher = void (*)(const Grid &, dim3, const double *, const double *, const double *, const double *,
                          const int *, const int *, int64_t, int64_t, double, int, double *);

template <int D>
Launcher pick(bool multi, bool der) {
  if (multi) return der ? launch<D, true, true> : launch<D, true, false>;
  return der ? launch<D, false, true> : launch<D, false, false>;
}

Launcher launcher(int dim, bool multi, bool der) {
  switch (dim) {
    case 1: return pick<1>(multi, der);
    case 2: return pick<2>(multi, der);
    case 3: return pick<3>(multi, der);
    default: return pick<4>(multi, der);
  }
}

// Tile extents: double the extent of the CV with the smallest one (the first such) until 256 points.
void plan_tiles(Grid &g) {
  for (int d = 0; d < g.dim; ++d) g.tile[d] = 1;
  for (;;) {
    int best = -1;
    int64_t points = 1;
    for (int d = 0; d < g.dim; ++d) points *= g.tile[d];
    if (points * 2 > kThreads) break;
    for (int d = 0; d < g.dim; ++d)
      if (g.tile[d] < g.nbin[d] && (best < 0 || g.tile[d] < g.tile[best])) best = d;
    if (best < 0) break;
    g.tile[best] *= 2;
  }
  for (int d = 0; d < g.dim; ++d) g.ntiles[d] = (g.nbin[d] + g.tile[d] - 1) / g.tile[d];
}

// Per hill and CV, as ints: the grid index of the centre (modulo the axis on a periodic CV: the same box) and
// the box half-width (-1: the whole axis). A hill whose box cannot reach the grid gets nn = -2: it is skipped.
void box_indices(const Grid &g, const double *centers, const int64_t *nneigh, int64_t n, int *ic, int *nn) {
  const int64_t big = int64_t{1} << 30;
  for (int64_t j = 0; j < n; ++j) {
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
}

int64_t chunk_size() {
  const char *env = getenv("CUFES_HILLS_CHUNK");
  const long long v = env ? atoll(env) : 0;
  return v > 0 ? v : kDefaultChunk;
}

int run(const Grid &g, const double *centers, const double *shape, bool multi, const double *hA, const double *hB,
        const int64_t *nneigh, int64_t nh, double cut, int use_cut, double *values, double *der, int device,
        Error &err) {
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
  int shares = static_cast<int>((4 * sms + ntiles - 1) / ntiles);
  shares = shares < 1 ? 1 : shares > kMaxShares ? kMaxShares : shares;
  while (shares > 1 && static_cast<int64_t>(shares) * kThreads > chunk) --shares;
  size_t free_mem = 0, total_mem = 0;
  if (!CUFES_CHECK(err, cudaMemGetInfo(&free_mem, &total_mem))) return err.code;
  while (shares > 1 && static_cast<double>(shares) * nd * g.size * 8 > 0.25 * free_mem) --shares;
  const int ns = multi ? g.dim * g.dim : g.dim;
  const size_t partial_bytes = static_cast<size_t>(shares) * nd * g.size * sizeof(double);
  DeviceBuffer b_c, b_s, b_a, b_b, b_ic, b_nn, b_partial;
  HostArray<int> h_ic(static_cast<size_t>(chunk * g.dim)), h_nn(static_cast<size_t>(chunk * g.dim));
  if (!h_ic.ok() || !h_nn.ok()) return fail(err, 2, "out of host memory for the hills' box indices");
  if (!b_c.alloc(chunk * g.dim * sizeof(double), err, "cudaMalloc(centres)") ||
      !b_s.alloc(chunk * ns * sizeof(double), err, "cudaMalloc(widths)") ||
      !b_a.alloc(chunk * sizeof(double), err, "cudaMalloc(heights)") ||
      !b_b.alloc(chunk * sizeof(double), err, "cudaMalloc(heights)") ||
      !b_ic.alloc(chunk * g.dim * sizeof(int), err, "cudaMalloc(box centres)") ||
      !b_nn.alloc(chunk * g.dim * sizeof(int), err, "cudaMalloc(box widths)") ||
      !b_partial.alloc(partial_bytes, err, "cudaMalloc(partial sums)") ||
      !CUFES_CHECK(err, cudaMemset(b_partial.ptr, 0, partial_bytes)))
    return err.code;
  double *d_c = b_c.as<double>(), *d_s = b_s.as<double>(), *d_a = b_a.as<double>(), *d_b = b_b.as<double>();
  int *d_ic = b_ic.as<int>(), *d_nn = b_nn.as<int>();
  const Launcher go = launcher(g.dim, multi, der != nullptr);
  for (int64_t j = 0; j < nh; j += chunk) {
    const int64_t n = nh - j < chunk ? nh - j : chunk;
    box_indices(g, centers + j * g.dim, nneigh + j * g.dim, n, h_ic.data(), h_nn.data());
    if (!CUFES_CHECK(err, cudaMemcpy(d_c, centers + j * g.dim, n * g.dim * sizeof(double), cudaMemcpyHostToDevice)) ||
        !CUFES_CHECK(err, cudaMemcpy(d_s, shape + j * ns, n * ns * sizeof(double), cudaMemcpyHostToDevice)) ||
        !CUFES_CHECK(err, cudaMemcpy(d_a, hA + j, n * sizeof(double), cudaMemcpyHostToDevice)) ||
        !CUFES_CHECK(err, cudaMemcpy(d_b, hB + j, n * sizeof(double), cudaMemcpyHostToDevice)) ||
        !CUFES_CHECK(err, cudaMemcpy(d_ic, h_ic.data(), n * g.dim * sizeof(int), cudaMemcpyHostToDevice)) ||
        !CUFES_CHECK(err, cudaMemcpy(d_nn, h_nn.data(), n * g.dim * sizeof(int), cudaMemcpyHostToDevice)))
      return err.code;
    const int64_t share = (n + shares - 1) / shares;
    go(g, dim3(static_cast<unsigned>(ntiles), static_cast<unsigned>((n + share - 1) / share)), d_c, d_s, d_a, d_b,
       d_ic, d_nn, n, share, cut, use_cut, b_partial.as<double>());
    if (!cufes_internal::check_launch(err, "hills kernel")) return err.code;
  }
  const int64_t len = nd * g.size;
  sum_shares<<<static_cast<unsigned>((len + 255) / 256), 256>>>(b_partial.as<double>(), len, shares);
  if (!cufes_internal::check_launch(err, "sum_shares")) return err.code;
  HostArray<double> host(static_cast<size_t>(len));
  if (!host.ok()) return fail(err, 2, "out of host memory for the hills' sums");
  if (!CUFES_CHECK(err, cudaMemcpy(host.data(), b_partial.ptr, len * sizeof(double), cudaMemcpyDeviceToHost)))
    return err.code;
  for (int64_t i = 0; i < g.size; ++i) values[i] += host[i];
  if (der)
    for (int64_t i = 0; i < g.dim * g.size; ++i) der[i] += host[g.size + i];
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
  plan_tiles(g);
  return run(g, centers, shape, multivariate != 0, hA, hB, nneigh, nh, cut, use_cut, values, der, device, err);
}
