// lmkit CUDA library: the training kernels on device buffers (lmkit.h, "training kernels on device
// buffers"), with the semantics of their cpu counterparts and ts references (lib/kernels/*.ts):
// the general product with transposes (cuBLAS), RMSNorm forward and backward, RoPE both ways,
// causal GQA attention backward, SwiGLU backward, the embedding scatter-add, softmax
// cross-entropy and AdamW. Every handle's dtype and length is checked before any launch.
//
// Reductions run through shared memory with barriers only (no warp shuffles), in a fixed order,
// so that every result except the embedding scatter-add (float atomics) is deterministic.
#include <cuda_runtime.h>

#include <cmath>
#include <cstring>
#include <mutex>

#include "internal.cuh"

namespace {

// ---------------------------------------------------------------- shared helpers
constexpr int RED_MAX = 256;  // the most threads a block_reduce block has

struct SumOp {
  __device__ double operator()(double a, double b) const { return a + b; }
};
struct MaxOp {
  __device__ double operator()(double a, double b) const { return a > b ? a : b; }
};
struct MinOp {
  __device__ double operator()(double a, double b) const { return a < b ? a : b; }
};

// op over every thread's v (blockDim.x a power of two ≤ RED_MAX), through sh[blockDim.x]; every
// thread receives the result, and sh may be reused when it returns (it ends with a barrier).
template <typename Op>
__device__ double block_reduce(double v, double* sh, Op op) {
  sh[threadIdx.x] = v;
  __syncthreads();
  for (unsigned s = blockDim.x / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) sh[threadIdx.x] = op(sh[threadIdx.x], sh[threadIdx.x + s]);
    __syncthreads();
  }
  const double r = sh[0];
  __syncthreads();
  return r;
}

// threads per row for a one-block-per-row kernel: a power of two in [32, RED_MAX] covering n
int row_threads(int n) {
  int t = 32;
  while (t < n && t < RED_MAX) t <<= 1;
  return t;
}

// a device scratch kept between calls (grown on demand), guarded by scratch_mu
struct DevScratch {
  void* p = nullptr;
  size_t bytes = 0;
  bool want(size_t b) {
    if (b <= bytes) return true;
    cudaFree(p);
    p = nullptr;
    bytes = 0;
    if (cudaMalloc(&p, b) != cudaSuccess) {
      cudaGetLastError();
      return false;
    }
    bytes = b;
    return true;
  }
};
std::mutex scratch_mu;
DevScratch scratch;

// an element count given as a double: an integer in [0, 2^53]?
bool is_count(double n) { return n >= 0 && n <= 9007199254740992.0 && n == floor(n); }

// ---------------------------------------------------------------- RMSNorm
__global__ void rmsnorm_rows(const float* x, const float* w, float* y, float* rstd, int cols, double eps) {
  __shared__ double sh[RED_MAX];
  const size_t o = (size_t)blockIdx.x * cols;
  double ss = 0;
  for (int i = threadIdx.x; i < cols; i += blockDim.x) {
    const double v = x[o + i];
    ss += v * v;
  }
  ss = block_reduce(ss, sh, SumOp());
  const float inv = (float)(1.0 / sqrt(ss / cols + eps));
  if (threadIdx.x == 0) rstd[blockIdx.x] = inv;
  for (int i = threadIdx.x; i < cols; i += blockDim.x) {
    const float xn = x[o + i] * inv;  // HF's order: normalise, round to f32, then scale
    y[o + i] = xn * w[i];
  }
}

// dx of one row per block: with x̂ = x·rstd and g = dy∘w, dx = rstd·(g − x̂·mean(g∘x̂)) (f64)
__global__ void rmsnorm_bwd_rows(const float* dy, const float* x, const float* w, const float* rstd, float* dx,
                                 int cols) {
  __shared__ double sh[RED_MAX];
  const size_t o = (size_t)blockIdx.x * cols;
  const double s = rstd[blockIdx.x];
  double dot = 0;
  for (int i = threadIdx.x; i < cols; i += blockDim.x) dot += (double)dy[o + i] * w[i] * ((double)x[o + i] * s);
  const double mean = block_reduce(dot, sh, SumOp()) / cols;
  for (int i = threadIdx.x; i < cols; i += blockDim.x)
    dx[o + i] = (float)(s * ((double)dy[o + i] * w[i] - (double)x[o + i] * s * mean));
}

