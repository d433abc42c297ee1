// The passes over a call's per-sample inputs on the device that will sum them (cufes.h: cufes_stage), so that the
// host reads no sample before the sums: the same checks and results as the host's passes (src/cyfes/cpu_scan.h).
//
//   1. scan: the first non-finite coordinate (flat index) and per CV the samples' range;
//   2. weights: log w = bias / kT + log(weight) into the staged log-weights, with the first non-finite bias or
//      weight, the first negative weight and the count of positive weights;
//   3. statistics: per chunk of CYFES_STATS_CHUNK log-weights (chunks never cross a block) its largest finite
//      value, count and sums relative to it; the host merges them chunk by chunk, in order, by the rule of
//      src/cyfes/log_stats.h (the one the host pass uses), so the result is the same on every run.
#include "cufes.h"
#include "host_util.cuh"
#include "log_stats.h"

#include <cuda_runtime.h>

#include <cfloat>
#include <climits>
#include <cmath>

namespace cufes_internal {
namespace stage {

constexpr int THREADS = 256;

inline unsigned blocks_for(int64_t work) {
  const int64_t b = (work + THREADS - 1) / THREADS;
  return static_cast<unsigned>(b < 1 ? 1 : (b > 1024 ? 1024 : b));  // grid-stride: every warp ends in atomics
}

__device__ inline unsigned long long warp_min(unsigned long long v) {
  for (int off = 16; off > 0; off >>= 1) {
    const unsigned long long o = __shfl_down_sync(0xffffffffu, v, off);
    v = o < v ? o : v;
  }
  return v;
}

__device__ inline unsigned long long warp_sum(unsigned long long v) {
  for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off);
  return v;
}

// flags[0]: first non-finite value (flat index); lo/hi: per column range (ordered integers).
__global__ void scan_kernel(const double *x, int64_t n, int dim, unsigned long long *flags, long long *lo,
                            long long *hi) {
  double l[CUFES_MAX_DIM], u[CUFES_MAX_DIM];
  for (int d = 0; d < dim; ++d) {
    l[d] = DBL_MAX;
    u[d] = -DBL_MAX;
  }
  unsigned long long bad = ULLONG_MAX;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; j < n; j += stride)
    for (int d = 0; d < dim; ++d) {
      const double v = x[j * dim + d];
      const unsigned long long at = static_cast<unsigned long long>(j * dim + d);
      if (!isfinite(v) && at < bad) bad = at;
      l[d] = fmin(l[d], v);
      u[d] = fmax(u[d], v);
    }
  bad = warp_min(bad);
  for (int off = 16; off > 0; off >>= 1)
    for (int d = 0; d < dim; ++d) {
      l[d] = fmin(l[d], __shfl_down_sync(0xffffffffu, l[d], off));
      u[d] = fmax(u[d], __shfl_down_sync(0xffffffffu, u[d], off));
    }
  if ((threadIdx.x & 31) != 0) return;
  if (bad != ULLONG_MAX) atomicMin(flags, bad);
  for (int d = 0; d < dim; ++d) {
    atomicMin(lo + d, ordered(l[d]));
    atomicMax(hi + d, ordered(u[d]));
  }
}

// logw[j] = bias[j] * inv_kt (0 without bias) + log(weights[j]) (-inf for weight 0); flags[1..3]: first
// non-finite bias, non-finite weight, negative weight; flags[4]: weights > 0.
__global__ void weights_kernel(const double *bias, const double *weights, int64_t n, double inv_kt, double *logw,
                               unsigned long long *flags) {
  unsigned long long b0 = ULLONG_MAX, b1 = ULLONG_MAX, b2 = ULLONG_MAX, positive = 0;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; j < n; j += stride) {
    const unsigned long long at = static_cast<unsigned long long>(j);
    double v = 0;
    if (bias) {
      if (!isfinite(bias[j]) && at < b0) b0 = at;
      v = bias[j] * inv_kt;
    }
    if (weights) {
      const double w = weights[j];
      if (!isfinite(w)) {
        b1 = at < b1 ? at : b1;
      } else if (w < 0) {
        b2 = at < b2 ? at : b2;
      } else if (w > 0) {
        ++positive;
        v += log(w);
      } else {
        v = -INFINITY;
      }
    } else {
      ++positive;
    }
    logw[j] = v;
  }
  b0 = warp_min(b0);
  b1 = warp_min(b1);
  b2 = warp_min(b2);
  positive = warp_sum(positive);
  if ((threadIdx.x & 31) != 0) return;
  if (b0 != ULLONG_MAX) atomicMin(flags + 1, b0);
  if (b1 != ULLONG_MAX) atomicMin(flags + 2, b1);
  if (b2 != ULLONG_MAX) atomicMin(flags + 3, b2);
  if (positive) atomicAdd(flags + 4, positive);
}

