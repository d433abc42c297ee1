// libcufes: reweighted Gaussian KDE on CUDA GPUs (the contract is in cufes.h).
//
// One fused kernel tiles grid points x samples: each thread owns PPT grid points in registers, the block
// stages TILE samples at a time in shared memory, and every thread sweeps the tile for its points. The
// log-sum-exp uses a running maximum that is raised lazily (only when a tile's sum overflows 2^64; see
// kde_kernel), so the inner loop costs one exp per pair and no compare. Coordinates are pre-scaled on the device by
// scale * sqrt(log2(e) / 2) and log-weights by log2(e), so the exponent of a pair is
//     e = lw2[j] - sum_d (g'_d - s'_d)^2            (log2 units)
// and the inner loop is ~2D+3 FP32 operations plus one ex2.approx (MUFU) in float32 mode.
// blockIdx.y splits the samples so that small grids still fill the GPU; a merge kernel combines the
// per-split (max, sum) pairs, and the same merge combines sample chunks, so any N and M run in bounded
// memory. No grid-by-samples matrix exists anywhere.
#include "cufes.h"
#include "host_util.cuh"

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>

// A named namespace, not an anonymous one: nvcc names anonymous-namespace kernels after a hash of the source
// file's path, so every cubin changed with the build directory. Hidden visibility keeps these symbols private.
namespace cufes_internal {

constexpr int BLOCK = 128;               // threads per block; also samples staged per shared-memory tile
constexpr int TILE = BLOCK;
constexpr double LOG2E = 1.4426950408889634;
constexpr double LN2 = 0.6931471805599453;
constexpr double MEMORY_FRACTION = 0.5;  // of the free device memory one call may use
constexpr int BLOCKS_PER_SM_TARGET = 8;  // blocks wanted in flight per SM before splitting samples

int64_t env_limit(const char *name, int64_t fallback) {
  const char *text = getenv(name);
  if (!text || !*text) return fallback;
  long long v = atoll(text);
  return v > 0 ? static_cast<int64_t>(v) : fallback;
}

// ---------------------------------------------------------------------------------------------------
// Math helpers: float32 uses the hardware ex2 (MUFU.EX2, ~2 ulp), float64 the precise exp2.
template <typename T>
struct Math;
template <>
struct Math<float> {
  static __device__ __forceinline__ float ex2(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
  }
  static constexpr float kPad = -1e30f;  // log-weight of padding samples: ex2 gives exactly 0
};
template <>
struct Math<double> {
  static __device__ __forceinline__ double ex2(double x) { return exp2(x); }
  static constexpr double kPad = -1e300;
};

template <typename T>
struct Periods {
  T period[CUFES_MAX_DIM];      // pre-scaled period, 0 when not periodic
  T inv_period[CUFES_MAX_DIM];  // its inverse, 0 when not periodic
};

// Nearest-image distance of a periodic CV: prescale_kernel wraps every periodic coordinate into
// [-P/2, P/2], so |dx| <= P and the nearest image is min(|dx|, P - |dx|): 2 full-rate operations (the abs
// is an operand modifier), where dx - P * rint(dx / P) took 4 and rint runs on the quarter-rate FRND unit.
// For a non-periodic CV of a periodic kernel P = 0 gives -|dx|, whose square is the same.
template <typename T>
__device__ __forceinline__ T wrap_distance(T dx, T period) {
  return min(abs(dx), period - abs(dx));
}

// Pre-scale rows in place: x[i, d] *= factor[d], then wrap periodic CVs into [-P/2, P/2] (P pre-scaled);
// with logw, also logw *= log2(e).
template <typename T>
__global__ void prescale_kernel(T *rows, int64_t n, int dim, Periods<T> factor, Periods<T> per, T *logw) {
  int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  for (int d = 0; d < dim; ++d) {
    T x = rows[i * dim + d] * factor.period[d];
    if (per.period[d] > 0) x -= per.period[d] * rint(x * per.inv_period[d]);
    rows[i * dim + d] = x;
  }
  if (logw) logw[i] = logw[i] * static_cast<T>(LOG2E);
}

// One sweep of a thread's PPT points over a shared-memory tile of samples: tsum[p] = sum_k 2^(e_pk - m[p])
// with e_pk the pair's exponent (log2 units). The fast variant is the hot loop: 2D+3 FP32 operations and
// one MUFU.EX2 per pair, nothing else. TRACK_MAX (the rare slow path) also returns tmax[p] = max_k (e_pk - m[p]).
template <typename T, int D, bool PERIODIC, int PPT, bool TRACK_MAX>
__device__ __forceinline__ void sweep(const T (*tile)[D + 1], const T (&g)[PPT][D], const T (&m)[PPT],
                                      const Periods<T> &per, T (&tsum)[PPT], T (&tmax)[PPT]) {
#pragma unroll
  for (int p = 0; p < PPT; ++p) {
    tsum[p] = 0;
    tmax[p] = Math<T>::kPad;
  }
#pragma unroll 4
  for (int k = 0; k < TILE; ++k) {
    T s[D + 1];
#pragma unroll
    for (int d = 0; d <= D; ++d) s[d] = tile[k][d];  // same address for the whole warp: a broadcast
#pragma unroll
    for (int p = 0; p < PPT; ++p) {
      T acc = s[D] - m[p];
#pragma unroll
      for (int d = 0; d < D; ++d) {
        T dx = g[p][d] - s[d];
        if (PERIODIC) dx = wrap_distance(dx, per.period[d]);
        acc -= dx * dx;
      }
      if (TRACK_MAX) tmax[p] = max(tmax[p], acc);
      tsum[p] += Math<T>::ex2(acc);
    }
  }
}

// The fused kernel. samples/lw2: one chunk of nc pre-scaled samples; blockIdx.y takes samples
// [y * per_split, (y + 1) * per_split). grid: mc pre-scaled points. partial[y * mc + i] = (max, sum) in log2
// units for point i over split y.
//
// The running maximum m[p] starts at the exponent of the split's first sample and is raised lazily: a tile
// is summed relative to the current m with no per-pair check; only if a tile's sum grows past 2^64 (an
// exponent far above m, or an overflow to inf) is the tile swept again to find its maximum, m raised to it,
// the double accumulator rescaled, and the tile summed once more. That happens a few times per point at
// most, since each time m becomes an actual exponent. Per tile, the float sum moves into a double
// accumulator, so float32 mode keeps its accuracy however many samples there are.
template <typename T, int D, bool PERIODIC, int PPT>
__global__ void __launch_bounds__(BLOCK) kde_kernel(const T *__restrict__ samples, const T *__restrict__ lw2,
                                                    int64_t nc, int64_t per_split, const T *__restrict__ grid,
                                                    int64_t mc, Periods<T> per, double2 *__restrict__ partial) {
  __shared__ __align__(16) T tile[TILE][D + 1];
  const int64_t first = blockIdx.x * static_cast<int64_t>(BLOCK * PPT) + threadIdx.x;
  const int64_t j_begin = blockIdx.y * per_split;
  const int64_t j_end = j_begin + per_split < nc ? j_begin + per_split : nc;

  T g[PPT][D], m[PPT], tsum[PPT], tmax[PPT];
  double dsum[PPT];
#pragma unroll
  for (int p = 0; p < PPT; ++p) {
    int64_t i = first + p * BLOCK;
    i = i < mc ? i : mc - 1;  // tail threads duplicate the last point and do not store
    T e0 = lw2[j_begin];      // the split's first sample seeds the running max
#pragma unroll
    for (int d = 0; d < D; ++d) {
      g[p][d] = grid[i * D + d];
      T dx = g[p][d] - samples[j_begin * D + d];
      if (PERIODIC) dx = wrap_distance(dx, per.period[d]);
      e0 -= dx * dx;
    }
    m[p] = e0;
    dsum[p] = 0;
  }

  for (int64_t j0 = j_begin; j0 < j_end; j0 += TILE) {
    __syncthreads();  // the previous tile is consumed
    const int64_t j = j0 + threadIdx.x;
    if (j < j_end) {
#pragma unroll
      for (int d = 0; d < D; ++d) tile[threadIdx.x][d] = samples[j * D + d];
      tile[threadIdx.x][D] = lw2[j];
    } else {
#pragma unroll
      for (int d = 0; d < D; ++d) tile[threadIdx.x][d] = 0;
      tile[threadIdx.x][D] = Math<T>::kPad;
    }
    __syncthreads();
    sweep<T, D, PERIODIC, PPT, false>(tile, g, m, per, tsum, tmax);
    bool redo = false;
#pragma unroll
    for (int p = 0; p < PPT; ++p) redo = redo || !(tsum[p] < static_cast<T>(1.8446744073709552e19));  // 2^64
    if (redo) {  // rare: raise the running max of every point to its maximum over this tile
      sweep<T, D, PERIODIC, PPT, true>(tile, g, m, per, tsum, tmax);
#pragma unroll
      for (int p = 0; p < PPT; ++p) {
        if (tmax[p] > 0) {
          dsum[p] *= exp2(-static_cast<double>(tmax[p]));
          m[p] += tmax[p];
        }
      }
      sweep<T, D, PERIODIC, PPT, false>(tile, g, m, per, tsum, tmax);
    }
#pragma unroll
    for (int p = 0; p < PPT; ++p) dsum[p] += static_cast<double>(tsum[p]);
  }
#pragma unroll
  for (int p = 0; p < PPT; ++p) {
    int64_t i = first + p * BLOCK;
    if (i < mc) partial[blockIdx.y * mc + i] = make_double2(static_cast<double>(m[p]), dsum[p]);
  }
}

__device__ __forceinline__ void merge_pair(double &am, double &as, double bm, double bs) {
  if (!(bs > 0)) return;
  if (!(as > 0)) {
    am = bm;
    as = bs;
  } else if (bm > am) {
    as = as * exp2(am - bm) + bs;
    am = bm;
  } else {
    as += bs * exp2(bm - am);
  }
}

// Folds the splits of one sample chunk into the accumulator of the grid chunk.
__global__ void merge_kernel(const double2 *__restrict__ partial, int splits, int64_t mc, double2 *acc,
                             int fresh) {
  int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= mc) return;
  double am = 0, as = 0;
  if (!fresh) {
    am = acc[i].x;
    as = acc[i].y;
  }
  for (int k = 0; k < splits; ++k) merge_pair(am, as, partial[k * mc + i].x, partial[k * mc + i].y);
  acc[i] = make_double2(am, as);
}