// dw += Σ_rows dy∘x̂: 32 columns per block, 8 row lanes summed in a fixed order (deterministic)
constexpr int DW_COLS = 32, DW_LANES = 8;
__global__ void rmsnorm_dw(const float* dy, const float* x, const float* rstd, float* dw, int rows, int cols) {
  __shared__ double part[DW_LANES][DW_COLS];
  const int c = blockIdx.x * DW_COLS + threadIdx.x;
  double acc = 0;
  if (c < cols)
    for (int r = threadIdx.y; r < rows; r += DW_LANES) {
      const size_t at = (size_t)r * cols + c;
      acc += (double)dy[at] * ((double)x[at] * rstd[r]);
    }
  part[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && c < cols) {
    double s = 0;
    for (int q = 0; q < DW_LANES; q++) s += part[q][threadIdx.x];
    dw[c] = (float)((double)dw[c] + s);
  }
}

// ---------------------------------------------------------------- RoPE, SwiGLU, AdamW
// in place on x[t, heads·d]: element i of a head pairs with i + d/2; cos, sin [t, d/2]
__global__ void rope_rows(float* x, const float* cs, const float* sn, int t, int heads, int d, float dir) {
  const int half = d / 2;
  const size_t total = (size_t)t * heads * half;
  for (size_t q = blockIdx.x * (size_t)blockDim.x + threadIdx.x; q < total; q += (size_t)gridDim.x * blockDim.x) {
    const size_t th = q / half;  // row·heads + head
    const int i = (int)(q % half);
    const size_t row = th / heads;
    float* p = x + th * d;
    const float c = cs[row * half + i], s = dir * sn[row * half + i];
    const float a = p[i], b = p[i + half];
    p[i] = a * c - b * s;
    p[i + half] = b * c + a * s;
  }
}

__global__ void swiglu_bwd(const float* gate, const float* up, const float* dout, float* dgate, float* dup,
                           size_t n) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
    const float g = gate[i], s = 1.0f / (1.0f + expf(-g)), dy = dout[i];
    dgate[i] = dy * up[i] * s * (1.0f + g * (1.0f - s));
    dup[i] = dy * g * s;
  }
}

struct AdamArgs {
  float b1, omb1, b2, omb2, eps, decay, step_size, bc2_sqrt;
};
__global__ void adamw_step(float* p, const float* g, float* m, float* v, size_t n, AdamArgs a) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
    const float gi = g[i];
    const float mi = a.b1 * m[i] + a.omb1 * gi, vi = a.b2 * v[i] + a.omb2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] = p[i] * a.decay - a.step_size * mi / (sqrtf(vi) / a.bc2_sqrt + a.eps);
  }
}

// ---------------------------------------------------------------- embedding backward
__global__ void find_bad_id(const int* ids, int t, int vocab, int* bad) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < t; i += gridDim.x * blockDim.x)
    if (ids[i] < 0 || ids[i] >= vocab) atomicMin(bad, i);
}

// dtable[ids[i], e] += dh[i, e]; repeated ids meet in float atomics
__global__ void embedding_scatter(const int* ids, const float* dh, float* dtable, int t, int d) {
  const size_t total = (size_t)t * d;
  for (size_t q = blockIdx.x * (size_t)blockDim.x + threadIdx.x; q < total; q += (size_t)gridDim.x * blockDim.x) {
    const size_t i = q / d, e = q % d;
    atomicAdd(&dtable[(size_t)ids[i] * d + e], dh[q]);
  }
}

// ---------------------------------------------------------------- cross-entropy
struct CeFlags {
  int bad_target;               // lowest row whose target is neither -1 nor in [0, vocab)
  unsigned long long bad_logit;  // lowest row·vocab + column of a non-finite logit in a used row
};

