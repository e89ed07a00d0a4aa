// lmkit CUDA library: bucketed max–min quantization for compressed collectives (QSDP, CGX;
// lib/comm/quantize.ts), with the arithmetic of ffi/cpu/comm_quant.c and the ts reference step
// for step (every f32 operation through the _rn intrinsics, so that nvcc contracts nothing into
// an FMA; the same counter-based draws), so that the three backends give the same bytes.
// See lmkit.h for the message layout. One block per bucket finds its min and max (and the first
// non-finite element) and writes the bucket's metadata; then one thread per 8 elements computes
// their levels and writes their b bytes (dequantizing reads them back the same way).
#include <cuda_runtime.h>

#include <cfloat>
#include <cmath>
#include <cstring>

#include "internal.cuh"

#ifndef __CUDACC__
// the emulator (ffi/emu): plain f32 operations, compiled without contraction
#pragma GCC optimize("fp-contract=off")
#endif

namespace {

// f32 operations rounded one by one (never fused), and f32 bits
#ifdef __CUDA_ARCH__
#define CQ_OP(dev, host) return dev
#else
#define CQ_OP(dev, host) return host
#endif
__host__ __device__ inline float cq_add(float a, float b) { CQ_OP(__fadd_rn(a, b), a + b); }
__host__ __device__ inline float cq_sub(float a, float b) { CQ_OP(__fsub_rn(a, b), a - b); }
__host__ __device__ inline float cq_mul(float a, float b) { CQ_OP(__fmul_rn(a, b), a * b); }
__host__ __device__ inline float cq_div(float a, float b) { CQ_OP(__fdiv_rn(a, b), a / b); }
__host__ __device__ inline float cq_float(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}
__host__ __device__ inline uint32_t cq_uint(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}

constexpr int CQ_THREADS = 256;  // a power of two

__host__ __device__ inline uint32_t cq_hash(uint32_t x) {  // "lowbias32", as comm_quant.c
  x ^= x >> 16;
  x *= 0x7feb352du;
  x ^= x >> 15;
  x *= 0x846ca68bu;
  x ^= x >> 16;
  return x;
}

__host__ __device__ inline double cq_f16_round(double v, int up) {
  if (v == 0) return 0;
  int e;
  frexp(fabs(v), &e);
  const int qe = e - 11 < -24 ? -24 : e - 11;
  const double t = ldexp(v, -qe);
  return ldexp(up ? ceil(t) : floor(t), qe) + 0.0;
}

__device__ inline uint16_t cq_f16_bits(double r) {
  uint16_t s = r < 0 ? 0x8000 : 0;
  const double a = fabs(r);
  if (a < 0x1p-14) return s | (uint16_t)(a * 0x1p24);
  int e;
  frexp(a, &e);
  return s | (uint16_t)((e - 1 + 15) << 10) | (uint16_t)(ldexp(a, 11 - e) - 1024);
}

__device__ inline float cq_f16_value(uint32_t h) {
  const int ex = (h >> 10) & 31, m = h & 1023;
  const float a = ex == 0 ? ldexpf((float)m, -24) : ldexpf((float)(m + 1024), ex - 25);
  return (h & 0x8000) ? -a : a;
}

enum { CQ_OK = 0, CQ_RANGE = 2, CQ_F16 = 3 };

// the metadata of a finite bucket with extremes mn, mx (as comm_quant.c's cq_meta)
__host__ __device__ inline int cq_meta(float mn, float mx, int bits, int meta_f16, float* mn_out,
                                       float* unit_out) {
  const int levels = (1 << bits) - 1;
  if (!meta_f16) {
    const float range = cq_sub(mx, mn);
    if (!(range <= FLT_MAX)) return CQ_RANGE;
    *mn_out = mn;
    *unit_out = cq_div(range, (float)levels);
    return CQ_OK;
  }
  const double m16 = cq_f16_round(mn, 0);
  if (m16 < -65504 || m16 > 65504) return CQ_F16;
  const double u16 = cq_f16_round(((double)mx - m16) / levels, 1);
  if (u16 > 65504) return CQ_F16;
  *mn_out = (float)m16;
  *unit_out = (float)u16;
  return CQ_OK;
}

__device__ inline void cq_get_meta(const unsigned char* msg, size_t q, int meta_f16, float* mn, float* unit) {
  if (meta_f16) {
    const unsigned char* p = msg + q * 4;
    *mn = cq_f16_value(p[0] | (uint32_t)p[1] << 8);
    *unit = cq_f16_value(p[2] | (uint32_t)p[3] << 8);
  } else {
    const unsigned char* p = msg + q * 8;
    uint32_t a = p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    uint32_t b = p[4] | (uint32_t)p[5] << 8 | (uint32_t)p[6] << 16 | (uint32_t)p[7] << 24;
    *mn = cq_float(a);
    *unit = cq_float(b);
  }
}

struct CqStatus {
  unsigned long long bad_index;   // the lowest non-finite element, or ~0
  unsigned long long bad_bucket;  // the lowest bucket whose metadata failed, or ~0
  float mn, mx;                   // that bucket's extremes (the report launch)
};

// buckets q0 ≤ q < q1, one block each (grid-stride): metadata into msg, failures into st; with
// report set, only the extremes of bucket q0 into st
__global__ void __launch_bounds__(CQ_THREADS) cq_meta_kernel(const float* x, size_t n, size_t bucket, size_t q0,
                                                             size_t q1, int bits, int meta_f16,
                                                             unsigned char* msg, CqStatus* st, int report) {
  __shared__ float smn[CQ_THREADS], smx[CQ_THREADS];
  __shared__ unsigned long long sbad[CQ_THREADS];
  for (size_t q = q0 + blockIdx.x; q < q1; q += gridDim.x) {
    const size_t b0 = q * bucket, b1 = b0 + bucket < n ? b0 + bucket : n;
    float mn = x[b0], mx = x[b0];
    unsigned long long bad = ~0ull;
    for (size_t i = b0 + threadIdx.x; i < b1; i += blockDim.x) {
      const float v = x[i];
      if (!(fabsf(v) <= FLT_MAX)) {
        if (i < bad) bad = i;
      } else {
        mn = v < mn ? v : mn;
        mx = v > mx ? v : mx;
      }
    }
    smn[threadIdx.x] = mn;
    smx[threadIdx.x] = mx;
    sbad[threadIdx.x] = bad;
    __syncthreads();
    for (unsigned s = blockDim.x / 2; s > 0; s >>= 1) {
      if (threadIdx.x < s) {
        const float a = smn[threadIdx.x + s], b = smx[threadIdx.x + s];
        const unsigned long long c = sbad[threadIdx.x + s];
        if (a < smn[threadIdx.x]) smn[threadIdx.x] = a;
        if (b > smx[threadIdx.x]) smx[threadIdx.x] = b;
        if (c < sbad[threadIdx.x]) sbad[threadIdx.x] = c;
      }
      __syncthreads();
    }
    if (threadIdx.x == 0) {
      if (report) {
        st->mn = smn[0];
        st->mx = smx[0];
      } else if (sbad[0] != ~0ull) {
        atomicMin(&st->bad_index, sbad[0]);
      } else {
        float m = 0, u = 0;
        if (cq_meta(smn[0], smx[0], bits, meta_f16, &m, &u) != CQ_OK) {
          atomicMin(&st->bad_bucket, (unsigned long long)q);
        } else if (meta_f16) {
          const uint16_t hm = cq_f16_bits(m), hu = cq_f16_bits(u);
          unsigned char* p = msg + q * 4;
          p[0] = hm & 255, p[1] = hm >> 8, p[2] = hu & 255, p[3] = hu >> 8;
        } else {
          const uint32_t a = cq_uint(m), b = cq_uint(u);
          unsigned char* p = msg + q * 8;
          for (int j = 0; j < 4; j++) p[j] = (a >> (8 * j)) & 255, p[4 + j] = (b >> (8 * j)) & 255;
        }
      }
    }
    __syncthreads();
  }
}

// one thread per 8 elements: their levels, b bytes at byte g·b of the level section
__global__ void cq_pack_kernel(const float* x, size_t n, uint32_t bucket, int bits, int meta_f16, int stochastic,
                               uint32_t k0, uint32_t k1, unsigned char* msg, size_t meta_bytes) {
  const size_t groups = (n + 7) / 8;
  const int levels = (1 << bits) - 1;
  for (size_t g = blockIdx.x * (size_t)blockDim.x + threadIdx.x; g < groups; g += (size_t)gridDim.x * blockDim.x) {
    const uint32_t i0 = (uint32_t)(g * 8);
    const int cnt = n - i0 < 8 ? (int)(n - i0) : 8;
    uint64_t w = 0;
    uint32_t q_have = ~0u;
    float mn = 0, unit = 0;
    for (int j = 0; j < cnt; j++) {
      const uint32_t i = i0 + j, q = i / bucket;
      if (q != q_have) {
        cq_get_meta(msg, q, meta_f16, &mn, &unit);
        q_have = q;
      }
      if (unit == 0) continue;  // a constant bucket: level 0
      const float v = cq_div(cq_sub(x[i], mn), unit);
      float r = 0.5f;
      if (stochastic) r = cq_mul((float)(int)(cq_hash((i + k0) ^ k1) >> 8), 0x1p-24f);
      const int l = (int)cq_add(v, r);
      w |= (uint64_t)(l < levels ? l : levels) << (j * bits);
    }
    unsigned char* out = msg + meta_bytes + g * bits;
    const int nb = (cnt * bits + 7) / 8;
    for (int t = 0; t < nb; t++) out[t] = (unsigned char)(w >> (8 * t));
  }
}

__global__ void cq_unpack_kernel(const unsigned char* msg, size_t n, uint32_t bucket, int bits, int meta_f16,
                                 int accumulate, float* out, size_t meta_bytes) {
  const size_t groups = (n + 7) / 8;
  const uint32_t m = (1u << bits) - 1;
  for (size_t g = blockIdx.x * (size_t)blockDim.x + threadIdx.x; g < groups; g += (size_t)gridDim.x * blockDim.x) {
    const uint32_t i0 = (uint32_t)(g * 8);
    const int cnt = n - i0 < 8 ? (int)(n - i0) : 8;
    const unsigned char* in = msg + meta_bytes + g * bits;
    const int nb = (cnt * bits + 7) / 8;
    uint64_t w = 0;
    for (int t = 0; t < nb; t++) w |= (uint64_t)in[t] << (8 * t);
    uint32_t q_have = ~0u;
    float mn = 0, unit = 0;
    for (int j = 0; j < cnt; j++) {
      const uint32_t i = i0 + j, q = i / bucket;
      if (q != q_have) {
        cq_get_meta(msg, q, meta_f16, &mn, &unit);
        q_have = q;
      }
      const float y = cq_add(mn, cq_mul((float)((w >> (j * bits)) & m), unit));
      out[i] = accumulate ? cq_add(out[i], y) : y;
    }
  }
}

double cq_buckets(double n, int32_t bucket) { return n == 0 ? 0 : ceil(n / bucket); }
double cq_bytes(double n, int bits, int32_t bucket, int meta_f16) {
  return cq_buckets(n, bucket) * (meta_f16 ? 4 : 8) + ceil(n * bits / 8);
}

int32_t cq_check_spec(const char* fn, double n, int32_t bits, int32_t bucket, int32_t meta_f16) {
  if (bits < 1 || bits > 8) return fail(LK_EARG, "%s: bits=%d, expected an integer from 1 to 8", fn, bits);
  if (bucket < 1)
    return fail(LK_EARG, "%s: bucket size %d, expected an integer from 1 to 2147483647", fn, bucket);
  if (meta_f16 != 0 && meta_f16 != 1)
    return fail(LK_EARG, "%s: meta_f16=%d, expected 0 (f32) or 1 (f16)", fn, meta_f16);
  if (!(n >= 0) || n != floor(n) || n >= 4294967296.0)
    return fail(LK_ESHAPE, "%s: %g elements, expected an integer from 0 to 2^32 - 1", fn, n);
  return LK_OK;
}

}  // namespace

