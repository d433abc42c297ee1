// Host-side helpers shared by the libcufes sources: one error type that carries CUDA's own message, device
// memory freed on scope exit, and a scope that selects a device and restores the caller's.
#ifndef CUFES_HOST_UTIL_CUH
#define CUFES_HOST_UTIL_CUH
#include <cuda_runtime.h>

// exp and log in host code bound to their first symbol versions (src/cyfes/glibc_compat.h says why): libcufes
// must load on glibc 2.17, like the rest of the wheel.
#include "glibc_compat.h"

#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace cufes_internal {

// Errors: every CUDA call is checked; the message names the call and carries CUDA's own text.
struct Error {
  char *buf;
  size_t len;
  int code = 0;
  void set(int rc, const char *fmt, ...) {
    if (code) return;  // keep the first failure: later ones are usually its consequences
    code = rc;
    if (!buf || !len) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, len, fmt, ap);
    va_end(ap);
  }
  bool cuda(cudaError_t e, const char *what) {
    if (e == cudaSuccess) return true;
    set(static_cast<int>(e), "cufes: %s failed: %s: %s", what, cudaGetErrorName(e), cudaGetErrorString(e));
    cudaGetLastError();  // the runtime also keeps it as "last error": clear it, or the next launch check sees it
    return false;
  }
};
#define CUFES_CHECK(err, call) ((err).cuda((call), #call))

// Device memory freed on scope exit, so every early return cleans up.
struct DeviceBuffer {
  void *ptr = nullptr;
  ~DeviceBuffer() {
    if (ptr) cudaFree(ptr);
  }
  bool alloc(size_t bytes, Error &err, const char *what) {
    return err.cuda(cudaMalloc(&ptr, bytes ? bytes : 1), what);
  }
  template <typename U>
  U *as() const {
    return static_cast<U *>(ptr);
  }
};

// Allocates `dst` for `count` values and copies them from the host.
template <typename U>
bool upload(DeviceBuffer &dst, const U *src, int64_t count, Error &err, const char *what) {
  return dst.alloc(count * sizeof(U), err, what) &&
         (count == 0 || CUFES_CHECK(err, cudaMemcpy(dst.ptr, src, count * sizeof(U), cudaMemcpyHostToDevice)));
}

// Copies `count` values of `src` back to the host.
template <typename U>
bool download(U *dst, const DeviceBuffer &src, int64_t count, Error &err) {
  return count == 0 || CUFES_CHECK(err, cudaMemcpy(dst, src.ptr, count * sizeof(U), cudaMemcpyDeviceToHost));
}

// A non-blocking stream (it never waits on the legacy default stream), destroyed on scope exit.
struct Stream {
  cudaStream_t s = nullptr;
  ~Stream() {
    if (s) cudaStreamDestroy(s);
  }
  bool create(Error &err) { return CUFES_CHECK(err, cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking)); }
};

// An event without timing (the cheapest kind), destroyed on scope exit.
struct Event {
  cudaEvent_t e = nullptr;
  ~Event() {
    if (e) cudaEventDestroy(e);
  }
  bool create(Error &err) { return CUFES_CHECK(err, cudaEventCreateWithFlags(&e, cudaEventDisableTiming)); }
};

// Selects a device for the call and restores the caller's device afterwards.
struct DeviceScope {
  int previous = -1;
  bool ok = false;
  DeviceScope(int device, Error &err) {
    if (!CUFES_CHECK(err, cudaGetDevice(&previous))) return;
    ok = CUFES_CHECK(err, cudaSetDevice(device));
  }
  ~DeviceScope() {
    if (previous >= 0) cudaSetDevice(previous);
  }
};

// Doubles as integers that order the same way, for atomicMin / atomicMax (its own inverse).
__host__ __device__ inline long long ordered(double v) {
  long long b;
  memcpy(&b, &v, sizeof b);
  return b >= 0 ? b : b ^ 0x7fffffffffffffffLL;
}
inline double from_ordered(long long k) {
  const long long b = k >= 0 ? k : k ^ 0x7fffffffffffffffLL;
  double v;
  memcpy(&v, &b, sizeof v);
  return v;
}

inline bool check_launch(Error &err, const char *what) {
  return err.cuda(cudaGetLastError(), what);
}

// A host array from malloc: no libstdc++ (std::vector's error paths pulled libstdc++.a objects into libcufes that
// need __libc_single_threaded from glibc 2.32, past the wheels' manylinux2014 floor). ok() is false when out of memory.
template <typename T>
struct HostArray {
  T *ptr = nullptr;
  size_t count = 0;
  explicit HostArray(size_t n) : ptr(static_cast<T *>(malloc((n ? n : 1) * sizeof(T)))), count(n) {}
  ~HostArray() { free(ptr); }
  HostArray(const HostArray &) = delete;
  HostArray &operator=(const HostArray &) = delete;
  bool ok() const { return ptr != nullptr; }
  T *data() { return ptr; }
  size_t size() const { return count; }
  T &operator[](size_t i) { return ptr[i]; }
};

}  // namespace cufes_internal
#endif