// one block per row: loss = logsumexp − logit[target] (f64 sums), dlogits = scale·(softmax − onehot)
__global__ void cross_entropy_rows(const float* logits, const int* targets, float* loss, float* dlogits, int vocab,
                                   float scale, CeFlags* flags) {
  __shared__ double sh[RED_MAX];
  const int r = blockIdx.x, target = targets[r];
  const float* x = logits + (size_t)r * vocab;
  float* g = dlogits + (size_t)r * vocab;
  if (target == -1) {  // ignored: a zero row
    for (int i = threadIdx.x; i < vocab; i += blockDim.x) g[i] = 0.0f;
    if (threadIdx.x == 0) loss[r] = 0.0f;
    return;
  }
  if (target < 0 || target >= vocab) {
    if (threadIdx.x == 0) atomicMin(&flags->bad_target, r);
    return;
  }
  float mx = -INFINITY;
  int first_bad = vocab;
  for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
    const float v = x[i];
    if (!isfinite(v)) first_bad = i < first_bad ? i : first_bad;
    else mx = v > mx ? v : mx;
  }
  first_bad = (int)block_reduce((double)first_bad, sh, MinOp());
  if (first_bad < vocab) {
    if (threadIdx.x == 0) atomicMin(&flags->bad_logit, (unsigned long long)r * vocab + first_bad);
    return;
  }
  mx = (float)block_reduce((double)mx, sh, MaxOp());
  double sum = 0;
  for (int i = threadIdx.x; i < vocab; i += blockDim.x) sum += expf(x[i] - mx);
  const double lse = mx + log(block_reduce(sum, sh, SumOp()));
  if (threadIdx.x == 0) loss[r] = (float)(lse - x[target]);
  // softmax − onehot; at the target p − 1 as expm1 (p near 1 would cancel in f32)
  for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
    const float z = (float)(x[i] - lse);
    g[i] = scale * (i == target ? expm1f(z) : expf(z));
  }
}

// ---------------------------------------------------------------- attention backward
// Two passes over one sequence, FlashAttention-2's split without tiles in shared memory:
//  1. one block per (query position i, query head h): the softmax statistics of row i (online
//     max and sum, then lse), D_i = Σ_j P_ij·dP_ij, and dq_i = Σ_j dS_ij·k_j/√d, the keys taken in
//     chunks of ATT_T whose dS go through shared memory; lse and D are kept for pass 2;
//  2. one block per (kv head g, key position j): dk_j = Σ_{h in g, i ≥ j} dS_ij·q_i/√d and
//     dv_j = Σ P_ij·dout_i, the queries taken in chunks the same way.
// Each output element belongs to one thread of one block: no atomics, deterministic.
constexpr int ATT_T = 128, ATT_MAXD = 2 * ATT_T;  // threads; head width (two outputs per thread)

__device__ __forceinline__ float dot_row(const float* a, const float* b, int d) {
  float s = 0;
  for (int e = 0; e < d; e++) s += a[e] * b[e];
  return s;
}

__global__ void __launch_bounds__(ATT_T) attention_bwd_q(const float* q, const float* k, const float* v,
                                                         const float* dout, float* dq, float* stats, int t,
                                                         int heads, int group, int d, float scale) {
  __shared__ float qs[ATT_MAXD], gs[ATT_MAXD], ds_sh[ATT_T];
  __shared__ double sh[ATT_T];
  const int i = blockIdx.x / heads, h = blockIdx.x % heads, tid = threadIdx.x;
  const size_t qo = ((size_t)i * heads + h) * d;
  const float *kb = k + (size_t)(h / group) * t * d, *vb = v + (size_t)(h / group) * t * d;
  for (int e = tid; e < d; e += ATT_T) {
    qs[e] = q[qo + e];
    gs[e] = dout[qo + e];
  }
  __syncthreads();
  const int n = i + 1;  // causal: keys 0..i
  float mx = -INFINITY, l = 0;
  for (int j = tid; j < n; j += ATT_T) {
    const float s = dot_row(qs, kb + (size_t)j * d, d) * scale;
    if (s > mx) {
      l = l * expf(mx - s) + 1.0f;
      mx = s;
    } else {
      l += expf(s - mx);
    }
  }
  const float row_max = (float)block_reduce((double)mx, sh, MaxOp());
  const double part = l > 0 ? (double)l * exp((double)mx - row_max) : 0.0;
  const float lse = (float)(row_max + log(block_reduce(part, sh, SumOp())));
  double dsum = 0;
  for (int j = tid; j < n; j += ATT_T) {
    const float p = expf(dot_row(qs, kb + (size_t)j * d, d) * scale - lse);
    dsum += (double)p * dot_row(gs, vb + (size_t)j * d, d);
  }
  const float D = (float)block_reduce(dsum, sh, SumOp());
  float acc0 = 0, acc1 = 0;  // dq at e = tid and e = tid + ATT_T
  for (int j0 = 0; j0 < n; j0 += ATT_T) {
    const int j = j0 + tid;
    float ds = 0;
    if (j < n) {
      const float p = expf(dot_row(qs, kb + (size_t)j * d, d) * scale - lse);
      ds = p * (dot_row(gs, vb + (size_t)j * d, d) - D) * scale;
    }
    ds_sh[tid] = ds;
    __syncthreads();
    const int cn = n - j0 < ATT_T ? n - j0 : ATT_T;
    for (int jj = 0; jj < cn; jj++) {
      const float* kr = kb + (size_t)(j0 + jj) * d;
      const float w = ds_sh[jj];
      if (tid < d) acc0 += w * kr[tid];
      if (tid + ATT_T < d) acc1 += w * kr[tid + ATT_T];
    }
    __syncthreads();
  }
  if (tid < d) dq[qo + tid] = acc0;
  if (tid + ATT_T < d) dq[qo + tid + ATT_T] = acc1;
  if (tid == 0) {
    stats[2 * ((size_t)i * heads + h)] = lse;
    stats[2 * ((size_t)i * heads + h) + 1] = D;
  }
}