extern "C" int32_t lk_cuda_cq_quantize_f32(int32_t hx, double n, int32_t bits, int32_t bucket, int32_t meta_f16,
                                           int32_t stochastic, double seed, int32_t hmsg) {
  const char* fn = "lk_cuda_cq_quantize_f32";
  if (int32_t st = cq_check_spec(fn, n, bits, bucket, meta_f16)) return st;
  if (stochastic != 0 && stochastic != 1)
    return fail(LK_EARG, "%s: stochastic=%d, expected 0 (nearest) or 1", fn, stochastic);
  if (!(seed >= 0) || seed != floor(seed) || seed > 9007199254740991.0)
    return fail(LK_EARG, "%s: seed %g, expected an integer from 0 to 2^53 - 1", fn, seed);
  void *x, *msg;
  if (int32_t st = get(fn, "x", hx, DT_F32, n, &x)) return st;
  if (int32_t st = get(fn, "msg", hmsg, DT_U8, cq_bytes(n, bits, bucket, meta_f16), &msg)) return st;
  const size_t len = (size_t)n, nb = (size_t)cq_buckets(n, bucket);
  if (len == 0) return LK_OK;
  CqStatus hs = {~0ull, ~0ull, 0, 0}, *ds = nullptr;
  CUDA_TRY(fn, cudaMalloc(&ds, sizeof hs));
  cudaMemcpy(ds, &hs, sizeof hs, cudaMemcpyHostToDevice);
  const int grid = nb < 65535 * 16 ? (int)nb : 65535 * 16;
  int threads = 32;  // a power of two covering a bucket, at most CQ_THREADS
  while (threads < bucket && threads < CQ_THREADS) threads <<= 1;
  cq_meta_kernel<<<grid, threads>>>((const float*)x, len, (size_t)bucket, 0, nb, bits, meta_f16,
                                       (unsigned char*)msg, ds, 0);
  int32_t st = launched(fn);
  if (!st) st = cudaMemcpy(&hs, ds, sizeof hs, cudaMemcpyDeviceToHost) == cudaSuccess ? LK_OK : LK_EBACKEND;
  if (!st && hs.bad_index == ~0ull && hs.bad_bucket != ~0ull) {  // that bucket's extremes, for the message
    cq_meta_kernel<<<1, threads>>>((const float*)x, len, (size_t)bucket, hs.bad_bucket, hs.bad_bucket + 1, bits,
                                      meta_f16, (unsigned char*)msg, ds, 1);
    st = launched(fn);
    if (!st) st = cudaMemcpy(&hs, ds, sizeof hs, cudaMemcpyDeviceToHost) == cudaSuccess ? LK_OK : LK_EBACKEND;
  }
  cudaFree(ds);
  if (st == LK_EBACKEND) return fail(st, "%s: cannot read the kernel's status back", fn);
  if (st) return st;
  if (hs.bad_index != ~0ull) {
    float v = 0;
    CUDA_TRY(fn, cudaMemcpy(&v, (const float*)x + hs.bad_index, sizeof v, cudaMemcpyDeviceToHost));
    return fail(LK_ENUMERICAL, "%s: x[%llu] is %s: expected finite values to quantize", fn, hs.bad_index,
                std::isnan(v) ? "NaN" : v > 0 ? "Infinity" : "-Infinity");
  }
  if (hs.bad_bucket != ~0ull) {
    const size_t b0 = hs.bad_bucket * (size_t)bucket, b1 = b0 + bucket < len ? b0 + bucket : len;
    float m, u;
    if (cq_meta(hs.mn, hs.mx, bits, meta_f16, &m, &u) == CQ_RANGE)
      return fail(LK_ENUMERICAL,
                  "%s: bucket %llu (elements %zu to %zu) spans %g to %g, a range that overflows f32: "
                  "expected max - min below 3.4e38",
                  fn, hs.bad_bucket, b0, b1 - 1, (double)hs.mn, (double)hs.mx);
    return fail(LK_ENUMERICAL,
                "%s: bucket %llu (elements %zu to %zu) spans %g to %g, whose min or unit does not fit f16 "
                "metadata (|value| <= 65504): use f32 metadata",
                fn, hs.bad_bucket, b0, b1 - 1, (double)hs.mn, (double)hs.mx);
  }
  const uint32_t hi = (uint32_t)floor(seed / 4294967296.0), lo = (uint32_t)(seed - (double)hi * 4294967296.0);
  const uint32_t k0 = cq_hash(lo ^ cq_hash(hi ^ 0x6a09e667u)), k1 = cq_hash(k0 ^ 0xbb67ae85u);
  cq_pack_kernel<<<blocks_for((len + 7) / 8, 256), 256>>>((const float*)x, len, (uint32_t)bucket, bits, meta_f16,
                                                          stochastic, k0, k1, (unsigned char*)msg,
                                                          nb * (meta_f16 ? 4 : 8));
  return launched(fn);
}

extern "C" int32_t lk_cuda_cq_dequantize_f32(int32_t hmsg, double n, int32_t bits, int32_t bucket, int32_t meta_f16,
                                             int32_t accumulate, int32_t hout) {
  const char* fn = "lk_cuda_cq_dequantize_f32";
  if (int32_t st = cq_check_spec(fn, n, bits, bucket, meta_f16)) return st;
  if (accumulate != 0 && accumulate != 1) return fail(LK_EARG, "%s: accumulate=%d, expected 0 or 1", fn, accumulate);
  void *msg, *out;
  if (int32_t st = get(fn, "msg", hmsg, DT_U8, cq_bytes(n, bits, bucket, meta_f16), &msg)) return st;
  if (int32_t st = get(fn, "out", hout, DT_F32, n, &out)) return st;
  const size_t len = (size_t)n, nb = (size_t)cq_buckets(n, bucket);
  if (len == 0) return LK_OK;
  cq_unpack_kernel<<<blocks_for((len + 7) / 8, 256), 256>>>((const unsigned char*)msg, len, (uint32_t)bucket, bits,
                                                            meta_f16, accumulate, (float*)out,
                                                            nb * (meta_f16 ? 4 : 8));
  return launched(fn);
}