__global__ void finalize_kernel(const double2 *__restrict__ acc, int64_t mc, double *__restrict__ out) {
  int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i < mc) out[i] = (acc[i].x + log2(acc[i].y)) * LN2;
}

// ---------------------------------------------------------------------------------------------------
// Host side.
template <typename T>
struct Problem {
  const T *samples, *logw, *grid, *scale, *period;
  int64_t n, m;
  int dim;
  double *out;
};

template <typename T>
using KernelFn = void (*)(const T *, const T *, int64_t, int64_t, const T *, int64_t, Periods<T>, double2 *);

// float32: 4 or 8 points per thread (CUFES_PPT=8 for tuning); float64 is FP64-bound (its exp2 is a long
// FMA sequence), where more points per thread only cost registers, so it has one variant.
template <typename T, int D, bool P>
KernelFn<T> pick_ppt(int ppt) {
  if constexpr (sizeof(T) == 4) {
    if (ppt >= 8) return kde_kernel<T, D, P, 8>;
    return kde_kernel<T, D, P, 4>;
  } else {
    return kde_kernel<T, D, P, 2>;
  }
}

template <typename T, int D>
KernelFn<T> pick_periodic(bool periodic, int ppt) {
  return periodic ? pick_ppt<T, D, true>(ppt) : pick_ppt<T, D, false>(ppt);
}