__global__ void __launch_bounds__(ATT_T) attention_bwd_kv(const float* q, const float* k, const float* v,
                                                          const float* dout, const float* stats, float* dk,
                                                          float* dv, int t, int heads, int group, int d,
                                                          float scale) {
  __shared__ float ks[ATT_MAXD], vs[ATT_MAXD], p_sh[ATT_T], ds_sh[ATT_T];
  const int g = blockIdx.x / t, j = blockIdx.x % t, tid = threadIdx.x;
  const size_t ko = ((size_t)g * t + j) * d;
  for (int e = tid; e < d; e += ATT_T) {
    ks[e] = k[ko + e];
    vs[e] = v[ko + e];
  }
  __syncthreads();
  float dk0 = 0, dk1 = 0, dv0 = 0, dv1 = 0;  // at e = tid and e = tid + ATT_T
  for (int h = g * group; h < (g + 1) * group; h++) {
    for (int i0 = j; i0 < t; i0 += ATT_T) {  // causal: queries j..t-1
      const int i = i0 + tid;
      float p = 0, ds = 0;
      if (i < t) {
        const size_t qo = ((size_t)i * heads + h) * d, so = 2 * ((size_t)i * heads + h);
        p = expf(dot_row(q + qo, ks, d) * scale - stats[so]);
        ds = p * (dot_row(dout + qo, vs, d) - stats[so + 1]) * scale;
      }
      p_sh[tid] = p;
      ds_sh[tid] = ds;
      __syncthreads();
      const int cn = t - i0 < ATT_T ? t - i0 : ATT_T;
      for (int ii = 0; ii < cn; ii++) {
        const size_t qo = ((size_t)(i0 + ii) * heads + h) * d;
        const float pw = p_sh[ii], dw = ds_sh[ii];
        if (tid < d) {
          dk0 += dw * q[qo + tid];
          dv0 += pw * dout[qo + tid];
        }
        if (tid + ATT_T < d) {
          dk1 += dw * q[qo + tid + ATT_T];
          dv1 += pw * dout[qo + tid + ATT_T];
        }
      }
      __syncthreads();
    }
  }
  if (tid < d) {
    dk[ko + tid] = dk0;
    dv[ko + tid] = dv0;
  }
  if (tid + ATT_T < d) {
    dk[ko + tid + ATT_T] = dk1;
    dv[ko + tid + ATT_T] = dv1;
  }
}

}  // namespace