// One warp per chunk [start[c], end[c]): its largest finite value, their count, and the sums of exp(v - top),
// exp(2 (v - top)) with exponents below -700 counted as -700 (as cyfes_stats_chunk on the host).
__global__ void chunk_stats_kernel(const double *logw, const int64_t *start, const int64_t *end, int64_t chunks,
                                   double *top, long long *count, double *s1, double *s2) {
  const int lane = threadIdx.x & 31;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (blockDim.x / 32);
  for (int64_t c = static_cast<int64_t>(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32; c < chunks;
       c += warps) {
    double m = -DBL_MAX;
    long long k = 0;
    for (int64_t j = start[c] + lane; j < end[c]; j += 32)
      if (isfinite(logw[j])) {
        ++k;
        m = fmax(m, logw[j]);
      }
    for (int off = 16; off > 0; off >>= 1) {
      m = fmax(m, __shfl_xor_sync(0xffffffffu, m, off));
      k += __shfl_xor_sync(0xffffffffu, k, off);
    }
    double a1 = 0, a2 = 0;
    for (int64_t j = start[c] + lane; k && j < end[c]; j += 32) {
      const double v = logw[j];
      if (!isfinite(v)) continue;
      const double e = exp(fmax(v - m, -700.0));
      a1 += e;
      a2 += e * e;
    }
    for (int off = 16; off > 0; off >>= 1) {
      a1 += __shfl_xor_sync(0xffffffffu, a1, off);
      a2 += __shfl_xor_sync(0xffffffffu, a2, off);
    }
    if (lane == 0) {
      top[c] = m;
      count[c] = k;
      s1[c] = a1;
      s2[c] = a2;
    }
  }
}

// Copies `count` values of host `src` into device memory `dst` allocated by the caller.
template <typename U>
bool copy_in(U *dst, const U *src, int64_t count, Error &err) {
  return count == 0 || CUFES_CHECK(err, cudaMemcpy(dst, src, count * sizeof(U), cudaMemcpyHostToDevice));
}

// The chunks of every block, in order: chunk c is [start[c], end[c]).
struct Chunks {
  HostArray<int64_t> start, end;
  int64_t count = 0;
  explicit Chunks(int64_t most) : start(static_cast<size_t>(most)), end(static_cast<size_t>(most)) {}
};

int64_t chunk_count(int64_t nblocks, const int64_t *edges) {
  int64_t count = 0;
  for (int64_t b = 0; b < nblocks; ++b)
    count += (edges[b + 1] - edges[b] + CYFES_STATS_CHUNK - 1) / CYFES_STATS_CHUNK;
  return count;
}

void fill_chunks(int64_t nblocks, const int64_t *edges, Chunks &c) {
  for (int64_t b = 0; b < nblocks; ++b)
    for (int64_t a = edges[b]; a < edges[b + 1]; a += CYFES_STATS_CHUNK) {
      c.start[c.count] = a;
      c.end[c.count++] = a + CYFES_STATS_CHUNK < edges[b + 1] ? a + CYFES_STATS_CHUNK : edges[b + 1];
    }
}

// Per block the chunks' statistics merged in order (log_stats.h), as cyfes_block_stats reports them.
bool block_stats(const double *logw, int64_t nblocks, const int64_t *edges, double *top, int64_t *kept, double *lz,
                 double *lz2, Error &err) {
  const int64_t most = chunk_count(nblocks, edges);
  Chunks c(most);
  HostArray<double> ctop(static_cast<size_t>(most)), cs1(static_cast<size_t>(most)), cs2(static_cast<size_t>(most));
  HostArray<long long> ck(static_cast<size_t>(most));
  if (!c.start.ok() || !c.end.ok() || !ctop.ok() || !cs1.ok() || !cs2.ok() || !ck.ok()) {
    err.set(2, "cufes: out of host memory for %lld chunks of log-weights", static_cast<long long>(most));
    return false;
  }
  fill_chunks(nblocks, edges, c);
  DeviceBuffer d_start, d_end, d_top, d_count, d_s1, d_s2;
  if (!upload(d_start, c.start.data(), most, err, "cudaMalloc(chunks)") ||
      !upload(d_end, c.end.data(), most, err, "cudaMalloc(chunks)") ||
      !d_top.alloc(most * sizeof(double), err, "cudaMalloc(chunk statistics)") ||
      !d_count.alloc(most * sizeof(long long), err, "cudaMalloc(chunk statistics)") ||
      !d_s1.alloc(most * sizeof(double), err, "cudaMalloc(chunk statistics)") ||
      !d_s2.alloc(most * sizeof(double), err, "cudaMalloc(chunk statistics)"))
    return false;
  if (most > 0) {
    chunk_stats_kernel<<<blocks_for(most * 32), THREADS>>>(logw, d_start.as<int64_t>(), d_end.as<int64_t>(), most,
                                                           d_top.as<double>(), d_count.as<long long>(),
                                                           d_s1.as<double>(), d_s2.as<double>());
    if (!check_launch(err, "stage chunk_stats_kernel launch")) return false;
  }
  if (!download(ctop.data(), d_top, most, err) || !download(ck.data(), d_count, most, err) ||
      !download(cs1.data(), d_s1, most, err) || !download(cs2.data(), d_s2, most, err))
    return false;
  int64_t i = 0;
  for (int64_t b = 0; b < nblocks; ++b) {
    double m = -DBL_MAX, s1 = 0, s2 = 0;
    int64_t k = 0;
    for (; i < c.count && c.start[i] < edges[b + 1]; ++i) {
      k += ck[i];
      if (ck[i]) cyfes_stats_merge(ctop[i], cs1[i], cs2[i], &m, &s1, &s2);
    }
    top[b] = m;
    kept[b] = k;
    lz[b] = k ? m + std::log(s1) : -DBL_MAX;
    lz2[b] = k ? 2 * m + std::log(s2) : -DBL_MAX;
  }
  return true;
}

int64_t index_of(unsigned long long flag) { return flag == ULLONG_MAX ? -1 : static_cast<int64_t>(flag); }

// Passes 1 and 2 into `scan`; the staged buffers hold the samples and log-weights after.
bool scan_and_weigh(const double *x, const double *bias, const double *weights, double inv_kt,
                    cufes_staged *s, cufes_scan *scan, Error &err) {
  const int64_t n = s->n;
  const int dim = s->dim;
  unsigned long long flags[5] = {ULLONG_MAX, ULLONG_MAX, ULLONG_MAX, ULLONG_MAX, 0};
  long long range[2 * CUFES_MAX_DIM];
  for (int d = 0; d < dim; ++d) {
    range[d] = ordered(DBL_MAX);
    range[dim + d] = ordered(-DBL_MAX);
  }
  DeviceBuffer d_bias, d_weights, d_flags, d_range;
  if (!err.cuda(cudaMalloc(&s->x, (n * dim ? n * dim : 1) * sizeof(double)), "cudaMalloc(staged samples)") ||
      !err.cuda(cudaMalloc(&s->logw, (n ? n : 1) * sizeof(double)), "cudaMalloc(staged log-weights)") ||
      !copy_in(s->x, x, n * dim, err) || (bias && !upload(d_bias, bias, n, err, "cudaMalloc(bias)")) ||
      (weights && !upload(d_weights, weights, n, err, "cudaMalloc(weights)")) ||
      !upload(d_flags, flags, 5, err, "cudaMalloc(flags)") || !upload(d_range, range, 2 * dim, err, "cudaMalloc(ranges)"))
    return false;
  long long *r = d_range.as<long long>();
  unsigned long long *f = d_flags.as<unsigned long long>();
  scan_kernel<<<blocks_for(n), THREADS>>>(s->x, n, dim, f, r, r + dim);
  weights_kernel<<<blocks_for(n), THREADS>>>(bias ? d_bias.as<double>() : nullptr,
                                             weights ? d_weights.as<double>() : nullptr, n, inv_kt, s->logw, f);
  if (!check_launch(err, "stage scan/weights launch") || !download(flags, d_flags, 5, err) ||
      !download(range, d_range, 2 * dim, err))
    return false;
  scan->bad_sample = index_of(flags[0]);
  scan->bad_bias = index_of(flags[1]);
  scan->bad_weight = index_of(flags[2]);
  scan->negative = index_of(flags[3]);
  scan->positive = static_cast<int64_t>(flags[4]);
  for (int d = 0; d < dim; ++d) {
    scan->lo[d] = from_ordered(range[d]);
    scan->hi[d] = from_ordered(range[dim + d]);
  }
  return true;
}

}  // namespace stage
}  // namespace cufes_internal