template <typename T>
KernelFn<T> pick_kernel(int dim, bool periodic, int ppt) {
  switch (dim) {
    case 1: return pick_periodic<T, 1>(periodic, ppt);
    case 2: return pick_periodic<T, 2>(periodic, ppt);
    case 3: return pick_periodic<T, 3>(periodic, ppt);
    case 4: return pick_periodic<T, 4>(periodic, ppt);
    case 5: return pick_periodic<T, 5>(periodic, ppt);
    case 6: return pick_periodic<T, 6>(periodic, ppt);
    case 7: return pick_periodic<T, 7>(periodic, ppt);
    case 8: return pick_periodic<T, 8>(periodic, ppt);
    default: return nullptr;
  }
}

// Points per thread of the kernel pick_ppt returns (it must match: the grid's block count depends on it).
template <typename T>
int points_per_thread() {
  if (sizeof(T) == 8) return 2;
  return env_limit("CUFES_PPT", 4) >= 8 ? 8 : 4;
}

struct Plan {
  int64_t sample_chunk, grid_chunk, partial_entries;
  int target_blocks;
};

// Chunk sizes from the free device memory (CUFES_MAX_SAMPLES / CUFES_MAX_GRID cap them, for tests).
template <typename T>
bool make_plan(const Problem<T> &pb, int ppt, Plan &plan, Error &err) {
  size_t free_b = 0, total_b = 0;
  if (!CUFES_CHECK(err, cudaMemGetInfo(&free_b, &total_b))) return false;
  int dev = 0, sms = 0;
  if (!CUFES_CHECK(err, cudaGetDevice(&dev))) return false;
  if (!CUFES_CHECK(err, cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev))) return false;
  plan.target_blocks = std::max(1, sms) * BLOCKS_PER_SM_TARGET;
  const int64_t per_block = static_cast<int64_t>(BLOCK) * ppt;
  const int64_t fixed_partial = (plan.target_blocks + 1) * per_block;  // see partial_entries below
  const double budget = MEMORY_FRACTION * static_cast<double>(free_b) - 16.0 * fixed_partial;
  if (budget < 1 << 20) {
    err.set(2, "cufes: only %zu bytes of device memory free", free_b);
    return false;
  }
  const double sample_row = (pb.dim + 1) * sizeof(T);
  const double grid_row = pb.dim * sizeof(T) + 2 * sizeof(double2) + sizeof(double);
  plan.sample_chunk = std::min<int64_t>(pb.n, static_cast<int64_t>(budget / 2 / sample_row));
  plan.grid_chunk = std::min<int64_t>(pb.m, static_cast<int64_t>(budget / 2 / grid_row));
  plan.sample_chunk = std::max<int64_t>(1, std::min(plan.sample_chunk, env_limit("CUFES_MAX_SAMPLES", pb.n)));
  plan.grid_chunk = std::max<int64_t>(1, std::min(plan.grid_chunk, env_limit("CUFES_MAX_GRID", pb.m)));
  // splits <= target/gb + 1 with gb = ceil(mc / per_block), so splits * mc <= (target + 1) * per_block + mc.
  plan.partial_entries = fixed_partial + plan.grid_chunk;
  return true;
}

