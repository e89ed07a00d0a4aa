// lmkit CUDA library: QUIK layers on device buffers, with the semantics of ffi/cpu/quik.c and its
// ts reference (lib/kernels/quik_matmul.ts).
//
// lk_cuda_quik_quantize_f32: one block per token; min/max over the integer columns (listed in
// intcols) by a block reduction, then each level (x − min)/s rounded to even in f32, exactly as the
// cpu and ts quantizers (IEEE division; o·s is exact, so a contracted min + o·s is too); outlier
// columns (outcols) copied. The first non-finite input is reported by index.
//
// lk_cuda_quik_matmul_f32: the integer product on the tensor cores, signed levels on both sides
// (activations q = u − o as stored; weights w = u − o from the unsigned row-packed levels, for
// 4 bits by XOR 0x8 per nibble, which turns offset binary into two's complement), int32
// accumulators, one warp per 16 tokens × 32 outputs (four n8 tiles), four warps a block along the
// outputs. Path s8 (sm_90 and any sm_80+): mma.m16n8k32 on int8 (4-bit weights unpacked to int8
// in registers); path s4 (4-bit layers on sm_80–sm_89, whose tensor cores take int4):
// mma.m16n8k64 on int4 (activations packed to int4 in registers). The epilogue adds
// acc·xs·ws + xz·ws·Σw and the f32 outlier product (a plain loop over the outliers per output).
// Fragments are loaded straight from global memory (no shared-memory staging, no ldmatrix): the
// kernel is written for correctness on the emulator and has not been tuned on a GPU.
#include <cuda_runtime.h>

#include <cmath>
#include <mutex>

#include "internal.cuh"