using namespace cufes_internal;

extern "C" {

CUFES_API int cufes_stage(const double *x, int64_t n, int dim, const double *bias, const double *weights,
                          double inv_kt, int64_t nblocks, const int64_t *edges, int device, cufes_staged *staged,
                          cufes_scan *scan, double *top, int64_t *kept, double *lz, double *lz2, char *errbuf,
                          size_t errlen) {
  Error err{errbuf, errlen};
  staged->device = device;
  staged->dim = dim;
  staged->n = n;
  staged->x = staged->logw = nullptr;
  if (dim < 1 || dim > CUFES_MAX_DIM || n < 0 || nblocks < 1 || edges[0] < 0 || edges[nblocks] > n) {
    err.set(1, "cufes: stage needs 1..%d CVs, n >= 0 and blocks within the samples", CUFES_MAX_DIM);
    return err.code;
  }
  cudaGetLastError();
  DeviceScope scope(device, err);
  if (!scope.ok || !stage::scan_and_weigh(x, bias, weights, inv_kt, staged, scan, err) ||
      !stage::block_stats(staged->logw, nblocks, edges, top, kept, lz, lz2, err))
    return err.code;
  return 0;
}

CUFES_API void cufes_unstage(cufes_staged *staged) {
  if (!staged->x && !staged->logw) return;
  Error err{nullptr, 0};
  DeviceScope scope(staged->device, err);
  cudaFree(staged->x);
  cudaFree(staged->logw);
  staged->x = staged->logw = nullptr;
}

}  // extern "C"