template <typename T>
Periods<T> scaled_periods(const Problem<T> &pb, T factor_out[CUFES_MAX_DIM], bool &periodic) {
  Periods<T> per{};
  const double c = std::sqrt(0.5 * LOG2E);  // (dx*scale)^2 / 2 * log2(e) == (dx * scale * c)^2
  periodic = false;
  for (int d = 0; d < pb.dim; ++d) {
    double f = static_cast<double>(pb.scale[d]) * c;
    factor_out[d] = static_cast<T>(f);
    double p = static_cast<double>(pb.period[d]) * f;
    per.period[d] = pb.period[d] > 0 ? static_cast<T>(p) : T(0);
    per.inv_period[d] = pb.period[d] > 0 ? static_cast<T>(1.0 / p) : T(0);
    periodic = periodic || pb.period[d] > 0;
  }
  return per;
}

inline unsigned blocks_for(int64_t n, int threads) { return static_cast<unsigned>((n + threads - 1) / threads); }


// Copies rows [lo, lo+count) of a (., dim) host array and pre-scales them on the device.
template <typename T>
bool upload_rows(T *dst, const T *src, int64_t lo, int64_t count, int dim, const Periods<T> &factor,
                 const Periods<T> &per, T *dst_logw, const T *src_logw, Error &err) {
  if (!CUFES_CHECK(err, cudaMemcpy(dst, src + lo * dim, count * dim * sizeof(T), cudaMemcpyHostToDevice)))
    return false;
  if (dst_logw &&
      !CUFES_CHECK(err, cudaMemcpy(dst_logw, src_logw + lo, count * sizeof(T), cudaMemcpyHostToDevice)))
    return false;
  prescale_kernel<T><<<blocks_for(count, 256), 256>>>(dst, count, dim, factor, per, dst_logw);
  return check_launch(err, "prescale_kernel launch");
}

