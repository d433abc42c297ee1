// The samples of one block sorted into cells on the device, for the truncated sum: the same cells, in the same
// order, as the CPU's build (src/cyfes/cpu_truncated.h, cyfes_cells_plan / cyfes_cells_fill; the grid from
// src/cyfes/cell_grid.h), so the raw samples go to the GPU once and nothing comes back but a few per-cell numbers.
//
//   1. range: the kept samples (finite log-weight) and their pre-scaled range per CV -> the cell grid (host);
//   2. count: each sample's cell, counted per chunk of consecutive samples;
//   3. offsets: per cell its total (host: compact indices and sample ranges), then each chunk's start in it;
//   4. scatter: one warp per chunk walks its samples in order, 32 at a time; lanes with the same cell take
//      consecutive places by lane, so each cell holds its samples in their original order (a stable counting
//      sort: the sums come out the same on every run and every GPU);
//   5. summary: per cell, one warp: log of the summed weight and the bounding box.
#ifndef CUFES_CELLS_CUH
#define CUFES_CELLS_CUH
#include "cell_grid.h"
#include "cufes.h"
#include "host_util.cuh"

#include <cuda_runtime.h>

#include <cfloat>
#include <cmath>
#include <cstring>

namespace cufes_internal {
namespace cells {

constexpr int THREADS = 256;

__global__ void range_kernel(cufes_samples r, unsigned long long *kept, long long *lo, long long *hi) {
  double l[CUFES_MAX_DIM], u[CUFES_MAX_DIM];
  for (int d = 0; d < r.dim; ++d) {
    l[d] = DBL_MAX;
    u[d] = -DBL_MAX;
  }
  unsigned long long k = 0;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; j < r.n; j += stride) {
    if (!isfinite(r.logw[j])) continue;
    ++k;
    for (int d = 0; d < r.dim; ++d) {
      const double v = cyfes_scaled(r.x[j * r.dim + d], r.factor[d], r.period[d]);
      l[d] = fmin(l[d], v);
      u[d] = fmax(u[d], v);
    }
  }
  for (int off = 16; off > 0; off >>= 1) {
    k += __shfl_down_sync(0xffffffffu, k, off);
    for (int d = 0; d < r.dim; ++d) {
      l[d] = fmin(l[d], __shfl_down_sync(0xffffffffu, l[d], off));
      u[d] = fmax(u[d], __shfl_down_sync(0xffffffffu, u[d], off));
    }
  }
  if ((threadIdx.x & 31) != 0) return;
  atomicAdd(kept, k);
  for (int d = 0; d < r.dim; ++d) {
    atomicMin(lo + d, ordered(l[d]));
    atomicMax(hi + d, ordered(u[d]));
  }
}

// Each sample's cell (-1: left out), counted per chunk: hist[chunk * cells + cell].
__global__ void count_kernel(cufes_samples r, cyfes_cell_grid g, int64_t chunk, int64_t cells, int *cell,
                             unsigned long long *hist) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; j < r.n; j += stride) {
    int id = -1;
    if (isfinite(r.logw[j])) {
      double u[CUFES_MAX_DIM];
      for (int d = 0; d < r.dim; ++d) u[d] = cyfes_scaled(r.x[j * r.dim + d], r.factor[d], r.period[d]);
      id = static_cast<int>(cyfes_cell_of(&g, u));
      atomicAdd(hist + (j / chunk) * cells + id, 1ull);
    }
    cell[j] = id;
  }
}

// Per cell its total over the chunks.
__global__ void totals_kernel(const unsigned long long *hist, int64_t chunks, int64_t cells, int64_t *total) {
  const int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= cells) return;
  int64_t s = 0;
  for (int64_t k = 0; k < chunks; ++k) s += static_cast<int64_t>(hist[k * cells + c]);
  total[c] = s;
}

// Per cell and chunk the first place of the chunk's samples in the sorted arrays (base: the cell's first place).
__global__ void offsets_kernel(unsigned long long *hist, int64_t chunks, int64_t cells, const int64_t *base) {
  const int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= cells) return;
  unsigned long long run = static_cast<unsigned long long>(base[c]);
  for (int64_t k = 0; k < chunks; ++k) {
    const unsigned long long count = hist[k * cells + c];
    hist[k * cells + c] = run;
    run += count;
  }
}