// ---------------------------------------------------------------- entry points
// C[m,n] = op(A)·op(B) + beta·C, row-major. cuBLAS is column-major: a row-major X[r,c] is the
// column-major Xᵀ, so Cᵀ = op(B)ᵀ·op(A)ᵀ is one column-major product of the buffers as they lie:
// B with op N when trans_b = 0 (ld n) and op T when trans_b = 1 (ld k), A likewise (ld k or m).
extern "C" int32_t lk_cuda_gemm_f32(int32_t ha, int32_t hb, int32_t hc, int32_t m, int32_t k, int32_t n,
                                    int32_t trans_a, int32_t trans_b, double beta) {
  const char* fn = "lk_cuda_gemm_f32";
  if (m < 0 || k < 0 || n < 0) return fail(LK_ESHAPE, "%s: dimensions must be >= 0, got m=%d k=%d n=%d", fn, m, k, n);
  if (trans_a != 0 && trans_a != 1) return fail(LK_EARG, "%s: trans_a is %d, expected 0 or 1", fn, trans_a);
  if (trans_b != 0 && trans_b != 1) return fail(LK_EARG, "%s: trans_b is %d, expected 0 or 1", fn, trans_b);
  if (beta != 0 && beta != 1) return fail(LK_EARG, "%s: beta is %g, expected 0 or 1", fn, beta);
  void *a, *b, *c;
  if (int32_t st = get(fn, "a", ha, DT_F32, (double)m * k, &a)) return st;
  if (int32_t st = get(fn, "b", hb, DT_F32, (double)k * n, &b)) return st;
  if (int32_t st = get(fn, "c", hc, DT_F32, (double)m * n, &c)) return st;
  if (int32_t st = need_blas(fn)) return st;
  if (m == 0 || n == 0) return LK_OK;
  if (k == 0) {  // an empty sum: C = beta·C
    if (beta == 0) CUDA_TRY(fn, cudaMemset(c, 0, sizeof(float) * (size_t)m * n));
    return LK_OK;
  }
  return blas_sgemm(fn, trans_b == 1, trans_a == 1, n, m, k, 1.0f, (const float*)b, trans_b ? k : n,
                    (const float*)a, trans_a ? m : k, (float)beta, (float*)c, n);
}

extern "C" int32_t lk_cuda_rmsnorm_f32(int32_t hx, int32_t hw, int32_t hy, int32_t hr, int32_t rows, int32_t cols,
                                       double eps) {
  const char* fn = "lk_cuda_rmsnorm_f32";
  if (rows < 0 || cols < 1) return fail(LK_ESHAPE, "%s: rows=%d cols=%d, expected rows >= 0, cols >= 1", fn, rows, cols);
  if (!(eps >= 0) || !std::isfinite(eps)) return fail(LK_EARG, "%s: eps=%g, expected a finite number >= 0", fn, eps);
  void *x, *w, *y, *r;
  if (int32_t st = get(fn, "x", hx, DT_F32, (double)rows * cols, &x)) return st;
  if (int32_t st = get(fn, "w", hw, DT_F32, cols, &w)) return st;
  if (int32_t st = get(fn, "y", hy, DT_F32, (double)rows * cols, &y)) return st;
  if (int32_t st = get(fn, "rstd", hr, DT_F32, rows, &r)) return st;
  if (rows == 0) return LK_OK;
  rmsnorm_rows<<<rows, row_threads(cols)>>>((const float*)x, (const float*)w, (float*)y, (float*)r, cols, eps);
  return launched(fn);
}

extern "C" int32_t lk_cuda_rmsnorm_bwd_f32(int32_t hdy, int32_t hx, int32_t hw, int32_t hr, int32_t hdx, int32_t hdw,
                                           int32_t rows, int32_t cols) {
  const char* fn = "lk_cuda_rmsnorm_bwd_f32";
  if (rows < 0 || cols < 1) return fail(LK_ESHAPE, "%s: rows=%d cols=%d, expected rows >= 0, cols >= 1", fn, rows, cols);
  void *dy, *x, *w, *r, *dx, *dw;
  if (int32_t st = get(fn, "dy", hdy, DT_F32, (double)rows * cols, &dy)) return st;
  if (int32_t st = get(fn, "x", hx, DT_F32, (double)rows * cols, &x)) return st;
  if (int32_t st = get(fn, "w", hw, DT_F32, cols, &w)) return st;
  if (int32_t st = get(fn, "rstd", hr, DT_F32, rows, &r)) return st;
  if (int32_t st = get(fn, "dx", hdx, DT_F32, (double)rows * cols, &dx)) return st;
  if (int32_t st = get(fn, "dw", hdw, DT_F32, cols, &dw)) return st;
  if (rows == 0) return LK_OK;
  rmsnorm_bwd_rows<<<rows, row_threads(cols)>>>((const float*)dy, (const float*)x, (const float*)w,
                                                (const float*)r, (float*)dx, cols);
  if (int32_t st = launched(fn)) return st;
  rmsnorm_dw<<<(cols + DW_COLS - 1) / DW_COLS, dim3(DW_COLS, DW_LANES)>>>((const float*)dy, (const float*)x,
                                                                          (const float*)r, (float*)dw, rows, cols);
  return launched(fn);
}