template <typename T>
int run(const Problem<T> &pb, int device, Error &err) {
  if (pb.dim < 1 || pb.dim > CUFES_MAX_DIM) {
    err.set(1, "cufes: dim must be 1..%d, got %d", CUFES_MAX_DIM, pb.dim);
    return err.code;
  }
  if (pb.n <= 0 || pb.m <= 0) return 0;
  cudaGetLastError();  // a failed call elsewhere in this thread must not be blamed on our launches
  DeviceScope scope(device, err);
  if (!scope.ok) return err.code;
  const int ppt = points_per_thread<T>();
  Plan plan;
  if (!make_plan(pb, ppt, plan, err)) return err.code;
  T factor[CUFES_MAX_DIM] = {};
  bool periodic = false;
  Periods<T> per = scaled_periods(pb, factor, periodic);
  Periods<T> scale_only{};
  for (int d = 0; d < pb.dim; ++d) scale_only.period[d] = factor[d];
  KernelFn<T> kernel = pick_kernel<T>(pb.dim, periodic, ppt);

  DeviceBuffer d_samples, d_logw, d_grid, d_partial, d_acc, d_out;
  if (!d_samples.alloc(plan.sample_chunk * pb.dim * sizeof(T), err, "cudaMalloc(samples)") ||
      !d_logw.alloc(plan.sample_chunk * sizeof(T), err, "cudaMalloc(logw)") ||
      !d_grid.alloc(plan.grid_chunk * pb.dim * sizeof(T), err, "cudaMalloc(grid)") ||
      !d_partial.alloc(plan.partial_entries * sizeof(double2), err, "cudaMalloc(partial)") ||
      !d_acc.alloc(plan.grid_chunk * sizeof(double2), err, "cudaMalloc(acc)") ||
      !d_out.alloc(plan.grid_chunk * sizeof(double), err, "cudaMalloc(out)"))
    return err.code;

  const bool one_sample_chunk = plan.sample_chunk >= pb.n;
  if (one_sample_chunk && !upload_rows(d_samples.as<T>(), pb.samples, 0, pb.n, pb.dim, scale_only, per, d_logw.as<T>(),
                                       pb.logw, err))
    return err.code;
  const int64_t per_block = static_cast<int64_t>(BLOCK) * ppt;
  for (int64_t g0 = 0; g0 < pb.m; g0 += plan.grid_chunk) {
    const int64_t mc = std::min(plan.grid_chunk, pb.m - g0);
    if (!upload_rows<T>(d_grid.as<T>(), pb.grid, g0, mc, pb.dim, scale_only, per, nullptr, nullptr, err)) return err.code;
    const int64_t gb = (mc + per_block - 1) / per_block;
    for (int64_t s0 = 0; s0 < pb.n; s0 += plan.sample_chunk) {
      const int64_t nc = std::min(plan.sample_chunk, pb.n - s0);
      if (!one_sample_chunk && !upload_rows(d_samples.as<T>(), pb.samples, s0, nc, pb.dim, scale_only, per,
                                            d_logw.as<T>(), pb.logw, err))
        return err.code;
      // Split the samples over blockIdx.y until the GPU has enough blocks; each split a whole number of tiles.
      const int64_t tiles = (nc + TILE - 1) / TILE;
      int64_t splits = std::min<int64_t>(tiles, std::max<int64_t>(1, (plan.target_blocks + gb - 1) / gb));
      splits = std::min<int64_t>(splits, 65535);
      const int64_t per_split = ((tiles + splits - 1) / splits) * TILE;
      splits = (nc + per_split - 1) / per_split;  // no empty split
      dim3 blocks(static_cast<unsigned>(gb), static_cast<unsigned>(splits));
      kernel<<<blocks, BLOCK>>>(d_samples.as<T>(), d_logw.as<T>(), nc, per_split, d_grid.as<T>(), mc, per,
                                d_partial.as<double2>());
      if (!check_launch(err, "kde_kernel launch")) return err.code;
      merge_kernel<<<blocks_for(mc, 256), 256>>>(d_partial.as<double2>(), static_cast<int>(splits), mc,
                                                 d_acc.as<double2>(), s0 == 0);
      if (!check_launch(err, "merge_kernel launch")) return err.code;
    }
    finalize_kernel<<<blocks_for(mc, 256), 256>>>(d_acc.as<double2>(), mc, d_out.as<double>());
    if (!check_launch(err, "finalize_kernel launch")) return err.code;
    if (!CUFES_CHECK(err, cudaMemcpy(pb.out + g0, d_out.ptr, mc * sizeof(double), cudaMemcpyDeviceToHost)))
      return err.code;
  }
  if (!CUFES_CHECK(err, cudaDeviceSynchronize())) return err.code;
  return 0;
}