// Lanes of the warp holding the same value as this lane.
__device__ inline unsigned peers_of(int id) {
#if __CUDA_ARCH__ >= 700
  return __match_any_sync(0xffffffffu, id);
#else
  unsigned peers = 0;
  for (int lane = 0; lane < 32; ++lane)
    peers |= (__shfl_sync(0xffffffffu, id, lane) == id ? 1u : 0u) << lane;
  return peers;
#endif
}

// One warp per chunk, its samples in order: a sample's place is its chunk's next place in its cell.
template <typename T>
__global__ void scatter_kernel(cufes_samples r, int64_t chunk, int64_t chunks, int64_t cells, int64_t kept,
                               const int *cell, unsigned long long *next, T *samples_t, T *lw) {
  const int lane = threadIdx.x & 31;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (blockDim.x / 32);
  const unsigned below = (1u << lane) - 1u;
  for (int64_t k = static_cast<int64_t>(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32; k < chunks;
       k += warps) {
    const int64_t end = min(r.n, (k + 1) * chunk);
    unsigned long long *row = next + k * cells;
    for (int64_t j0 = k * chunk; j0 < end; j0 += 32) {
      const int64_t j = j0 + lane;
      const int id = j < end ? cell[j] : -1;
      const unsigned peers = peers_of(id);
      unsigned long long at = 0;
      if (id >= 0) at = row[id];
      __syncwarp();
      if (id >= 0) {
        const int64_t pos = static_cast<int64_t>(at) + __popc(peers & below);
        for (int d = 0; d < r.dim; ++d)
          samples_t[d * kept + pos] = static_cast<T>(cyfes_scaled(r.x[j * r.dim + d], r.factor[d], r.period[d]));
        lw[pos] = static_cast<T>(r.logw[j] - r.top);
        if ((peers & below) == 0) row[id] = at + __popc(peers);  // the lowest lane of the group moves it on
      }
      __syncwarp();
    }
  }
}

// One warp per non-empty cell: log of its summed weight (terms below e^-700 of its largest count as e^-700, as
// on the CPU) and its bounding box box[k * 2 dim + 2 d + {0, 1}].
template <typename T>
__global__ void summary_kernel(const T *samples_t, const T *lw, int64_t kept, int dim, const int64_t *start,
                               int64_t ncells, double *lmass, double *box) {
  const int lane = threadIdx.x & 31;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (blockDim.x / 32);
  for (int64_t k = static_cast<int64_t>(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32; k < ncells;
       k += warps) {
    const int64_t b = start[k], e = start[k + 1];
    double m = -DBL_MAX;
    for (int64_t j = b + lane; j < e; j += 32) m = fmax(m, static_cast<double>(lw[j]));
    for (int off = 16; off > 0; off >>= 1) m = fmax(m, __shfl_xor_sync(0xffffffffu, m, off));
    double s = 0;
    for (int64_t j = b + lane; j < e; j += 32) s += exp(fmax(static_cast<double>(lw[j]) - m, -700.0));
    for (int off = 16; off > 0; off >>= 1) s += __shfl_xor_sync(0xffffffffu, s, off);
    if (lane == 0) lmass[k] = m + log(s);
    for (int d = 0; d < dim; ++d) {
      const T *v = samples_t + d * kept;
      double l = DBL_MAX, u = -DBL_MAX;
      for (int64_t j = b + lane; j < e; j += 32) {
        l = fmin(l, static_cast<double>(v[j]));
        u = fmax(u, static_cast<double>(v[j]));
      }
      for (int off = 16; off > 0; off >>= 1) {
        l = fmin(l, __shfl_xor_sync(0xffffffffu, l, off));
        u = fmax(u, __shfl_xor_sync(0xffffffffu, u, off));
      }
      if (lane == 0) {
        box[k * 2 * dim + 2 * d] = l;
        box[k * 2 * dim + 2 * d + 1] = u;
      }
    }
  }
}

// The cells of one block on the current device; ncells == 0 when no sample is kept.
template <typename T>
struct DeviceCells {
  cyfes_cell_grid grid{};
  int64_t kept = 0, ncells = 0, cells = 1;  // cells: of the whole grid (dense has one entry per cell)
  double lall = -INFINITY;                  // log of the summed weight of all kept samples (relative to top)
  DeviceBuffer samples_t, lw, start, dense, lmass, box;
};

inline unsigned blocks_for(int64_t work, int threads) {
  const int64_t b = (work + threads - 1) / threads;
  return static_cast<unsigned>(b < 1 ? 1 : (b > 65535 ? 65535 : b));
}

// Pass 1: copies the samples unless staged (and per CV factor then period, read by the kernels from `fp`), finds the kept
// ones' range and the cell grid. Points r at the device copies.
inline bool plan(cufes_samples &r, DeviceBuffer &x, DeviceBuffer &logw, DeviceBuffer &fp, cyfes_cell_grid &g,
                 int64_t &kept, Error &err) {
  const int dim = r.dim;
  long long stat[1 + 2 * CUFES_MAX_DIM];
  double both[2 * CUFES_MAX_DIM];
  stat[0] = 0;
  for (int d = 0; d < dim; ++d) {
    stat[1 + d] = ordered(DBL_MAX);
    stat[1 + dim + d] = ordered(-DBL_MAX);
    both[d] = r.factor[d];
    both[dim + d] = r.period[d];
  }
  DeviceBuffer stats;
  const bool copy = !r.on_device;  // staged samples (cuda/stage.cu) are on the device already
  if ((copy && (!upload(x, r.x, r.n * dim, err, "cudaMalloc(samples)") ||
                !upload(logw, r.logw, r.n, err, "cudaMalloc(log-weights)"))) ||
      !upload(fp, both, 2 * dim, err, "cudaMalloc(scale factors)") ||
      !upload(stats, stat, 1 + 2 * dim, err, "cudaMalloc(ranges)"))
    return false;
  const double *period = r.period;
  if (copy) {
    r.x = x.as<double>();
    r.logw = logw.as<double>();
  }
  r.factor = fp.as<double>();
  r.period = fp.as<double>() + dim;
  long long *s = stats.as<long long>();
  const unsigned blocks = blocks_for(r.n, THREADS);  // few blocks: every warp ends in 1 + 2 dim atomics
  range_kernel<<<blocks < 512 ? blocks : 512, THREADS>>>(r, reinterpret_cast<unsigned long long *>(s), s + 1,
                                                      s + 1 + dim);
  if (!check_launch(err, "cells range_kernel launch") || !download(stat, stats, 1 + 2 * dim, err)) return false;
  kept = stat[0];
  double mn[CUFES_MAX_DIM], mx[CUFES_MAX_DIM];
  for (int d = 0; d < dim; ++d) {
    mn[d] = from_ordered(stat[1 + d]);
    mx[d] = from_ordered(stat[1 + dim + d]);
  }
  cyfes_cells_geometry(mn, mx, kept, dim, period, r.side, cyfes_max_cells(kept, r.per_cell, r.cap), &g);
  return true;
}

// Builds the cells of the samples `raw` on the current device.
template <typename T>
bool build(cufes_samples raw, DeviceCells<T> &out, Error &err) {
  const int dim = raw.dim;
  DeviceBuffer x, logw, fp;
  if (!plan(raw, x, logw, fp, out.grid, out.kept, err)) return false;
  int64_t cells = 1;
  for (int d = 0; d < dim; ++d) cells *= out.grid.shape[d];
  out.cells = cells;
  const int64_t n = raw.n, kept = out.kept;
  // chunks: at most one counter per sample (memory O(n)), at least 32 samples each
  int64_t chunks = n / (cells > 0 ? cells : 1);
  chunks = chunks < 1 ? 1 : chunks;
  int64_t chunk = (n + chunks - 1) / chunks;
  chunk = chunk < 32 ? 32 : chunk;
  chunks = n > 0 ? (n + chunk - 1) / chunk : 1;
  DeviceBuffer cell, hist, total;
  HostArray<int64_t> counts(static_cast<size_t>(cells)), start(static_cast<size_t>(cells + 1)),
      dense(static_cast<size_t>(cells));
  if (!counts.ok() || !start.ok() || !dense.ok()) {
    err.set(2, "cufes: out of host memory for %lld cells", static_cast<long long>(cells));
    return false;
  }
  if (!cell.alloc(n * sizeof(int), err, "cudaMalloc(sample cells)") ||
      !hist.alloc(chunks * cells * sizeof(unsigned long long), err, "cudaMalloc(cell counts)") ||
      !total.alloc(cells * sizeof(int64_t), err, "cudaMalloc(cell totals)") ||
      !CUFES_CHECK(err, cudaMemset(hist.ptr, 0, chunks * cells * sizeof(unsigned long long))))
    return false;
  count_kernel<<<blocks_for(n, THREADS), THREADS>>>(raw, out.grid, chunk, cells, cell.as<int>(),
                                                    hist.as<unsigned long long>());
  totals_kernel<<<blocks_for(cells, THREADS), THREADS>>>(hist.as<unsigned long long>(), chunks, cells,
                                                         total.as<int64_t>());
  if (!check_launch(err, "cells count_kernel launch") || !download(counts.data(), total, cells, err))
    return false;
  // compact indices of the non-empty cells and their sample ranges; counts become each cell's first place
  int64_t ncells = 0, run = 0;
  for (int64_t c = 0; c < cells; ++c) {
    const int64_t count = counts[c];
    dense[c] = count ? ncells : -1;
    if (count) start[ncells++] = run;
    counts[c] = run;
    run += count;
  }
  start[ncells] = run;
  out.ncells = ncells;
  if (!CUFES_CHECK(err, cudaMemcpy(total.ptr, counts.data(), cells * sizeof(int64_t), cudaMemcpyHostToDevice)) ||
      !upload(out.start, start.data(), ncells + 1, err, "cudaMalloc(cell starts)") ||
      !upload(out.dense, dense.data(), cells, err, "cudaMalloc(cell ids)") ||
      !out.samples_t.alloc(dim * kept * sizeof(T), err, "cudaMalloc(sorted samples)") ||
      !out.lw.alloc(kept * sizeof(T), err, "cudaMalloc(sorted log-weights)") ||
      !out.lmass.alloc(ncells * sizeof(double), err, "cudaMalloc(cell masses)") ||
      !out.box.alloc(ncells * 2 * dim * sizeof(double), err, "cudaMalloc(cell boxes)"))
    return false;
  if (ncells == 0) return true;
  offsets_kernel<<<blocks_for(cells, THREADS), THREADS>>>(hist.as<unsigned long long>(), chunks, cells,
                                                          total.as<int64_t>());
  scatter_kernel<T><<<blocks_for(chunks * 32, THREADS), THREADS>>>(raw, chunk, chunks, cells, kept, cell.as<int>(),
                                                                   hist.as<unsigned long long>(),
                                                                   out.samples_t.template as<T>(), out.lw.template as<T>());
  summary_kernel<T><<<blocks_for(ncells * 32, THREADS), THREADS>>>(out.samples_t.template as<T>(), out.lw.template as<T>(), kept,
                                                                   dim, out.start.template as<int64_t>(), ncells,
                                                                   out.lmass.template as<double>(), out.box.template as<double>());
  if (!check_launch(err, "cells scatter/summary launch")) return false;
  HostArray<double> lmass(static_cast<size_t>(ncells));
  if (!lmass.ok() || !download(lmass.data(), out.lmass, ncells, err)) {
    if (!lmass.ok()) err.set(2, "cufes: out of host memory for %lld cell masses", static_cast<long long>(ncells));
    return false;
  }
  double m = -INFINITY, s = 0;
  for (int64_t k = 0; k < ncells; ++k) m = lmass[k] > m ? lmass[k] : m;
  for (int64_t k = 0; k < ncells; ++k) s += std::exp(lmass[k] - m);
  out.lall = m + std::log(s);
  return true;
}

}  // namespace cells
}  // namespace cufes_internal
#endif