extern "C" int32_t lk_cuda_rope_f32(int32_t hx, int32_t hcos, int32_t hsin, int32_t t, int32_t heads, int32_t d,
                                    int32_t dir) {
  const char* fn = "lk_cuda_rope_f32";
  if (t < 0 || heads < 1 || d < 2 || d % 2)
    return fail(LK_ESHAPE, "%s: t=%d heads=%d d=%d, expected t >= 0, heads >= 1 and an even d >= 2", fn, t, heads, d);
  if (dir != 1 && dir != -1) return fail(LK_EARG, "%s: dir is %d, expected 1 or -1", fn, dir);
  void *x, *c, *s;
  if (int32_t st = get(fn, "x", hx, DT_F32, (double)t * heads * d, &x)) return st;
  if (int32_t st = get(fn, "cos", hcos, DT_F32, (double)t * (d / 2), &c)) return st;
  if (int32_t st = get(fn, "sin", hsin, DT_F32, (double)t * (d / 2), &s)) return st;
  if (t == 0) return LK_OK;
  rope_rows<<<blocks_for((size_t)t * heads * (d / 2), 256), 256>>>((float*)x, (const float*)c, (const float*)s, t,
                                                                    heads, d, (float)dir);
  return launched(fn);
}

extern "C" int32_t lk_cuda_attention_bwd_f32(int32_t hq, int32_t hk, int32_t hv, int32_t hdout, int32_t hdq,
                                             int32_t hdk, int32_t hdv, int32_t t, int32_t heads, int32_t kv_heads,
                                             int32_t d) {
  const char* fn = "lk_cuda_attention_bwd_f32";
  if (t < 0 || heads < 1 || kv_heads < 1 || d < 1 || heads % kv_heads)
    return fail(LK_ESHAPE, "%s: t=%d heads=%d kv_heads=%d d=%d, expected t >= 0, d >= 1 and kv_heads dividing heads",
                fn, t, heads, kv_heads, d);
  if (d > ATT_MAXD) return fail(LK_EARG, "%s: head width d=%d, expected at most %d on cuda", fn, d, ATT_MAXD);
  const double nq = (double)t * heads * d, nkv = (double)kv_heads * t * d;
  void *q, *k, *v, *dout, *dq, *dk, *dv;
  if (int32_t st = get(fn, "q", hq, DT_F32, nq, &q)) return st;
  if (int32_t st = get(fn, "k", hk, DT_F32, nkv, &k)) return st;
  if (int32_t st = get(fn, "v", hv, DT_F32, nkv, &v)) return st;
  if (int32_t st = get(fn, "dout", hdout, DT_F32, nq, &dout)) return st;
  if (int32_t st = get(fn, "dq", hdq, DT_F32, nq, &dq)) return st;
  if (int32_t st = get(fn, "dk", hdk, DT_F32, nkv, &dk)) return st;
  if (int32_t st = get(fn, "dv", hdv, DT_F32, nkv, &dv)) return st;
  if (t == 0) return LK_OK;
  if ((double)t * heads > 2147483647.0 || (double)t * kv_heads > 2147483647.0)
    return fail(LK_ESHAPE, "%s: t·heads = %.0f blocks, expected at most 2^31 - 1", fn, (double)t * heads);
  std::lock_guard<std::mutex> g(scratch_mu);
  if (!scratch.want(sizeof(float) * 2 * (size_t)t * heads))
    return fail(LK_ENOMEM, "%s: cannot allocate the softmax statistics of %d×%d rows", fn, t, heads);
  float* stats = (float*)scratch.p;
  const int group = heads / kv_heads;
  const float scale = (float)(1.0 / sqrt((double)d));
  attention_bwd_q<<<t * heads, ATT_T>>>((const float*)q, (const float*)k, (const float*)v, (const float*)dout,
                                        (float*)dq, stats, t, heads, group, d, scale);
  if (int32_t st = launched(fn)) return st;
  attention_bwd_kv<<<t * kv_heads, ATT_T>>>((const float*)q, (const float*)k, (const float*)v, (const float*)dout,
                                            stats, (float*)dk, (float*)dv, t, heads, group, d, scale);
  if (int32_t st = launched(fn)) return st;
  CUDA_TRY(fn, cudaDeviceSynchronize());  // the scratch is free for the next call
  return LK_OK;
}

