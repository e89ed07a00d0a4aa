// lmkit CUDA library: the weight-only quantized product (W4A16 / W8A16) on device buffers, with
// the semantics of lk_cpu_quant_matmul_f32 and its ts reference (lib/kernels/quant_matmul.ts):
// y[t, o] = Σ_k x[t, k]·s[o, g(k)]·(q[o, k] − z[o, g(k)]), levels two to a byte (nibbles, low
// first) or one to a byte, any group index g (act-order). One warp per output row and tile of
// QM_TOK tokens: each lane dequantizes its columns once and multiplies them into QM_TOK running
// sums, then the warp adds its lanes' sums in a fixed order (deterministic). Every handle's dtype
// and length and every group index is checked before the product runs.
#include <cuda_runtime.h>

#include <cmath>
#include <mutex>

#include "internal.cuh"

namespace {

constexpr int QM_TOK = 8;     // tokens per warp
constexpr int QM_WARPS = 4;   // warps (output rows) per block

__global__ void quant_find_bad_group(const int* gidx, int cols, int groups, int* bad) {
  for (int k = blockIdx.x * blockDim.x + threadIdx.x; k < cols; k += gridDim.x * blockDim.x)
    if (gidx[k] < 0 || gidx[k] >= groups) atomicMin(bad, k);
}

__global__ void quant_matmul(const float* x, const unsigned char* packed, const float* scales, const float* zeros,
                             const int* gidx, float* y, int tokens, int cols, int rows, int groups, int nibble) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int o = blockIdx.x * QM_WARPS + warp, t0 = blockIdx.y * QM_TOK;
  if (o >= rows) return;  // a whole warp leaves together: no barrier follows
  const int nt = tokens - t0 < QM_TOK ? tokens - t0 : QM_TOK;
  const size_t row_bytes = nibble ? (size_t)(cols + 1) / 2 : (size_t)cols;
  const unsigned char* pr = packed + (size_t)o * row_bytes;
  const float* sr = scales + (size_t)o * groups;
  const float* zr = zeros + (size_t)o * groups;
  float acc[QM_TOK];
  for (int i = 0; i < QM_TOK; i++) acc[i] = 0.f;
  for (int k = lane; k < cols; k += 32) {
    const unsigned b = pr[nibble ? k >> 1 : k];
    const float q = (float)(nibble ? (k & 1 ? b >> 4 : b & 15u) : b);
    const int g = gidx[k];
    const float w = sr[g] * (q - zr[g]);
    for (int i = 0; i < nt; i++) acc[i] += x[(size_t)(t0 + i) * cols + k] * w;
  }
  for (int i = 0; i < nt; i++) {
    float v = acc[i];
    for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off);
    if (lane == 0) y[(size_t)(t0 + i) * rows + o] = v;
  }
}

std::mutex flag_mu;
int* flag = nullptr;  // one device int for the group-index check, kept between calls

}  // namespace

extern "C" int32_t lk_cuda_quant_matmul_f32(int32_t hx, int32_t hpacked, int32_t hscales, int32_t hzeros,
                                            int32_t hgidx, int32_t hy, int32_t tokens, int32_t cols, int32_t rows,
                                            int32_t groups, int32_t nibble) {
  const char* fn = "lk_cuda_quant_matmul_f32";
  if (tokens < 0 || cols < 1 || rows < 0 || groups < 1)
    return fail(LK_ESHAPE, "%s: tokens=%d cols=%d rows=%d groups=%d, expected tokens, rows >= 0 and cols, groups >= 1",
                fn, tokens, cols, rows, groups);
  if (nibble != 0 && nibble != 1) return fail(LK_EARG, "%s: nibble=%d, expected 0 or 1", fn, nibble);
  if ((tokens + QM_TOK - 1) / QM_TOK > 65535)
    return fail(LK_ESHAPE, "%s: tokens=%d, expected at most %d a call", fn, tokens, 65535 * QM_TOK);
  if (groups > cols) return fail(LK_ESHAPE, "%s: %d groups for %d columns, expected at most one a column", fn, groups, cols);
  const double row_bytes = nibble ? (double)((cols + 1) / 2) : (double)cols;
  void *x, *packed, *scales, *zeros, *gidx, *y;
  if (int32_t st = get(fn, "x", hx, DT_F32, (double)tokens * cols, &x)) return st;
  if (int32_t st = get(fn, "packed", hpacked, DT_U8, (double)rows * row_bytes, &packed)) return st;
  if (int32_t st = get(fn, "scales", hscales, DT_F32, (double)rows * groups, &scales)) return st;
  if (int32_t st = get(fn, "zeros", hzeros, DT_F32, (double)rows * groups, &zeros)) return st;
  if (int32_t st = get(fn, "g_idx", hgidx, DT_I32, cols, &gidx)) return st;
  if (int32_t st = get(fn, "y", hy, DT_F32, (double)tokens * rows, &y)) return st;
  {
    std::lock_guard<std::mutex> g(flag_mu);
    if (!flag) CUDA_TRY(fn, cudaMalloc((void**)&flag, sizeof(int)));
    int hb = cols;  // no column
    CUDA_TRY(fn, cudaMemcpy(flag, &hb, sizeof hb, cudaMemcpyHostToDevice));
    quant_find_bad_group<<<blocks_for((size_t)cols, 256), 256>>>((const int*)gidx, cols, groups, flag);
    if (int32_t st = launched(fn)) return st;
    CUDA_TRY(fn, cudaMemcpy(&hb, flag, sizeof hb, cudaMemcpyDeviceToHost));
    if (hb < cols) {
      int v = 0;
      CUDA_TRY(fn, cudaMemcpy(&v, (const int*)gidx + hb, sizeof v, cudaMemcpyDeviceToHost));
      return fail(LK_EARG, "%s: g_idx[%d] = %d, expected 0 to %d", fn, hb, v, groups - 1);
    }
  }
  if (tokens == 0 || rows == 0) return LK_OK;
  const dim3 grid((unsigned)((rows + QM_WARPS - 1) / QM_WARPS), (unsigned)((tokens + QM_TOK - 1) / QM_TOK));
  quant_matmul<<<grid, 32 * QM_WARPS>>>((const float*)x, (const unsigned char*)packed, (const float*)scales,
                                        (const float*)zeros, (const int*)gidx, (float*)y, tokens, cols, rows, groups,
                                        nibble);
  return launched(fn);
}