template <typename T>
int log_density(const T *samples, const T *logw, int64_t n, int dim, const T *grid, int64_t m, const T *scale,
                const T *period, double *out, int device, char *errbuf, size_t errlen) {
  Error err{errbuf, errlen};
  if (errbuf && errlen) errbuf[0] = '\0';
  Problem<T> pb{samples, logw, grid, scale, period, n, m, dim, out};
  return run(pb, device, err);
}

}  // namespace cufes_internal

using cufes_internal::log_density;
using cufes_internal::Error;

extern "C" {

CUFES_API int cufes_log_density_f32(const float *samples, const float *logw, int64_t n, int dim,
                                    const float *grid, int64_t m, const float *scale, const float *period,
                                    double *out, int device, char *err, size_t errlen) {
  return log_density<float>(samples, logw, n, dim, grid, m, scale, period, out, device, err, errlen);
}

CUFES_API int cufes_log_density_f64(const double *samples, const double *logw, int64_t n, int dim,
                                    const double *grid, int64_t m, const double *scale, const double *period,
                                    double *out, int device, char *err, size_t errlen) {
  return log_density<double>(samples, logw, n, dim, grid, m, scale, period, out, device, err, errlen);
}

CUFES_API int cufes_device_count(int *count, char *errbuf, size_t errlen) {
  Error err{errbuf, errlen};
  *count = 0;
  cudaError_t e = cudaGetDeviceCount(count);
  if (e == cudaErrorNoDevice || e == cudaErrorInsufficientDriver) {
    cudaGetLastError();  // not an error for us: this machine simply has no usable GPU
    *count = 0;
    return 0;
  }
  return CUFES_CHECK(err, e) ? 0 : err.code;
}

CUFES_API int cufes_device_info(int device, char *name, size_t namelen, size_t *total_mem, int *cc_major,
                                int *cc_minor, char *errbuf, size_t errlen) {
  Error err{errbuf, errlen};
  cudaDeviceProp prop;
  if (!CUFES_CHECK(err, cudaGetDeviceProperties(&prop, device))) return err.code;
  if (name && namelen) snprintf(name, namelen, "%s", prop.name);
  *total_mem = prop.totalGlobalMem;
  *cc_major = prop.major;
  *cc_minor = prop.minor;
  return 0;
}

CUFES_API int cufes_host_register(void *ptr, size_t bytes, int device, int *registered, char *errbuf,
                                  size_t errlen) {
  Error err{errbuf, errlen};
  *registered = 0;
  if (!ptr || !bytes) return 0;
  cufes_internal::DeviceScope scope(device, err);  // a context on the device in use, not device 0's
  if (!scope.ok) return err.code;
  const cudaError_t e = cudaHostRegister(ptr, bytes, cudaHostRegisterPortable);
  if (e == cudaSuccess) {
    *registered = 1;
  } else {
    cudaGetLastError();  // already registered, or memory the driver cannot lock: copies stay pageable
  }
  return 0;
}

CUFES_API int cufes_host_unregister(void *ptr, char *errbuf, size_t errlen) {
  Error err{errbuf, errlen};
  return CUFES_CHECK(err, cudaHostUnregister(ptr)) ? 0 : err.code;
}

CUFES_API int cufes_warm_up(int device, char *errbuf, size_t errlen) {
  Error err{errbuf, errlen};
  if (!CUFES_CHECK(err, cudaSetDevice(device))) return err.code;
  return CUFES_CHECK(err, cudaFree(0)) ? 0 : err.code;  // the first runtime call on a device makes its context
}

CUFES_API int cufes_versions(int *runtime, int *driver) {
  *runtime = 0;
  cudaRuntimeGetVersion(runtime);
  if (driver && cudaDriverGetVersion(driver) != cudaSuccess) *driver = 0;
  return 0;
}

}  // extern "C"