namespace {

constexpr int QK_WARPS = 4;   // warps a block, each 32 outputs
constexpr int QK_THREADS = 128;

__device__ __forceinline__ void mma_s8(int* c, const unsigned* a, const unsigned* b) {
#if defined(LK_CUDA_EMU)
  emu_mma_m16n8k32_s8(c, a, b);
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile(
      "mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+r"(c[0]), "+r"(c[1]), "+r"(c[2]), "+r"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#endif
}

__device__ __forceinline__ void mma_s4(int* c, const unsigned* a, const unsigned* b) {
#if defined(LK_CUDA_EMU)
  emu_mma_m16n8k64_s4(c, a, b);
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile(
      "mma.sync.aligned.m16n8k64.row.col.s32.s4.s4.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+r"(c[0]), "+r"(c[1]), "+r"(c[2]), "+r"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#endif
}

// ---------------------------------------------------------------- quantizer

__global__ void quik_quantize(const float* x, const int* intcols, const int* outcols, signed char* xq,
                              float* xs, float* xz, int* qs, float* xo, int m, int k, int kq, int nout,
                              long long kp, int bits, long long* bad) {
  __shared__ float smin[QK_THREADS / 32], smax[QK_THREADS / 32];
  __shared__ int ssum[QK_THREADS / 32];
  __shared__ float sparam[2];
  const int t = blockIdx.x, tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const float* row = x + (size_t)t * k;
  float mn = INFINITY, mx = -INFINITY;
  for (int p = tid; p < kq; p += QK_THREADS) {
    const int c = intcols[p];
    const float v = row[c];
    if (!isfinite(v)) atomicMin(bad, (long long)t * k + c);
    mn = fminf(mn, v);
    mx = fmaxf(mx, v);
  }
  for (int j = tid; j < nout; j += QK_THREADS) {
    const float v = row[outcols[j]];
    if (!isfinite(v)) atomicMin(bad, (long long)t * k + outcols[j]);
    xo[(size_t)t * nout + j] = v;
  }
  for (int off = 16; off > 0; off >>= 1) {
    mn = fminf(mn, __shfl_down_sync(0xffffffffu, mn, off));
    mx = fmaxf(mx, __shfl_down_sync(0xffffffffu, mx, off));
  }
  if (lane == 0) smin[warp] = mn, smax[warp] = mx;
  __syncthreads();
  const int o = 1 << (bits - 1), maxq = (1 << bits) - 1;
  if (tid == 0) {
    for (int w = 1; w < QK_THREADS / 32; w++) mn = fminf(mn, smin[w]), mx = fmaxf(mx, smax[w]);
    float s = kq > 0 ? (mx - mn) / (float)maxq : 0.f;
    if (!isfinite(s)) atomicMin(bad, (long long)m * k + t);  // the range overflows
    if (s == 0.f || !isfinite(s)) s = 1.f;
    if (kq == 0) mn = 0.f;
    sparam[0] = mn, sparam[1] = s;
    xs[t] = s;
    xz[t] = mn + (float)o * s;
  }
  __syncthreads();
  const float lo = sparam[0], s = sparam[1];
  int sum = 0;
  signed char* q = xq + (size_t)t * kp;
  for (long long p = tid; p < kp; p += QK_THREADS) {
    int v = 0;
    if (p < kq) {
      float u = rintf((row[intcols[p]] - lo) / s);
      u = u < 0.f ? 0.f : u > (float)maxq ? (float)maxq : u;
      v = (int)u - o;
      sum += v;
    }
    q[p] = (signed char)v;
  }
  for (int off = 16; off > 0; off >>= 1) sum += __shfl_down_sync(0xffffffffu, sum, off);
  if (lane == 0) ssum[warp] = sum;
  __syncthreads();
  if (tid == 0) {
    for (int w = 1; w < QK_THREADS / 32; w++) sum += ssum[w];
    qs[t] = sum;
  }
}

// ---------------------------------------------------------------- integer product

// four signed 8-bit weights of output c at integer columns k … k+3 (0 past kq or n)
__device__ __forceinline__ unsigned w8x4(const unsigned char* wq, long long rb, int n, int kq, int bits, int c,
                                         long long k) {
  unsigned v = 0;
  if (c >= n) return 0;
  const unsigned char* r = wq + (size_t)c * rb;
  for (int e = 0; e < 4; e++) {
    if (k + e >= kq) break;
    const int u = bits == 4 ? ((r[(k + e) >> 1] >> (((k + e) & 1) * 4)) & 15) : r[k + e];
    v |= (unsigned)((u - (1 << (bits - 1))) & 0xff) << (8 * e);
  }
  return v;
}

// eight signed 4-bit weights of output c at columns k … k+7 (k a multiple of 8; 0 past kq or n)
__device__ __forceinline__ unsigned w4x8(const unsigned char* wq, long long rb, int n, int kq, int c, long long k) {
  if (c >= n) return 0;
  const unsigned char* r = wq + (size_t)c * rb;
  unsigned v = 0;
  for (int e = 0; e < 8 && k + e < kq; e++) v |= (((r[(k + e) >> 1] >> (((k + e) & 1) * 4)) & 15u) ^ 8u) << (4 * e);
  return v;
}

// four signed 8-bit activations of token t at k … k+3 (rows padded to kp, a multiple of 64)
__device__ __forceinline__ unsigned x8x4(const signed char* xq, long long kp, int m, int t, long long k) {
  if (t >= m) return 0;
  const unsigned char* p = (const unsigned char*)xq + (size_t)t * kp + k;
  return (unsigned)p[0] | (unsigned)p[1] << 8 | (unsigned)p[2] << 16 | (unsigned)p[3] << 24;
}

// eight activations of token t at k … k+7 as int4 (they lie in [−8, 7] at 4 bits)
__device__ __forceinline__ unsigned x4x8(const signed char* xq, long long kp, int m, int t, long long k) {
  if (t >= m) return 0;
  const signed char* p = xq + (size_t)t * kp + k;
  unsigned v = 0;
  for (int e = 0; e < 8; e++) v |= ((unsigned)p[e] & 15u) << (4 * e);
  return v;
}

template <int PATH>  // 8: mma on int8, 4: mma on int4
__global__ void quik_gemm(const signed char* xq, const float* xs, const float* xz, const float* xo,
                          const unsigned char* wq, const float* ws, const int* wsum, const float* wo, float* y,
                          int* accout, int m, int kq, int nout, int n, int bits, long long kp) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, tig = lane & 3;
  const int t0 = blockIdx.y * 16, c0 = (blockIdx.x * QK_WARPS + warp) * 32;
  const long long rb = bits == 4 ? ((long long)kq + 1) / 2 : kq;
  int acc[4][4];
  for (int j = 0; j < 4; j++)
    for (int i = 0; i < 4; i++) acc[j][i] = 0;
  if (PATH == 8) {
    for (long long k0 = 0; k0 < kp; k0 += 32) {
      unsigned a[4];
      for (int r = 0; r < 4; r++) a[r] = x8x4(xq, kp, m, t0 + g + 8 * (r & 1), k0 + 4 * tig + 16 * (r >> 1));
      for (int j = 0; j < 4; j++) {
        const int c = c0 + 8 * j + g;
        unsigned b[2];
        for (int r = 0; r < 2; r++) b[r] = w8x4(wq, rb, n, kq, bits, c, k0 + 4 * tig + 16 * r);
        mma_s8(acc[j], a, b);
      }
    }
  } else {
    for (long long k0 = 0; k0 < kp; k0 += 64) {
      unsigned a[4];
      for (int r = 0; r < 4; r++) a[r] = x4x8(xq, kp, m, t0 + g + 8 * (r & 1), k0 + 8 * tig + 32 * (r >> 1));
      for (int j = 0; j < 4; j++) {
        const int c = c0 + 8 * j + g;
        unsigned b[2];
        for (int r = 0; r < 2; r++) b[r] = w4x8(wq, rb, n, kq, c, k0 + 8 * tig + 32 * r);
        mma_s4(acc[j], a, b);
      }
    }
  }
  for (int j = 0; j < 4; j++)
    for (int i = 0; i < 4; i++) {
      const int t = t0 + g + 8 * (i >> 1), c = c0 + 8 * j + 2 * tig + (i & 1);
      if (t >= m || c >= n) continue;
      const size_t at = (size_t)t * n + c;
      if (accout) accout[at] = acc[j][i];
      float out = 0.f;
      for (int q = 0; q < nout; q++) out += xo[(size_t)t * nout + q] * wo[(size_t)c * nout + q];
      const float w = ws[c];
      y[at] = (float)acc[j][i] * (xs[t] * w) + (xz[t] * (w * (float)wsum[c]) + out);
    }
}

std::mutex bad_mu;
long long* bad_flag = nullptr;  // one device word for the quantizer's first bad input

}  // namespace

extern "C" int32_t lk_cuda_quik_quantize_f32(int32_t hx, int32_t hintcols, int32_t houtcols, int32_t hxq,
                                             int32_t hxs, int32_t hxz, int32_t hqs, int32_t hxo, int32_t m,
                                             int32_t k, int32_t nout, int32_t bits) {
  const char* fn = "lk_cuda_quik_quantize_f32";
  if (m < 0 || k < 1 || nout < 0 || nout > k)
    return fail(LK_ESHAPE, "%s: m=%d k=%d nout=%d, expected m >= 0, k >= 1, 0 <= nout <= k", fn, m, k, nout);
  if (bits != 4 && bits != 8) return fail(LK_EARG, "%s: bits=%d, expected 4 or 8", fn, bits);
  if (m > 2147483647) return fail(LK_ESHAPE, "%s: m=%d", fn, m);
  const int kq = k - nout;
  const long long kp = ((long long)kq + 63) / 64 * 64;
  void *x, *ic, *oc, *xq, *xs, *xz, *qs, *xo;
  if (int32_t st = get(fn, "x", hx, DT_F32, (double)m * k, &x)) return st;
  if (int32_t st = get(fn, "intcols", hintcols, DT_I32, kq, &ic)) return st;
  if (int32_t st = get(fn, "outcols", houtcols, DT_I32, nout, &oc)) return st;
  if (int32_t st = get(fn, "xq", hxq, DT_U8, (double)m * kp, &xq)) return st;
  if (int32_t st = get(fn, "xs", hxs, DT_F32, m, &xs)) return st;
  if (int32_t st = get(fn, "xz", hxz, DT_F32, m, &xz)) return st;
  if (int32_t st = get(fn, "qs", hqs, DT_I32, m, &qs)) return st;
  if (int32_t st = get(fn, "xo", hxo, DT_F32, (double)m * nout, &xo)) return st;
  if (m == 0) return LK_OK;
  std::lock_guard<std::mutex> lock(bad_mu);
  if (!bad_flag) CUDA_TRY(fn, cudaMalloc((void**)&bad_flag, sizeof(long long)));
  const long long none = (long long)m * k + m;  // past every element index and overflow code
  long long hb = none;
  CUDA_TRY(fn, cudaMemcpy(bad_flag, &hb, sizeof hb, cudaMemcpyHostToDevice));
  quik_quantize<<<m, QK_THREADS>>>((const float*)x, (const int*)ic, (const int*)oc, (signed char*)xq, (float*)xs,
                                   (float*)xz, (int*)qs, (float*)xo, m, k, kq, nout, kp, bits, bad_flag);
  if (int32_t st = launched(fn)) return st;
  CUDA_TRY(fn, cudaMemcpy(&hb, bad_flag, sizeof hb, cudaMemcpyDeviceToHost));
  if (hb < none) {
    if (hb >= (long long)m * k)
      return fail(LK_EARG, "%s: token %d's range overflows f32", fn, (int)(hb - (long long)m * k));
    const int t = (int)(hb / k), c = (int)(hb % k);
    float v = 0;
    CUDA_TRY(fn, cudaMemcpy(&v, (const float*)x + hb, sizeof v, cudaMemcpyDeviceToHost));
    return fail(LK_EARG, "%s: x[%d, %d] = %g, expected a finite value", fn, t, c, (double)v);
  }
  return LK_OK;
}

extern "C" int32_t lk_cuda_quik_matmul_f32(int32_t hxq, int32_t hxs, int32_t hxz, int32_t hxo, int32_t hwq,
                                           int32_t hws, int32_t hwsum, int32_t hwo, int32_t hy, int32_t hacc,
                                           int32_t m, int32_t kq, int32_t nout, int32_t n, int32_t bits,
                                           int32_t path) {
  const char* fn = "lk_cuda_quik_matmul_f32";
  if (m < 0 || kq < 0 || nout < 0 || n < 0 || kq + nout < 1)
    return fail(LK_ESHAPE, "%s: m=%d kq=%d nout=%d n=%d, expected sizes >= 0, kq + nout >= 1", fn, m, kq, nout, n);
  if (bits != 4 && bits != 8) return fail(LK_EARG, "%s: bits=%d, expected 4 or 8", fn, bits);
  if (path != 0 && path != 4 && path != 8)
    return fail(LK_EARG, "%s: path=%d, expected 0 (by device), 4 (int4 tensor cores) or 8 (int8)", fn, path);
  if (path == 4 && bits != 4) return fail(LK_EARG, "%s: the int4 path takes 4-bit layers, got %d bits", fn, bits);
  if (kq > 65536) return fail(LK_ESHAPE, "%s: kq=%d, at most 65536 integer columns", fn, kq);
  if ((m + 15) / 16 > 65535) return fail(LK_ESHAPE, "%s: m=%d, at most %d tokens a call", fn, m, 65535 * 16);
  const long long kp = ((long long)kq + 63) / 64 * 64;
  const double rb = bits == 4 ? (double)((kq + 1) / 2) : (double)kq;
  void *xq, *xs, *xz, *xo, *wq, *ws, *wsum, *wo, *y, *acc = nullptr;
  if (int32_t st = get(fn, "xq", hxq, DT_U8, (double)m * kp, &xq)) return st;
  if (int32_t st = get(fn, "xs", hxs, DT_F32, m, &xs)) return st;
  if (int32_t st = get(fn, "xz", hxz, DT_F32, m, &xz)) return st;
  if (int32_t st = get(fn, "xo", hxo, DT_F32, (double)m * nout, &xo)) return st;
  if (int32_t st = get(fn, "wq", hwq, DT_U8, (double)n * rb, &wq)) return st;
  if (int32_t st = get(fn, "ws", hws, DT_F32, n, &ws)) return st;
  if (int32_t st = get(fn, "wsum", hwsum, DT_I32, n, &wsum)) return st;
  if (int32_t st = get(fn, "wo", hwo, DT_F32, (double)n * nout, &wo)) return st;
  if (int32_t st = get(fn, "y", hy, DT_F32, (double)m * n, &y)) return st;
  if (hacc >= 0)
    if (int32_t st = get(fn, "acc", hacc, DT_I32, (double)m * n, &acc)) return st;
  if (m == 0 || n == 0) return LK_OK;
  if (path == 0) {
    cudaDeviceProp p;
    CUDA_TRY(fn, cudaGetDeviceProperties(&p, 0));
    path = bits == 4 && p.major == 8 ? 4 : 8;  // Hopper has no int4 tensor cores
  }
  const dim3 grid((unsigned)((n + 32 * QK_WARPS - 1) / (32 * QK_WARPS)), (unsigned)((m + 15) / 16));
  if (path == 4)
    quik_gemm<4><<<grid, QK_THREADS>>>((const signed char*)xq, (const float*)xs, (const float*)xz,
                                       (const float*)xo, (const unsigned char*)wq, (const float*)ws,
                                       (const int*)wsum, (const float*)wo, (float*)y, (int*)acc, m, kq, nout, n,
                                       bits, kp);
  else
    quik_gemm<8><<<grid, QK_THREADS>>>((const signed char*)xq, (const float*)xs, (const float*)xz,
                                       (const float*)xo, (const unsigned char*)wq, (const float*)ws,
                                       (const int*)wsum, (const float*)wo, (float*)y, (int*)acc, m, kq, nout, n,
                                       bits, kp);
  return launched(fn);
}