extern "C" int32_t lk_cuda_swiglu_bwd_f32(int32_t hgate, int32_t hup, int32_t hdout, int32_t hdgate, int32_t hdup,
                                          double n) {
  const char* fn = "lk_cuda_swiglu_bwd_f32";
  if (!is_count(n)) return fail(LK_ESHAPE, "%s: n=%g, expected an integer >= 0", fn, n);
  void *gate, *up, *dout, *dgate, *dup;
  if (int32_t st = get(fn, "gate", hgate, DT_F32, n, &gate)) return st;
  if (int32_t st = get(fn, "up", hup, DT_F32, n, &up)) return st;
  if (int32_t st = get(fn, "dout", hdout, DT_F32, n, &dout)) return st;
  if (int32_t st = get(fn, "dgate", hdgate, DT_F32, n, &dgate)) return st;
  if (int32_t st = get(fn, "dup", hdup, DT_F32, n, &dup)) return st;
  if (n == 0) return LK_OK;
  swiglu_bwd<<<blocks_for((size_t)n, 256), 256>>>((const float*)gate, (const float*)up, (const float*)dout,
                                                   (float*)dgate, (float*)dup, (size_t)n);
  return launched(fn);
}

extern "C" int32_t lk_cuda_embedding_bwd_f32(int32_t hids, int32_t hdh, int32_t hdt, int32_t t, int32_t vocab,
                                             int32_t d) {
  const char* fn = "lk_cuda_embedding_bwd_f32";
  if (t < 0 || vocab < 0 || d < 1)
    return fail(LK_ESHAPE, "%s: t=%d vocab=%d d=%d, expected t, vocab >= 0 and d >= 1", fn, t, vocab, d);
  void *ids, *dh, *dt;
  if (int32_t st = get(fn, "ids", hids, DT_I32, t, &ids)) return st;
  if (int32_t st = get(fn, "dh", hdh, DT_F32, (double)t * d, &dh)) return st;
  if (int32_t st = get(fn, "dtable", hdt, DT_F32, (double)vocab * d, &dt)) return st;
  if (t == 0) return LK_OK;
  std::lock_guard<std::mutex> g(scratch_mu);
  if (!scratch.want(sizeof(int))) return fail(LK_ENOMEM, "%s: cannot allocate a flag", fn);
  int* bad = (int*)scratch.p;
  int hb = t;  // no row
  CUDA_TRY(fn, cudaMemcpy(bad, &hb, sizeof hb, cudaMemcpyHostToDevice));
  find_bad_id<<<blocks_for((size_t)t, 256), 256>>>((const int*)ids, t, vocab, bad);
  if (int32_t st = launched(fn)) return st;
  CUDA_TRY(fn, cudaMemcpy(&hb, bad, sizeof hb, cudaMemcpyDeviceToHost));
  if (hb < t) {
    int id = 0;
    CUDA_TRY(fn, cudaMemcpy(&id, (const int*)ids + hb, sizeof id, cudaMemcpyDeviceToHost));
    return fail(LK_EARG, "%s: token id %d at row %d is outside the vocabulary [0, %d)", fn, id, hb, vocab);
  }
  embedding_scatter<<<blocks_for((size_t)t * d, 256), 256>>>((const int*)ids, (const float*)dh, (float*)dt, t, d);
  return launched(fn);
}

