// method="binned" on the GPU (cufes.h): linear binning of the samples onto a fine grid, then the convolution with
// the Gaussian, one CV at a time (the kernel is a product over CVs).
//
// Binning: one thread per sample adds its weight exp(logw - top) to the 2^D nodes of its fine-grid cell with
// multilinear weights (atomicAdd on doubles: sums may differ in the last bits from run to run). The samples go up
// in chunks, so device memory stays O(chunk + grid).
// Convolution: per CV, every node sums its neighbours within `reach` sigmas along that CV times the Gaussian's
// taps (periodic CVs wrap, so every image within reach is counted; non-periodic ones stop at the grid's ends,
// which the caller pads by more than reach). Direct sums, not FFTs: no cuFFT to ship, and with taps up to
// reach / spacing (about 160 at sigma / 16) a pass over a few million nodes takes milliseconds.
#include "cufes.h"
#include "host_util.cuh"

#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

namespace cufes_internal {
namespace binned {

constexpr int THREADS = 256;
constexpr int64_t CHUNK = int64_t{1} << 22;  // samples per transfer

struct FineGrid {
  int dim;
  int64_t shape[CUFES_MAX_DIM];
  int64_t stride[CUFES_MAX_DIM];  // matrix order: the last CV is contiguous
  double origin[CUFES_MAX_DIM], inv_spacing[CUFES_MAX_DIM];
  int periodic[CUFES_MAX_DIM];
};

// The fine-grid cell of one coordinate as _binned._positions computes it: lower node and fraction.
__device__ inline int64_t lower_node(const FineGrid &g, int d, double x, double *frac) {
  const double n = static_cast<double>(g.shape[d]);
  double t = (x - g.origin[d]) * g.inv_spacing[d];
  if (g.periodic[d]) t -= n * floor(t / n);
  const double f = floor(t);
  *frac = t - f;
  int64_t i = static_cast<int64_t>(f);
  if (g.periodic[d]) return i >= g.shape[d] ? i - g.shape[d] : i;
  return i < 0 ? 0 : i > g.shape[d] - 2 ? g.shape[d] - 2 : i;
}

__global__ void bin_linear(FineGrid g, const double *samples, const double *logw, int64_t n, double top,
                           double *bins) {
  const int64_t j = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (j >= n) return;
  const double w = exp(logw[j] - top);
  if (!(w > 0)) return;
  int64_t lower[CUFES_MAX_DIM];
  double frac[CUFES_MAX_DIM];
  for (int d = 0; d < g.dim; ++d) lower[d] = lower_node(g, d, samples[j * g.dim + d], &frac[d]);
  for (int corner = 0; corner < (1 << g.dim); ++corner) {
    int64_t flat = 0;
    double c = w;
    for (int d = 0; d < g.dim; ++d) {
      const int up = (corner >> (g.dim - 1 - d)) & 1;
      int64_t i = lower[d] + up;
      if (g.periodic[d] && i >= g.shape[d]) i -= g.shape[d];
      flat += i * g.stride[d];
      c *= up ? frac[d] : 1.0 - frac[d];
    }
    atomicAdd(&bins[flat], c);
  }
}

// One CV's pass: out[node] = sum_k in[node + k along d] taps[|k|], |k| <= radius.
__global__ void convolve_axis(const double *in, double *out, int64_t total, int64_t n, int64_t stride, int periodic,
                              const double *taps, int radius) {
  const int64_t node = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (node >= total) return;
  const int64_t i = (node / stride) % n;
  const int64_t base = node - i * stride;
  double s = 0.0;
  for (int k = -radius; k <= radius; ++k) {
    int64_t t = i + k;
    if (periodic) {
      t %= n;
      t += t < 0 ? n : 0;
    } else if (t < 0 || t >= n) {
      continue;
    }
    s += in[base + t * stride] * taps[k < 0 ? -k : k];
  }
  out[node] = s;
}

unsigned blocks_for(int64_t count) { return static_cast<unsigned>((count + THREADS - 1) / THREADS); }

int density(const double *samples, const double *logw, int64_t n, double top, const FineGrid &g,
            const double *sigma, const double *spacing, double reach, double *out, int device, Error &err) {
  DeviceScope scope(device, err);
  if (!scope.ok) return err.code;
  int64_t total = 1;
  for (int d = 0; d < g.dim; ++d) total *= g.shape[d];
  const int64_t chunk = n < CHUNK ? (n > 0 ? n : 1) : CHUNK;
  int radius_max = 0;
  for (int d = 0; d < g.dim; ++d) {
    const double r = ceil(reach * sigma[d] / spacing[d]);
    const int radius = static_cast<int>(r < 1e6 ? r : 1e6);
    radius_max = radius > radius_max ? radius : radius_max;
  }
  DeviceBuffer grid_a, grid_b, d_samples, d_logw, d_taps;
  if (!grid_a.alloc(total * sizeof(double), err, "cudaMalloc(fine grid)") ||
      !grid_b.alloc(total * sizeof(double), err, "cudaMalloc(fine grid)") ||
      !d_samples.alloc(chunk * g.dim * sizeof(double), err, "cudaMalloc(samples)") ||
      !d_logw.alloc(chunk * sizeof(double), err, "cudaMalloc(log-weights)") ||
      !d_taps.alloc((radius_max + 1) * sizeof(double), err, "cudaMalloc(taps)") ||
      !CUFES_CHECK(err, cudaMemset(grid_a.ptr, 0, total * sizeof(double))))
    return err.code;
  for (int64_t j = 0; j < n; j += chunk) {
    const int64_t m = n - j < chunk ? n - j : chunk;
    if (!CUFES_CHECK(err, cudaMemcpy(d_samples.ptr, samples + j * g.dim, m * g.dim * sizeof(double),
                                     cudaMemcpyHostToDevice)) ||
        !CUFES_CHECK(err, cudaMemcpy(d_logw.ptr, logw + j, m * sizeof(double), cudaMemcpyHostToDevice)))
      return err.code;
    bin_linear<<<blocks_for(m), THREADS>>>(g, d_samples.as<double>(), d_logw.as<double>(), m, top,
                                           grid_a.as<double>());
    if (!check_launch(err, "bin_linear")) return err.code;
  }
  HostArray<double> taps(static_cast<size_t>(radius_max) + 1);
  if (!taps.ok()) {
    err.set(2, "cufes: out of host memory for the Gaussian's taps");
    return err.code;
  }
  DeviceBuffer *from = &grid_a, *to = &grid_b;
  for (int d = 0; d < g.dim; ++d) {
    const double r = ceil(reach * sigma[d] / spacing[d]);
    const int radius = static_cast<int>(r < 1e6 ? r : 1e6);
    for (int k = 0; k <= radius; ++k) {
      const double x = k * spacing[d] / sigma[d];
      taps[k] = exp(-0.5 * x * x);
    }
    if (!CUFES_CHECK(err, cudaMemcpy(d_taps.ptr, taps.data(), (radius + 1) * sizeof(double), cudaMemcpyHostToDevice)))
      return err.code;
    convolve_axis<<<blocks_for(total), THREADS>>>(from->as<double>(), to->as<double>(), total, g.shape[d],
                                                  g.stride[d], g.periodic[d], d_taps.as<double>(), radius);
    if (!check_launch(err, "convolve_axis")) return err.code;
    DeviceBuffer *swap = from;
    from = to;
    to = swap;
  }
  CUFES_CHECK(err, cudaMemcpy(out, from->ptr, total * sizeof(double), cudaMemcpyDeviceToHost));
  return err.code;
}

}  // namespace binned
}  // namespace cufes_internal

using namespace cufes_internal;

CUFES_API int cufes_binned_density(const double *samples, const double *logw, int64_t n, int dim, double top,
                                   const int64_t *shape, const double *origin, const double *spacing,
                                   const int *periodic, const double *sigma, double reach, double *out, int device,
                                   char *errbuf, size_t errlen) {
  Error err{errbuf, errlen};
  if (dim < 1 || dim > CUFES_MAX_DIM) {
    err.set(1, "cufes: binned sums take 1 to %d CVs, not %d", CUFES_MAX_DIM, dim);
    return err.code;
  }
  binned::FineGrid g{};
  g.dim = dim;
  int64_t acc = 1;
  for (int d = dim - 1; d >= 0; --d) {
    if (shape[d] < 2) {
      err.set(1, "cufes: a fine grid needs at least 2 nodes per CV, not %lld", static_cast<long long>(shape[d]));
      return err.code;
    }
    g.shape[d] = shape[d];
    g.stride[d] = acc;
    acc *= shape[d];
    g.origin[d] = origin[d];
    g.inv_spacing[d] = 1.0 / spacing[d];
    g.periodic[d] = periodic[d] != 0;
  }
  return binned::density(samples, logw, n, top, g, sigma, spacing, reach, out, device, err);
}
