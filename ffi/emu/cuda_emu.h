// lmkit's CUDA emulator: the subset of the CUDA runtime, device intrinsics and CUB that
// ffi/cuda/lmkit_cuda.cu uses, run on the CPU. ffi/emu/build.sh compiles the .cu file as C++
// with this header in place of the CUDA headers (kernel launches rewritten to emu::Cfg(...).launch),
// so that the library's host code and kernels execute on a machine without a GPU.
//
// Each thread of a block is a fiber; fibers switch only at __syncthreads and warp shuffles, so a
// block runs as CUDA's independent thread scheduling allows. Device memory is host memory that the
// emulator tracks: every allocation ends at a guard page (an overrun faults, and the fault is
// reported with the kernel, block and thread) with canaries around it for smaller stray writes,
// starts filled with 0xff bytes (NaN in floats, -1 in ints: reading memory nobody wrote shows), and
// cudaMemcpy, cudaMemset and the mock cuBLAS, cuSOLVER and cuSPARSELt (ffi/emu/mocks.cpp) refuse a
// range outside a live allocation. Shared memory is poisoned per block, 16-byte vector accesses
// must be aligned, CUB's TempStorage reuse rule is checked, and built with EMU_SANITIZE=thread the
// fibers are ThreadSanitizer fibers (ffi/emu/race_check.sh). Timing, occupancy, memory coalescing
// and the tensor cores are not emulated.
#pragma once
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <limits>
#include <tuple>
#include <utility>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
// __shared__ variables are function statics gathered in one section, which the runtime fills
// with 0xff bytes before every block (shared memory starts undefined on a GPU, not as the
// previous block left it)
#define __shared__ static __attribute__((section("emu_shared")))

// ---------------------------------------------------------------- vector types
struct uint3 {
  unsigned x, y, z;
};
struct dim3 {
  unsigned x, y, z;
  dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
namespace emu {
// reports a kernel bug found by the shims and ends the launch (cudaGetLastError says so)
[[noreturn]] void kernel_error(const char* what);
}
// A GPU faults on a 16-byte access that is not 16-byte aligned; x86 does not, so uint4 checks
// the address of every copy it is read from or written to (no alignas: the compiler must not
// assume the alignment the check is about)
struct uint4 {
  unsigned x, y, z, w;
  uint4() = default;
  uint4(const uint4& o) : x(o.x), y(o.y), z(o.z), w(o.w) { check(&o); }
  uint4& operator=(const uint4& o) {
    check(this);
    check(&o);
    x = o.x, y = o.y, z = o.z, w = o.w;
    return *this;
  }
  static void check(const void* p) {
    if ((uintptr_t)p & 15) emu::kernel_error("a 16-byte access at an address that is not 16-byte aligned");
  }
};

// ---------------------------------------------------------------- runtime API
typedef enum cudaError {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorInvalidDevicePointer = 17,
  cudaErrorNotReady = 600,
  cudaErrorIllegalAddress = 700,
  cudaErrorLaunchFailure = 719,
} cudaError_t;
enum cudaMemcpyKind {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
  cudaMemcpyDefault = 4,
};
typedef struct CUstream_st* cudaStream_t;
struct cudaDeviceProp {
  char name[256];
  size_t totalGlobalMem;
  int major, minor, multiProcessorCount;
};
typedef enum cudaDataType_t { CUDA_R_32F = 0, CUDA_R_64F = 1, CUDA_R_16F = 2, CUDA_R_16BF = 14 } cudaDataType;

extern "C" {
cudaError_t cudaMalloc(void** p, size_t bytes);
cudaError_t cudaFree(void* p);
cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemset(void* p, int value, size_t bytes);
cudaError_t cudaDeviceSynchronize(void);
cudaError_t cudaGetLastError(void);
const char* cudaGetErrorString(cudaError_t e);
cudaError_t cudaGetDeviceCount(int* n);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int device);
// work runs when it is launched, so a stream is always drained (cudaSuccess) unless a mock has
// stalled it (emu_stream_stall: the mock NCCL's injected hang, until ncclCommAbort)
cudaError_t cudaStreamQuery(cudaStream_t s);
void emu_stream_stall(int on);
// emulator services for the mocks: is [p, p + bytes) inside one live allocation?
int emu_is_device(const void* p, size_t bytes);
}
template <typename T>
cudaError_t cudaMalloc(T** p, size_t bytes) {
  return cudaMalloc((void**)p, bytes);
}