extern "C" int32_t lk_cuda_cross_entropy_f32(int32_t hl, int32_t ht, int32_t hloss, int32_t hdl, int32_t rows,
                                             int32_t vocab, double scale) {
  const char* fn = "lk_cuda_cross_entropy_f32";
  if (rows < 0 || vocab < 1) return fail(LK_ESHAPE, "%s: rows=%d vocab=%d, expected rows >= 0, vocab >= 1", fn, rows, vocab);
  if (!std::isfinite(scale)) return fail(LK_EARG, "%s: scale=%g, expected a finite number", fn, scale);
  void *logits, *targets, *loss, *dl;
  if (int32_t st = get(fn, "logits", hl, DT_F32, (double)rows * vocab, &logits)) return st;
  if (int32_t st = get(fn, "targets", ht, DT_I32, rows, &targets)) return st;
  if (int32_t st = get(fn, "loss", hloss, DT_F32, rows, &loss)) return st;
  if (int32_t st = get(fn, "dlogits", hdl, DT_F32, (double)rows * vocab, &dl)) return st;
  if (rows == 0) return LK_OK;
  std::lock_guard<std::mutex> g(scratch_mu);
  if (!scratch.want(sizeof(CeFlags))) return fail(LK_ENOMEM, "%s: cannot allocate the row flags", fn);
  CeFlags* flags = (CeFlags*)scratch.p;
  CeFlags hf{rows, ~0ull};
  CUDA_TRY(fn, cudaMemcpy(flags, &hf, sizeof hf, cudaMemcpyHostToDevice));
  cross_entropy_rows<<<rows, row_threads(vocab)>>>((const float*)logits, (const int*)targets, (float*)loss,
                                                   (float*)dl, vocab, (float)scale, flags);
  if (int32_t st = launched(fn)) return st;
  CUDA_TRY(fn, cudaMemcpy(&hf, flags, sizeof hf, cudaMemcpyDeviceToHost));
  if (hf.bad_target < rows) {
    int tg = 0;
    CUDA_TRY(fn, cudaMemcpy(&tg, (const int*)targets + hf.bad_target, sizeof tg, cudaMemcpyDeviceToHost));
    return fail(LK_EARG, "%s: target %d of row %d is outside the vocabulary [0, %d) and is not -1", fn, tg,
                hf.bad_target, vocab);
  }
  if (hf.bad_logit != ~0ull) {
    float val = 0;
    CUDA_TRY(fn, cudaMemcpy(&val, (const float*)logits + hf.bad_logit, sizeof val, cudaMemcpyDeviceToHost));
    return fail(LK_ENUMERICAL, "%s: logit %llu of row %llu is %s: expected a finite number", fn,
                hf.bad_logit % (unsigned)vocab, hf.bad_logit / (unsigned)vocab,
                std::isnan(val) ? "NaN" : val > 0 ? "Infinity" : "-Infinity");
  }
  return LK_OK;
}

extern "C" int32_t lk_cuda_adamw_f32(int32_t hp, int32_t hg, int32_t hm, int32_t hv, double n, double lr, double b1,
                                     double b2, double eps, double wd, double bc1, double bc2) {
  const char* fn = "lk_cuda_adamw_f32";
  if (!is_count(n)) return fail(LK_ESHAPE, "%s: n=%g, expected an integer >= 0", fn, n);
  const double hyper[] = {lr, b1, b2, eps, wd};
  const char* names[] = {"lr", "b1", "b2", "eps", "wd"};
  for (int i = 0; i < 5; i++)
    if (!(hyper[i] >= 0) || !std::isfinite(hyper[i]))
      return fail(LK_EARG, "%s: %s=%g, expected a finite number >= 0", fn, names[i], hyper[i]);
  if (!(bc1 > 0 && bc1 <= 1) || !(bc2 > 0 && bc2 <= 1))
    return fail(LK_EARG, "%s: bc1=%g bc2=%g, expected bias corrections in (0, 1]", fn, bc1, bc2);
  void *p, *g, *m, *v;
  if (int32_t st = get(fn, "p", hp, DT_F32, n, &p)) return st;
  if (int32_t st = get(fn, "g", hg, DT_F32, n, &g)) return st;
  if (int32_t st = get(fn, "m", hm, DT_F32, n, &m)) return st;
  if (int32_t st = get(fn, "v", hv, DT_F32, n, &v)) return st;
  if (n == 0) return LK_OK;
  const AdamArgs a{(float)b1,       (float)(1 - b1),    (float)b2,        (float)(1 - b2),
                   (float)eps,      (float)(1 - lr * wd), (float)(lr / bc1), (float)sqrt(bc2)};
  adamw_step<<<blocks_for((size_t)n, 256), 256>>>((float*)p, (const float*)g, (float*)m, (float*)v, (size_t)n, a);
  return launched(fn);
}