// ---------------------------------------------------------------- threads and launches
namespace emu {
extern uint3 thread_idx, block_idx;
extern dim3 block_dim, grid_dim;
void syncthreads();
// how many block barriers have opened (it also moves at each block's start): CUB's rule that a
// TempStorage is reused only after a __syncthreads is checked against it
unsigned long long barrier_epoch();
// exchanges a value across the lanes of the calling thread's warp: every lane stores `v` and
// receives the value lane `src(lane)` stored; a full-mask exchange needs all 32 lanes present
unsigned long long warp_exchange(unsigned mask, unsigned long long v, int src);
// every lane's v, in lane order (one meeting of the warp: what the MMAs exchange)
void warp_allgather(unsigned mask, unsigned long long v, unsigned long long* all);
int lane();
// runs body() once per thread of every block; a bad launch or a fault sets cudaGetLastError
void run(const char* name, dim3 grid, dim3 block, void (*body)(void*), void* ctx);
// a library's __shared__ section, poisoned before each block (unregistered when it is unloaded)
void register_shared(char* begin, char* end);
void unregister_shared(char* begin);

struct Cfg {
  dim3 grid, block;
  Cfg(dim3 g, dim3 b, size_t smem = 0, cudaStream_t = nullptr) : grid(g), block(b) { (void)smem; }
  template <typename... P, typename... A>
  void launch(const char* name, void (*kernel)(P...), A&&... a) {
    // arguments are converted once, as a launch copies them, then each thread calls the kernel
    struct Ctx {
      void (*k)(P...);
      std::tuple<P...> args;
    } ctx{kernel, std::tuple<P...>(std::forward<A>(a)...)};
    run(name, grid, block, [](void* c) {
      Ctx* x = (Ctx*)c;
      std::apply(x->k, x->args);
    }, &ctx);
  }
};
}  // namespace emu
// the section's bounds in the library that includes this header (null where it has none)
extern "C" char __start_emu_shared[] __attribute__((weak, visibility("hidden")));
extern "C" char __stop_emu_shared[] __attribute__((weak, visibility("hidden")));
namespace {
struct EmuSharedRegistration {
  EmuSharedRegistration() {
    if (__start_emu_shared && __stop_emu_shared) emu::register_shared(__start_emu_shared, __stop_emu_shared);
  }
  ~EmuSharedRegistration() {
    if (__start_emu_shared) emu::unregister_shared(__start_emu_shared);
  }
} emu_shared_registration;
}  // namespace
#define threadIdx (emu::thread_idx)
#define blockIdx (emu::block_idx)
#define blockDim (emu::block_dim)
#define gridDim (emu::grid_dim)
inline void __syncthreads() { emu::syncthreads(); }

template <typename T>
inline T emu_bits_to(unsigned long long u) {
  T v;
  memcpy(&v, &u, sizeof v);
  return v;
}
template <typename T>
inline unsigned long long emu_to_bits(T v) {
  static_assert(sizeof(T) <= 8, "shuffles move at most 8 bytes");
  unsigned long long u = 0;
  memcpy(&u, &v, sizeof v);
  return u;
}
template <typename T>
inline T __shfl_sync(unsigned mask, T v, int src, int width = 32) {
  const int l = emu::lane(), base = l & ~(width - 1);
  return emu_bits_to<T>(emu::warp_exchange(mask, emu_to_bits(v), base + (src & (width - 1))));
}
template <typename T>
inline T __shfl_up_sync(unsigned mask, T v, unsigned d, int width = 32) {
  const int l = emu::lane(), within = l & (width - 1);
  return emu_bits_to<T>(emu::warp_exchange(mask, emu_to_bits(v), within >= (int)d ? l - (int)d : l));
}
template <typename T>
inline T __shfl_down_sync(unsigned mask, T v, unsigned d, int width = 32) {
  const int l = emu::lane(), within = l & (width - 1);
  return emu_bits_to<T>(emu::warp_exchange(mask, emu_to_bits(v), within + (int)d < width ? l + (int)d : l));
}

// ---------------------------------------------------------------- intrinsics
// Fibers switch only at barriers, so plain read-modify-writes would do; they are real atomics so
// that the ThreadSanitizer build (EMU_SANITIZE=thread) tells them from races.
template <typename T>
inline T atomicAdd(T* p, T v) {
  T old, sum;
  __atomic_load(p, &old, __ATOMIC_RELAXED);
  do sum = old + v;
  while (!__atomic_compare_exchange(p, &old, &sum, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED));
  return old;
}
template <typename T>
inline T atomicMin(T* p, T v) {
  T old;
  __atomic_load(p, &old, __ATOMIC_RELAXED);
  while (v < old && !__atomic_compare_exchange(p, &old, &v, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
  }
  return old;
}
inline int __popc(unsigned v) { return __builtin_popcount(v); }

// ---------------------------------------------------------------- tensor cores (values only)
// The integer warp-level MMAs lmkit uses, computed from the fragment layouts of the PTX ISA
// ("Matrix fragments for mma.m16n8k32 / mma.m16n8k64", groupID = lane / 4, tig = lane % 4):
// every lane gathers the whole of A and B (three warp all-gathers) and computes its own four outputs
// c[i] at row groupID (+8 for i ≥ 2), column 2·tig + (i & 1). Element 0 of a register is in its
// lowest bits. The kernels select these with LK_CUDA_EMU instead of their inline PTX.
#define LK_CUDA_EMU 1
// D = A·B + C, A 16×32 s8 (a[r]: row g + 8·(r & 1), columns 4·tig + 16·(r >> 1) + 0..3),
// B 32×8 s8 (b[r]: rows 4·tig + 16·r + 0..3, column g)
// every lane's four A and two B registers, by three warp all-gathers
inline void emu_mma_gather(const unsigned* a, const unsigned* b, unsigned (*ga)[4], unsigned (*gb)[2]) {
  unsigned long long all[3][32];
  emu::warp_allgather(0xffffffffu, a[0] | (unsigned long long)a[1] << 32, all[0]);
  emu::warp_allgather(0xffffffffu, a[2] | (unsigned long long)a[3] << 32, all[1]);
  emu::warp_allgather(0xffffffffu, b[0] | (unsigned long long)b[1] << 32, all[2]);
  for (int l = 0; l < 32; l++) {
    ga[l][0] = (unsigned)all[0][l], ga[l][1] = (unsigned)(all[0][l] >> 32);
    ga[l][2] = (unsigned)all[1][l], ga[l][3] = (unsigned)(all[1][l] >> 32);
    gb[l][0] = (unsigned)all[2][l], gb[l][1] = (unsigned)(all[2][l] >> 32);
  }
}
inline void emu_mma_m16n8k32_s8(int* c, const unsigned* a, const unsigned* b) {
  int A[16][32], B[32][8];
  unsigned ga[32][4], gb[32][2];
  emu_mma_gather(a, b, ga, gb);
  for (int src = 0; src < 32; src++) {
    const int g = src >> 2, t = src & 3;
    for (int r = 0; r < 4; r++)
      for (int e = 0; e < 4; e++) A[g + 8 * (r & 1)][4 * t + 16 * (r >> 1) + e] = (signed char)(ga[src][r] >> 8 * e);
    for (int r = 0; r < 2; r++)
      for (int e = 0; e < 4; e++) B[4 * t + 16 * r + e][g] = (signed char)(gb[src][r] >> 8 * e);
  }
  const int g = emu::lane() >> 2, t = emu::lane() & 3;
  for (int i = 0; i < 4; i++) {
    const int row = g + 8 * (i >> 1), col = 2 * t + (i & 1);
    int sum = 0;
    for (int k = 0; k < 32; k++) sum += A[row][k] * B[k][col];
    c[i] += sum;
  }
}
// D = A·B + C, A 16×64 s4 (a[r]: row g + 8·(r & 1), columns 8·tig + 32·(r >> 1) + 0..7),
// B 64×8 s4 (b[r]: rows 8·tig + 32·r + 0..7, column g)
inline void emu_mma_m16n8k64_s4(int* c, const unsigned* a, const unsigned* b) {
  int A[16][64], B[64][8];
  unsigned ga[32][4], gb[32][2];
  emu_mma_gather(a, b, ga, gb);
  const auto s4 = [](unsigned v, int e) { return (int)((v >> 4 * e) & 15u) - ((v >> 4 * e) & 8u ? 16 : 0); };
  for (int src = 0; src < 32; src++) {
    const int g = src >> 2, t = src & 3;
    for (int r = 0; r < 4; r++)
      for (int e = 0; e < 8; e++) A[g + 8 * (r & 1)][8 * t + 32 * (r >> 1) + e] = s4(ga[src][r], e);
    for (int r = 0; r < 2; r++)
      for (int e = 0; e < 8; e++) B[8 * t + 32 * r + e][g] = s4(gb[src][r], e);
  }
  const int g = emu::lane() >> 2, t = emu::lane() & 3;
  for (int i = 0; i < 4; i++) {
    const int row = g + 8 * (i >> 1), col = 2 * t + (i & 1);
    int sum = 0;
    for (int k = 0; k < 64; k++) sum += A[row][k] * B[k][col];
    c[i] += sum;
  }
}
inline unsigned __float_as_uint(float f) {
  unsigned u;
  memcpy(&u, &f, 4);
  return u;
}
inline double __longlong_as_double(long long v) {
  double d;
  memcpy(&d, &v, 8);
  return d;
}
inline int min(int a, int b) { return a < b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned min(int a, unsigned b) { return min((unsigned)a, b); }
inline unsigned min(unsigned a, int b) { return min(a, (unsigned)b); }

// ---------------------------------------------------------------- bf16
struct __nv_bfloat16 {
  unsigned short x;
};
inline __nv_bfloat16 __ushort_as_bfloat16(unsigned short u) { return __nv_bfloat16{u}; }
inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 h) { return h.x; }
inline float __bfloat162float(__nv_bfloat16 h) {
  unsigned u = (unsigned)h.x << 16;
  float f;
  memcpy(&f, &u, 4);
  return f;
}
inline __nv_bfloat16 __float2bfloat16(float f) {  // round to nearest, ties to even; NaN stays NaN
  unsigned u;
  memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return __nv_bfloat16{(unsigned short)((u >> 16) | 0x40)};
  u += 0x7fffu + ((u >> 16) & 1u);
  return __nv_bfloat16{(unsigned short)(u >> 16)};
}

// ---------------------------------------------------------------- CUB (the parts lmkit uses)
namespace cub {
// a collective may start on a TempStorage only after a block barrier since its last use ended
inline void enter(unsigned long long& last_exit, const char* what) {
  if (last_exit == emu::barrier_epoch()) emu::kernel_error(what);
}
template <typename T, int N>
struct BlockScan {
  struct TempStorage {
    T in[N], out[N], total;
    unsigned long long exit_epoch;
  };
  TempStorage& s;
  explicit BlockScan(TempStorage& t) : s(t) {}
  void ExclusiveSum(T v, T& out, T& total) {
    const unsigned t = threadIdx.x;
    enter(s.exit_epoch, "cub::BlockScan reuses its TempStorage without a __syncthreads in between");
    s.in[t] = v;
    __syncthreads();
    if (t == 0) {
      T acc = T();
      for (unsigned i = 0; i < blockDim.x; i++) s.out[i] = acc, acc = acc + s.in[i];
      s.total = acc;
    }
    __syncthreads();
    out = s.out[t];
    total = s.total;
    if (t == 0) s.exit_epoch = emu::barrier_epoch();
  }
};
template <typename T, int N>
struct BlockReduce {
  struct TempStorage {
    T in[N];
    unsigned long long exit_epoch;
  };
  TempStorage& s;
  explicit BlockReduce(TempStorage& t) : s(t) {}
  // as in CUB, only thread 0 receives the sum; the others get a poison value
  T Sum(T v) {
    enter(s.exit_epoch, "cub::BlockReduce reuses its TempStorage without a __syncthreads in between");
    s.in[threadIdx.x] = v;
    __syncthreads();
    if (threadIdx.x == 0) s.exit_epoch = emu::barrier_epoch();
    if (threadIdx.x != 0) return std::numeric_limits<T>::min();
    T acc = T();
    for (unsigned i = 0; i < blockDim.x; i++) acc = acc + s.in[i];
    return acc;
  }
};
struct DeviceRadixSort {
  // ascending keys in CUB's radix order (-0 before +0, NaNs by their bits); temp == nullptr asks
  // for the temporary storage size
  static cudaError_t SortKeys(void* temp, size_t& temp_bytes, const double* in, double* out, int n,
                              int begin_bit = 0, int end_bit = 64, cudaStream_t stream = nullptr);
};
}  // namespace cub
