// lmkit CUDA library: device buffers behind int32 handles, and the kernels of lmkit.h.
// cuBLAS and cuSOLVER are loaded at run time (dlopen) with the few prototypes declared here, so
// the library builds with nvcc alone; cudart is linked statically.
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <library_types.h>
#include <dlfcn.h>
#include <cub/block/block_reduce.cuh>
#include <cub/block/block_scan.cuh>
#include <cub/device/device_radix_sort.cuh>

#include <chrono>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <deque>
#include <vector>

#include "internal.cuh"

// ---------------------------------------------------------------- errors, info
static thread_local char err_msg[512];

int32_t fail(int32_t code, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err_msg, sizeof err_msg, fmt, ap);
  va_end(ap);
  return code;
}

extern "C" int32_t lk_abi_version(int32_t* out, double out_len) {
  if (!(out_len >= 1)) return fail(LK_ESHAPE, "lk_abi_version: out holds %.0f elements, expected 1", out_len);
  out[0] = LK_ABI_VERSION;
  return LK_OK;
}

extern "C" int32_t lk_last_error(char* buf, int32_t cap) {
  if (cap <= 0) return LK_EARG;
  snprintf(buf, (size_t)cap, "%s", err_msg);
  return LK_OK;
}

// ---------------------------------------------------------------- cuBLAS / cuSOLVER loader
typedef void* cublasHandle_t;
typedef void* cusolverDnHandle_t;
enum { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1 };
enum { CUBLAS_FILL_LOWER = 0, CUBLAS_FILL_UPPER = 1 };
enum { CUBLAS_SIDE_LEFT = 0 };
enum { CUBLAS_DIAG_NON_UNIT = 0 };

struct Blas {
  int (*create)(cublasHandle_t*);
  int (*sgemm)(cublasHandle_t, int, int, int, int, int, const float*, const float*, int,
               const float*, int, const float*, float*, int);
  int (*ssyrk)(cublasHandle_t, int, int, int, int, const float*, const float*, int, const float*,
               float*, int);
  int (*dsyrk)(cublasHandle_t, int, int, int, int, const double*, const double*, int,
               const double*, double*, int);
  int (*dgemm)(cublasHandle_t, int, int, int, int, int, const double*, const double*, int,
               const double*, int, const double*, double*, int);
  int (*gemm_ex)(cublasHandle_t, int, int, int, int, int, const void*, const void*, int, int,
                 const void*, int, int, const void*, void*, int, int, int, int);
  int (*dtrsm)(cublasHandle_t, int, int, int, int, int, int, const double*, const double*, int,
               double*, int);
  int (*sol_create)(cusolverDnHandle_t*);
  int (*potrf_size)(cusolverDnHandle_t, int, int, double*, int, int*);
  int (*potrf)(cusolverDnHandle_t, int, int, double*, int, double*, int, int*);
  cublasHandle_t h = nullptr;
  cusolverDnHandle_t sh = nullptr;
  char blas_name[48] = "", solver_name[48] = "";
};
static Blas B;
static std::once_flag blas_once;
static std::mutex table_mu;

static void* open_first(const char* const* names, char* found, size_t cap) {
  for (int i = 0; names[i]; i++) {
    void* h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
    if (h) {
      snprintf(found, cap, "%s", names[i]);
      return h;
    }
  }
  return nullptr;
}

static void load_blas() {
  static const char* blas_names[] = {"libcublas.so.13", "libcublas.so.12", "libcublas.so", nullptr};
  static const char* solver_names[] = {"libcusolver.so.12", "libcusolver.so.11",
                                       "libcusolver.so.13", "libcusolver.so", nullptr};
  if (void* h = open_first(blas_names, B.blas_name, sizeof B.blas_name)) {
    *(void**)&B.create = dlsym(h, "cublasCreate_v2");
    *(void**)&B.sgemm = dlsym(h, "cublasSgemm_v2");
    *(void**)&B.ssyrk = dlsym(h, "cublasSsyrk_v2");
    *(void**)&B.dsyrk = dlsym(h, "cublasDsyrk_v2");
    *(void**)&B.dtrsm = dlsym(h, "cublasDtrsm_v2");
    *(void**)&B.dgemm = dlsym(h, "cublasDgemm_v2");
    *(void**)&B.gemm_ex = dlsym(h, "cublasGemmEx");
    if (!(B.create && B.sgemm && B.ssyrk && B.dsyrk && B.dtrsm && B.dgemm && B.gemm_ex) || B.create(&B.h) != 0) B.h = nullptr;
  }
  if (void* h = open_first(solver_names, B.solver_name, sizeof B.solver_name)) {
    *(void**)&B.sol_create = dlsym(h, "cusolverDnCreate");
    *(void**)&B.potrf_size = dlsym(h, "cusolverDnDpotrf_bufferSize");
    *(void**)&B.potrf = dlsym(h, "cusolverDnDpotrf");
    if (!(B.sol_create && B.potrf_size && B.potrf) || B.sol_create(&B.sh) != 0) B.sh = nullptr;
  }
}

int32_t need_blas(const char* fn) {
  std::call_once(blas_once, load_blas);
  if (!B.h) return fail(LK_EBACKEND, "%s: cuBLAS (libcublas.so.13 or .12) could not be loaded; add its folder to LD_LIBRARY_PATH", fn);
  return LK_OK;
}

static int32_t need_solver(const char* fn) {
  if (int32_t st = need_blas(fn)) return st;
  if (!B.sh) return fail(LK_EBACKEND, "%s: cuSOLVER (libcusolver.so.12) could not be loaded; add its folder to LD_LIBRARY_PATH", fn);
  return LK_OK;
}

int32_t blas_sgemm(const char* fn, bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a,
                   int lda, const float* b, int ldb, float beta, float* c, int ldc) {
  if (int32_t st = need_blas(fn)) return st;
  int st = B.sgemm(B.h, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, m, n, k, &alpha, a,
                   lda, b, ldb, &beta, c, ldc);
  if (st) return fail(LK_EBACKEND, "%s: cublasSgemm failed with status %d", fn, st);
  return LK_OK;
}

extern "C" int32_t lk_cuda_device_count(int32_t* out, double out_len) {
  if (!(out_len >= 1)) return fail(LK_ESHAPE, "lk_cuda_device_count: out holds %.0f elements, expected 1", out_len);
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) n = 0;
  cudaGetLastError();
  out[0] = n;
  return LK_OK;
}

extern "C" int32_t lk_info(char* buf, int32_t cap) {
  if (cap <= 0) return LK_EARG;
  std::call_once(blas_once, load_blas);
  int n = 0;
  cudaDeviceProp p{};
  if (cudaGetDeviceCount(&n) != cudaSuccess) n = 0;
  if (n > 0) cudaGetDeviceProperties(&p, 0);
  cudaGetLastError();
  snprintf(buf, (size_t)cap,
           "{\"backend\":\"cuda\",\"abi\":%d,\"devices\":%d,\"device\":\"%s\",\"sm\":\"%d.%d\","
           "\"multiprocessors\":%d,\"memoryGiB\":%.1f,\"cublas\":\"%s\",\"cusolver\":\"%s\"}",
           LK_ABI_VERSION, n, n ? p.name : "", p.major, p.minor, p.multiProcessorCount,
           p.totalGlobalMem / 1073741824.0, B.h ? B.blas_name : "", B.sh ? B.solver_name : "");
  return LK_OK;
}

// ---------------------------------------------------------------- handle table
struct Buf {
  void* ptr;
  size_t len;
  int32_t dtype;
};
// a deque: push_back keeps existing elements in place, so a Buf* that lookup() handed to a
// worker thread (a non-blocking NCCL call) stays valid while the JS thread allocates
static std::deque<Buf> table;  // handle h ↔ table[h - 1]
static const size_t esize[] = {4, 8, 4, 1, 2};
static const char* dname[] = {"f32", "f64", "i32", "u8", "bf16"};

static Buf* lookup(int32_t h) {
  std::lock_guard<std::mutex> g(table_mu);
  if (h < 1 || (size_t)h > table.size() || !table[h - 1].ptr) return nullptr;
  return &table[h - 1];
}

// Looks up handle `h`, expecting `dtype` and at least `need` elements.
int32_t get(const char* fn, const char* what, int32_t h, int32_t dtype, double need, void** out) {
  Buf* b = lookup(h);
  if (!b) return fail(LK_EHANDLE, "%s: %s is handle %d, which is not a live device buffer", fn, what, h);
  if (b->dtype != dtype)
    return fail(LK_ESHAPE, "%s: %s holds %s, expected %s", fn, what, dname[b->dtype], dname[dtype]);
  if ((double)b->len < need)
    return fail(LK_ESHAPE, "%s: buffer %s holds %zu elements, expected at least %.0f", fn, what, b->len, need);
  *out = b->ptr;
  return LK_OK;
}

extern "C" int32_t lk_cuda_alloc(int32_t dtype, double len, int32_t* handle_out, double handle_len) {
  const char* fn = "lk_cuda_alloc";
  if (dtype < 0 || dtype > 4) return fail(LK_EARG, "%s: dtype %d, expected 0..4", fn, dtype);
  if (!(len >= 0) || len != floor(len)) return fail(LK_EARG, "%s: length %g, expected an integer >= 0", fn, len);
  if (!(handle_len >= 1)) return fail(LK_ESHAPE, "%s: handle_out holds %.0f elements, expected 1", fn, handle_len);
  void* p = nullptr;
  size_t bytes = (size_t)len * esize[dtype];
  CUDA_TRY(fn, cudaMalloc(&p, bytes ? bytes : 1));
  std::lock_guard<std::mutex> g(table_mu);
  table.push_back({p, (size_t)len, dtype});
  handle_out[0] = (int32_t)table.size();
  return LK_OK;
}

extern "C" int32_t lk_cuda_free(int32_t h) {
  Buf* b = lookup(h);
  if (!b) return fail(LK_EHANDLE, "lk_cuda_free: handle %d is not a live device buffer", h);
  CUDA_TRY("lk_cuda_free", cudaFree(b->ptr));
  std::lock_guard<std::mutex> g(table_mu);
  b->ptr = nullptr;
  return LK_OK;
}

static int32_t copy(const char* fn, int32_t h, void* host, double bytes, bool up) {
  Buf* b = lookup(h);
  if (!b) return fail(LK_EHANDLE, "%s: handle %d is not a live device buffer", fn, h);
  if (bytes != (double)(b->len * esize[b->dtype]))
    return fail(LK_ESHAPE, "%s: %.0f bytes given, buffer %d holds %zu", fn, bytes, h, b->len * esize[b->dtype]);
  if (up) CUDA_TRY(fn, cudaMemcpy(b->ptr, host, (size_t)bytes, cudaMemcpyHostToDevice));
  else CUDA_TRY(fn, cudaMemcpy(host, b->ptr, (size_t)bytes, cudaMemcpyDeviceToHost));
  return LK_OK;
}

extern "C" int32_t lk_cuda_upload(int32_t h, const void* host, double bytes) {
  return copy("lk_cuda_upload", h, (void*)host, bytes, true);
}
extern "C" int32_t lk_cuda_download(int32_t h, void* host, double bytes) {
  return copy("lk_cuda_download", h, host, bytes, false);
}

extern "C" int32_t lk_cuda_sync(double* ms_out, double ms_len) {
  static auto last = std::chrono::steady_clock::now();
  if (!(ms_len >= 1)) return fail(LK_ESHAPE, "lk_cuda_sync: ms_out holds %.0f elements, expected 1", ms_len);
  CUDA_TRY("lk_cuda_sync", cudaDeviceSynchronize());
  auto now = std::chrono::steady_clock::now();
  ms_out[0] = std::chrono::duration<double, std::milli>(now - last).count();
  last = now;
  return LK_OK;
}

int32_t launched(const char* fn) {
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) return fail(LK_EBACKEND, "%s: kernel launch failed: %s", fn, cudaGetErrorString(e));
  return LK_OK;
}

int blocks_for(size_t n, int threads) {
  size_t b = (n + threads - 1) / threads;
  return (int)(b > 65535 * 16 ? 65535 * 16 : (b ? b : 1));
}

// ---------------------------------------------------------------- matmul, Gram
extern "C" int32_t lk_cuda_matmul_f32(int32_t ha, int32_t hb, int32_t hc, int32_t m, int32_t k,
                                      int32_t n, int32_t trans_b) {
  const char* fn = "lk_cuda_matmul_f32";
  if (m < 0 || k < 0 || n < 0) return fail(LK_ESHAPE, "%s: dimensions must be >= 0, got m=%d k=%d n=%d", fn, m, k, n);
  if (trans_b != 0 && trans_b != 1) return fail(LK_EARG, "%s: trans_b is %d, expected 0 or 1", fn, trans_b);
  void *a, *b, *c;
  if (int32_t st = get(fn, "a", ha, 0, (double)m * k, &a)) return st;
  if (int32_t st = get(fn, "b", hb, 0, (double)k * n, &b)) return st;
  if (int32_t st = get(fn, "c", hc, 0, (double)m * n, &c)) return st;
  if (int32_t st = need_blas(fn)) return st;
  if (m == 0 || n == 0) return LK_OK;
  if (k == 0) {
    CUDA_TRY(fn, cudaMemset(c, 0, sizeof(float) * (size_t)m * n));
    return LK_OK;
  }
  const float one = 1, zero = 0;
  // row-major C = A·op(B)  ⇔  column-major Cᵀ = op(B)ᵀ·Aᵀ
  int st = B.sgemm(B.h, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, CUBLAS_OP_N, n, m, k, &one,
                   (const float*)b, trans_b ? k : n, (const float*)a, k, &zero, (float*)c, n);
  if (st) return fail(LK_EBACKEND, "%s: cublasSgemm failed with status %d", fn, st);
  return LK_OK;
}

template <typename T>
__global__ void mirror_lower_cm(T* h, int n) {  // column-major lower → full symmetric
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (size_t)n * n;
       i += (size_t)gridDim.x * blockDim.x) {
    int r = (int)(i % n), c = (int)(i / n);
    if (r < c) h[i] = h[(size_t)r * n + c];
  }
}

__global__ void f32_to_f64(const float* x, double* y, size_t n) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
    y[i] = x[i];
}

static int32_t gram(const char* fn, int32_t hx, int32_t rows, int32_t n, int32_t hh, double alpha,
                    double beta, bool f64) {
  if (rows < 0 || n < 0) return fail(LK_ESHAPE, "%s: rows=%d n=%d, expected >= 0", fn, rows, n);
  if (!std::isfinite(alpha) || !std::isfinite(beta))
    return fail(LK_EARG, "%s: alpha=%g beta=%g, expected finite numbers", fn, alpha, beta);
  void *x, *h;
  if (int32_t st = get(fn, "x", hx, 0, (double)rows * n, &x)) return st;
  if (int32_t st = get(fn, "h", hh, f64 ? 1 : 0, (double)n * n, &h)) return st;
  if (int32_t st = need_blas(fn)) return st;
  if (n == 0) return LK_OK;
  // X row-major rows×n is column-major n×rows (= Xᵀ); XᵀX = Xcm·Xcmᵀ → syrk with op N
  int st;
  if (f64) {
    double* xd = nullptr;
    size_t len = (size_t)rows * n;
    CUDA_TRY(fn, cudaMalloc(&xd, sizeof(double) * (len ? len : 1)));
    f32_to_f64<<<blocks_for(len, 256), 256>>>((const float*)x, xd, len);
    st = B.dsyrk(B.h, CUBLAS_FILL_LOWER, CUBLAS_OP_N, n, rows, &alpha, xd, n, &beta, (double*)h, n);
    cudaFree(xd);
    if (!st) mirror_lower_cm<double><<<blocks_for((size_t)n * n, 256), 256>>>((double*)h, n);
  } else {
    float a = (float)alpha, b = (float)beta;
    st = B.ssyrk(B.h, CUBLAS_FILL_LOWER, CUBLAS_OP_N, n, rows, &a, (const float*)x, n, &b, (float*)h, n);
    if (!st) mirror_lower_cm<float><<<blocks_for((size_t)n * n, 256), 256>>>((float*)h, n);
  }
  if (st) return fail(LK_EBACKEND, "%s: cuBLAS syrk failed with status %d", fn, st);
  return launched(fn);
}

extern "C" int32_t lk_cuda_gram_f32(int32_t x, int32_t rows, int32_t n, int32_t h, double alpha, double beta) {
  return gram("lk_cuda_gram_f32", x, rows, n, h, alpha, beta, false);
}
extern "C" int32_t lk_cuda_gram_f64(int32_t x, int32_t rows, int32_t n, int32_t h, double alpha, double beta) {
  return gram("lk_cuda_gram_f64", x, rows, n, h, alpha, beta, true);
}

// ---------------------------------------------------------------- OBS preparation
// Same algorithm as ffi/cpu/obs.c: reverse (J·H·J), Cholesky, triangular inverse, reverse.
__global__ void obs_scan(double* h, int n, unsigned long long* bad, double* diag_sum, int* dead) {
  size_t len = (size_t)n * n;
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < len; i += (size_t)gridDim.x * blockDim.x) {
    double v = h[i];
    if (!isfinite(v)) atomicMin(bad, (unsigned long long)i);
    if (i % (n + 1) == 0) {
      if (v == 0) {
        h[i] = v = 1;
        atomicAdd(dead, 1);
      }
      atomicAdd(diag_sum, v);
    }
  }
}

// work[i] = h[len-1-i] (+ λ on the diagonal): J·(H + λI)·J, row-major = column-major (symmetric)
__global__ void reverse_damp(const double* h, double* work, int n, double lambda) {
  size_t len = (size_t)n * n;
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < len; i += (size_t)gridDim.x * blockDim.x)
    work[i] = h[len - 1 - i] + (i % (n + 1) == 0 ? lambda : 0.0);
}

__global__ void identity(double* a, int n) {
  size_t len = (size_t)n * n;
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < len; i += (size_t)gridDim.x * blockDim.x)
    a[i] = i % (n + 1) == 0 ? 1.0 : 0.0;
}

// out = reverse of x, with the strict lower triangle (row-major) set to 0
__global__ void reverse_upper(const double* x, double* out, int n) {
  size_t len = (size_t)n * n;
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < len; i += (size_t)gridDim.x * blockDim.x) {
    size_t r = i / n, c = i % n;
    out[i] = c >= r ? x[len - 1 - i] : 0.0;
  }
}

extern "C" int32_t lk_cuda_obs_prepare_f64(int32_t hh, int32_t n, double percdamp, int32_t max_tries,
                                           double* info_out, double info_len) {
  const char* fn = "lk_cuda_obs_prepare_f64";
  if (n < 1) return fail(LK_ESHAPE, "%s: n=%d, expected >= 1", fn, n);
  if (!(info_len >= 2)) return fail(LK_ESHAPE, "%s: buffer info holds %.0f elements, expected at least 2", fn, info_len);
  if (!(percdamp >= 0) || !std::isfinite(percdamp))
    return fail(LK_EARG, "%s: percdamp=%g, expected a finite number >= 0", fn, percdamp);
  if (max_tries < 1) return fail(LK_EARG, "%s: max_tries=%d, expected >= 1", fn, max_tries);
  void* hv;
  if (int32_t st = get(fn, "h", hh, 1, (double)n * n, &hv)) return st;
  if (int32_t st = need_solver(fn)) return st;
  double* h = (double*)hv;
  size_t len = (size_t)n * n;
  struct Scratch {
    unsigned long long bad;
    double sum;
    int dead;
    int info;
  };
  Scratch* s = nullptr;
  double *work = nullptr, *inv = nullptr, *ws = nullptr;
  int32_t status = LK_OK;
  int lwork = 0;
  Scratch hs{~0ull, 0, 0, 0};
  char tried[200] = "";
  size_t used = 0;
  double damp = percdamp, mean = 0;
  auto done = [&](int32_t st) {
    cudaFree(s);
    cudaFree(work);
    cudaFree(inv);
    cudaFree(ws);
    return st;
  };
  if (cudaMalloc(&s, sizeof(Scratch)) || cudaMalloc(&work, len * 8) || cudaMalloc(&inv, len * 8))
    return done(fail(LK_ENOMEM, "%s: cannot allocate two %d×%d f64 work matrices", fn, n, n));
  cudaMemcpy(s, &hs, sizeof hs, cudaMemcpyHostToDevice);
  obs_scan<<<blocks_for(len, 256), 256>>>(h, n, &s->bad, &s->sum, &s->dead);
  if ((status = launched(fn))) return done(status);
  cudaMemcpy(&hs, s, sizeof hs, cudaMemcpyDeviceToHost);
  if (hs.bad != ~0ull) {
    double v;
    cudaMemcpy(&v, h + hs.bad, sizeof v, cudaMemcpyDeviceToHost);
    return done(fail(LK_ENUMERICAL, "%s: H[%llu,%llu] is %s: expected a finite number", fn, hs.bad / n,
                     hs.bad % n, std::isnan(v) ? "NaN" : v > 0 ? "Infinity" : "-Infinity"));
  }
  mean = hs.sum / n;
  if (B.potrf_size(B.sh, CUBLAS_FILL_UPPER, n, work, n, &lwork) != 0)
    return done(fail(LK_EBACKEND, "%s: cusolverDnDpotrf_bufferSize failed", fn));
  if (cudaMalloc(&ws, sizeof(double) * (size_t)(lwork > 0 ? lwork : 1)))
    return done(fail(LK_ENOMEM, "%s: cannot allocate the Cholesky workspace", fn));
  for (int t = 0; t < max_tries; t++, damp *= 10) {
    reverse_damp<<<blocks_for(len, 256), 256>>>(h, work, n, damp * mean);
    if ((status = launched(fn))) return done(status);
    // row-major lower L (J·H·J = L·Lᵀ) is column-major upper R = Lᵀ
    if (B.potrf(B.sh, CUBLAS_FILL_UPPER, n, work, n, ws, lwork, &s->info) != 0)
      return done(fail(LK_EBACKEND, "%s: cusolverDnDpotrf failed", fn));
    int info = 0;
    CUDA_TRY(fn, cudaMemcpy(&info, &s->info, sizeof info, cudaMemcpyDeviceToHost));
    if (info == 0) {
      // column-major R·X = I → X = R⁻¹ (upper, column-major) = L⁻¹ (lower, row-major)
      identity<<<blocks_for(len, 256), 256>>>(inv, n);
      const double one = 1;
      if (B.dtrsm(B.h, CUBLAS_SIDE_LEFT, CUBLAS_FILL_UPPER, CUBLAS_OP_N, CUBLAS_DIAG_NON_UNIT, n, n, &one,
                  work, n, inv, n) != 0)
        return done(fail(LK_EBACKEND, "%s: cublasDtrsm failed", fn));
      reverse_upper<<<blocks_for(len, 256), 256>>>(inv, h, n);
      if ((status = launched(fn))) return done(status);
      CUDA_TRY(fn, cudaDeviceSynchronize());
      info_out[0] = damp;
      info_out[1] = hs.dead;
      return done(LK_OK);
    }
    if (used < sizeof tried) used += (size_t)snprintf(tried + used, sizeof tried - used, "%s%g", t ? ", " : "", damp);
  }
  return done(fail(LK_ENUMERICAL, "%s: H + λI is not positive definite for percdamp %s (λ = percdamp·%g)", fn,
                   tried, mean));
}

// ---------------------------------------------------------------- top-k and threshold
__device__ __forceinline__ unsigned key_bits(float v, int by_abs) {
  if (v == 0.0f) v = 0.0f;  // -0 → +0: equal keys, as on the CPU
  unsigned u = __float_as_uint(by_abs ? fabsf(v) : v);
  if (by_abs) return u;
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}
__device__ __forceinline__ float key_value(float v, int by_abs) {
  float k = by_abs ? fabsf(v) : v;
  return k + 0.0f;
}

__global__ void find_nan(const float* x, size_t len, unsigned long long* bad) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < len; i += (size_t)gridDim.x * blockDim.x)
    if (isnan(x[i])) atomicMin(bad, (unsigned long long)i);
}

constexpr int TOPK_THREADS = 512;

// One block per row: 4-pass radix select of the k-th largest key, then an ordered compaction
// that takes every key above it and the lowest-indexed ties.
__global__ void __launch_bounds__(TOPK_THREADS) topk_rows(const float* x, int cols, int k, int by_abs,
                                                          int* idx, float* val, float* thr) {
  typedef cub::BlockScan<int, TOPK_THREADS> Scan;
  __shared__ typename Scan::TempStorage scan_tmp;
  __shared__ unsigned hist[256];
  __shared__ unsigned s_prefix, s_mask;
  __shared__ int s_remaining, s_ties_before, s_out_before;
  const float* xr = x + (size_t)blockIdx.x * cols;
  if (threadIdx.x == 0) {
    s_prefix = 0;
    s_mask = 0;
    s_remaining = k;
  }
  for (int shift = 24; shift >= 0; shift -= 8) {
    for (int i = threadIdx.x; i < 256; i += blockDim.x) hist[i] = 0;
    __syncthreads();
    unsigned prefix = s_prefix, mask = s_mask;
    for (int j = threadIdx.x; j < cols; j += blockDim.x) {
      unsigned u = key_bits(xr[j], by_abs);
      if ((u & mask) == prefix) atomicAdd(&hist[(u >> shift) & 255u], 1u);
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      int rem = s_remaining;
      for (int d = 255; d >= 0; d--) {
        int c = (int)hist[d];
        if (c >= rem) {
          s_prefix = prefix | ((unsigned)d << shift);
          s_mask = mask | (255u << shift);
          break;
        }
        rem -= c;
      }
      s_remaining = rem;
    }
    __syncthreads();
  }
  const unsigned t = s_prefix;  // the k-th largest key; take s_remaining of its ties
  const int ties_needed = s_remaining;
  if (threadIdx.x == 0) {
    s_ties_before = 0;
    s_out_before = 0;
  }
  __syncthreads();
  int* ir = idx + (size_t)blockIdx.x * k;
  float* vr = val + (size_t)blockIdx.x * k;
  for (int base = 0; base < cols; base += blockDim.x) {
    int j = base + threadIdx.x;
    unsigned u = j < cols ? key_bits(xr[j], by_abs) : 0;
    int tie = j < cols && u == t, above = j < cols && u > t;
    int tie_rank, tie_total;
    Scan(scan_tmp).ExclusiveSum(tie, tie_rank, tie_total);
    __syncthreads();
    int take = above || (tie && s_ties_before + tie_rank < ties_needed);
    int pos, take_total;
    Scan(scan_tmp).ExclusiveSum(take, pos, take_total);
    if (take) {
      ir[s_out_before + pos] = j;
      vr[s_out_before + pos] = xr[j];
      if (tie && s_ties_before + tie_rank == ties_needed - 1) thr[blockIdx.x] = key_value(xr[j], by_abs);
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      s_ties_before += tie_total;
      s_out_before += take_total;
    }
    __syncthreads();
  }
}


// Wide rows (cols ≥ WIDE_COLS): many blocks per row. Radix passes accumulate per-row histograms
// in global memory; the ordered compaction takes each block's offset from exclusive scans of
// per-block "above" and "tie" counts: a block's first output slot is
// above_before + min(ties_before, ties_needed).
constexpr int WIDE_COLS = 16384;
constexpr int WIDE_THREADS = 512, WIDE_ITEMS = 16, WIDE_CHUNK = WIDE_THREADS * WIDE_ITEMS;

struct RowState {
  unsigned prefix, mask;
  int remaining;
};

__global__ void wide_init(RowState* st, unsigned* hist, int k, int rows) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < rows * 256; i += gridDim.x * blockDim.x) {
    hist[i] = 0;
    if (i < rows) st[i] = RowState{0u, 0u, k};
  }
}

__global__ void __launch_bounds__(WIDE_THREADS) wide_hist(const float* x, int cols, int by_abs, int shift,
                                                          const RowState* st, unsigned* hist) {
  __shared__ unsigned h[256];
  for (int i = threadIdx.x; i < 256; i += blockDim.x) h[i] = 0;
  __syncthreads();
  const int row = blockIdx.y;
  const float* xr = x + (size_t)row * cols;
  const unsigned prefix = st[row].prefix, mask = st[row].mask;
  const int end = min(cols, (blockIdx.x + 1) * WIDE_CHUNK);
  for (int j = blockIdx.x * WIDE_CHUNK + threadIdx.x; j < end; j += blockDim.x) {
    unsigned u = key_bits(xr[j], by_abs);
    if ((u & mask) == prefix) atomicAdd(&h[(u >> shift) & 255u], 1u);
  }
  __syncthreads();
  for (int i = threadIdx.x; i < 256; i += blockDim.x)
    if (h[i]) atomicAdd(&hist[row * 256 + i], h[i]);
}

__global__ void wide_pick(RowState* st, unsigned* hist, int shift) {
  const int row = blockIdx.x;
  if (threadIdx.x == 0) {
    RowState s = st[row];
    unsigned* hr = hist + row * 256;
    int rem = s.remaining;
    for (int d = 255; d >= 0; d--) {
      int c = (int)hr[d];
      if (c >= rem) {
        s.prefix |= (unsigned)d << shift;
        s.mask |= 255u << shift;
        break;
      }
      rem -= c;
    }
    s.remaining = rem;
    st[row] = s;
  }
  __syncthreads();
  for (int i = threadIdx.x; i < 256; i += blockDim.x) hist[row * 256 + i] = 0;
}

__global__ void __launch_bounds__(WIDE_THREADS) wide_count(const float* x, int cols, int by_abs,
                                                           const RowState* st, int* above, int* ties) {
  typedef cub::BlockReduce<int, WIDE_THREADS> Reduce;
  __shared__ typename Reduce::TempStorage tmp;
  const int row = blockIdx.y;
  const float* xr = x + (size_t)row * cols;
  const unsigned t = st[row].prefix;
  const int end = min(cols, (blockIdx.x + 1) * WIDE_CHUNK);
  int a = 0, e = 0;
  for (int j = blockIdx.x * WIDE_CHUNK + threadIdx.x; j < end; j += blockDim.x) {
    unsigned u = key_bits(xr[j], by_abs);
    a += u > t;
    e += u == t;
  }
  int sa = Reduce(tmp).Sum(a);
  __syncthreads();
  int se = Reduce(tmp).Sum(e);
  if (threadIdx.x == 0) {
    above[(size_t)row * gridDim.x + blockIdx.x] = sa;
    ties[(size_t)row * gridDim.x + blockIdx.x] = se;
  }
}

// In place: exclusive prefix sums of above[] and ties[] over each row's nblk blocks.
__global__ void __launch_bounds__(WIDE_THREADS) wide_scan(int* above, int* ties, int nblk) {
  typedef cub::BlockScan<int, WIDE_THREADS> Scan;
  __shared__ typename Scan::TempStorage tmp;
  __shared__ int carry_a, carry_t;
  if (threadIdx.x == 0) carry_a = carry_t = 0;
  __syncthreads();
  int* ar = above + (size_t)blockIdx.x * nblk;
  int* tr = ties + (size_t)blockIdx.x * nblk;
  for (int base = 0; base < nblk; base += blockDim.x) {
    int i = base + threadIdx.x;
    int va = i < nblk ? ar[i] : 0, vt = i < nblk ? tr[i] : 0, ea, et, sa, st;
    Scan(tmp).ExclusiveSum(va, ea, sa);
    __syncthreads();
    Scan(tmp).ExclusiveSum(vt, et, st);
    if (i < nblk) {
      ar[i] = carry_a + ea;
      tr[i] = carry_t + et;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      carry_a += sa;
      carry_t += st;
    }
    __syncthreads();
  }
}

__global__ void __launch_bounds__(WIDE_THREADS) wide_emit(const float* x, int cols, int k, int by_abs,
                                                          const RowState* st, const int* above_before,
                                                          const int* ties_before, int* idx, float* val,
                                                          float* thr) {
  typedef cub::BlockScan<int, WIDE_THREADS> Scan;
  __shared__ typename Scan::TempStorage tmp;
  __shared__ int s_ties, s_out;
  const int row = blockIdx.y;
  const float* xr = x + (size_t)row * cols;
  const unsigned t = st[row].prefix;
  const int need = st[row].remaining;
  const size_t b = (size_t)row * gridDim.x + blockIdx.x;
  if (threadIdx.x == 0) {
    s_ties = ties_before[b];
    s_out = above_before[b] + min(ties_before[b], need);
  }
  __syncthreads();
  int* ir = idx + (size_t)row * k;
  float* vr = val + (size_t)row * k;
  const int start = blockIdx.x * WIDE_CHUNK, end = min(cols, start + WIDE_CHUNK);
  for (int base = start; base < end; base += blockDim.x) {
    int j = base + threadIdx.x;
    unsigned u = j < end ? key_bits(xr[j], by_abs) : 0;
    int tie = j < end && u == t, above = j < end && u > t;
    int tie_rank, tie_total;
    Scan(tmp).ExclusiveSum(tie, tie_rank, tie_total);
    __syncthreads();
    int take = above || (tie && s_ties + tie_rank < need);
    int pos, take_total;
    Scan(tmp).ExclusiveSum(take, pos, take_total);
    if (take) {
      ir[s_out + pos] = j;
      vr[s_out + pos] = xr[j];
      if (tie && s_ties + tie_rank == need - 1) thr[row] = key_value(xr[j], by_abs);
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      s_ties += tie_total;
      s_out += take_total;
    }
    __syncthreads();
  }
}

static int32_t topk_wide(const char* fn, const float* x, int rows, int cols, int k, int by_abs, int* idx,
                         float* val, float* thr) {
  const int nblk = (cols + WIDE_CHUNK - 1) / WIDE_CHUNK;
  const int row_batch = rows < 65535 ? rows : 65535;
  RowState* st = nullptr;
  unsigned* hist = nullptr;
  int *above = nullptr, *ties = nullptr;
  auto done = [&](int32_t code) {
    cudaFree(st);
    cudaFree(hist);
    cudaFree(above);
    cudaFree(ties);
    return code;
  };
  if (cudaMalloc(&st, sizeof(RowState) * row_batch) || cudaMalloc(&hist, sizeof(unsigned) * 256 * row_batch) ||
      cudaMalloc(&above, sizeof(int) * (size_t)nblk * row_batch) ||
      cudaMalloc(&ties, sizeof(int) * (size_t)nblk * row_batch))
    return done(fail(LK_ENOMEM, "%s: cannot allocate top-k scratch for %d rows", fn, row_batch));
  for (int r0 = 0; r0 < rows; r0 += row_batch) {
    const int nr = rows - r0 < row_batch ? rows - r0 : row_batch;
    const float* xb = x + (size_t)r0 * cols;
    dim3 grid(nblk, nr);
    wide_init<<<blocks_for((size_t)nr * 256, 256), 256>>>(st, hist, k, nr);
    for (int shift = 24; shift >= 0; shift -= 8) {
      wide_hist<<<grid, WIDE_THREADS>>>(xb, cols, by_abs, shift, st, hist);
      wide_pick<<<nr, 256>>>(st, hist, shift);
    }
    wide_count<<<grid, WIDE_THREADS>>>(xb, cols, by_abs, st, above, ties);
    wide_scan<<<nr, WIDE_THREADS>>>(above, ties, nblk);
    wide_emit<<<grid, WIDE_THREADS>>>(xb, cols, k, by_abs, st, above, ties, idx + (size_t)r0 * k,
                                      val + (size_t)r0 * k, thr + r0);
    if (int32_t code = launched(fn)) return done(code);
  }
  CUDA_TRY(fn, cudaDeviceSynchronize());
  return done(LK_OK);
}

static int32_t check_nan(const char* fn, const float* x, size_t len, size_t cols, const char* name) {
  unsigned long long* bad = nullptr;
  unsigned long long hb = ~0ull;
  CUDA_TRY(fn, cudaMalloc(&bad, sizeof hb));
  cudaMemcpy(bad, &hb, sizeof hb, cudaMemcpyHostToDevice);
  find_nan<<<blocks_for(len, 256), 256>>>(x, len, bad);
  cudaMemcpy(&hb, bad, sizeof hb, cudaMemcpyDeviceToHost);
  cudaFree(bad);
  if (int32_t st = launched(fn)) return st;
  if (hb != ~0ull) {
    if (cols == 0) return fail(LK_ENUMERICAL, "%s: %s[%llu] is NaN: expected a number", fn, name, hb);
    return fail(LK_ENUMERICAL, "%s: %s[%llu,%llu] is NaN: expected a number", fn, name, hb / cols, hb % cols);
  }
  return LK_OK;
}

extern "C" int32_t lk_cuda_topk_f32(int32_t hx, int32_t rows, int32_t cols, int32_t k, int32_t by_abs,
                                    int32_t hi, int32_t hv, int32_t ht) {
  const char* fn = "lk_cuda_topk_f32";
  if (rows < 0 || cols < 0) return fail(LK_ESHAPE, "%s: rows=%d cols=%d, expected >= 0", fn, rows, cols);
  if (k < 1 || k > cols) return fail(LK_EARG, "%s: k=%d, expected 1 <= k <= cols=%d", fn, k, cols);
  void *x, *i, *v, *t;
  if (int32_t st = get(fn, "x", hx, 0, (double)rows * cols, &x)) return st;
  if (int32_t st = get(fn, "idx", hi, 2, (double)rows * k, &i)) return st;
  if (int32_t st = get(fn, "val", hv, 0, (double)rows * k, &v)) return st;
  if (int32_t st = get(fn, "thr", ht, 0, (double)rows, &t)) return st;
  if (int32_t st = check_nan(fn, (const float*)x, (size_t)rows * cols, (size_t)cols, "x")) return st;
  if (rows == 0) return LK_OK;
  if (cols >= WIDE_COLS) return topk_wide(fn, (const float*)x, rows, cols, k, by_abs ? 1 : 0, (int*)i, (float*)v, (float*)t);
  topk_rows<<<rows, TOPK_THREADS>>>((const float*)x, cols, k, by_abs ? 1 : 0, (int*)i, (float*)v, (float*)t);
  return launched(fn);
}

__global__ void threshold_rows(const float* x, int cols, const float* thr, int by_abs, unsigned char* mask,
                               int* count) {
  __shared__ int total;
  if (threadIdx.x == 0) total = 0;
  __syncthreads();
  const float* xr = x + (size_t)blockIdx.x * cols;
  unsigned char* mr = mask + (size_t)blockIdx.x * cols;
  float t = thr[blockIdx.x];
  int c = 0;
  for (int j = threadIdx.x; j < cols; j += blockDim.x) {
    unsigned char s = (by_abs ? fabsf(xr[j]) : xr[j]) >= t;
    mr[j] = s;
    c += s;
  }
  atomicAdd(&total, c);
  __syncthreads();
  if (threadIdx.x == 0) count[blockIdx.x] = total;
}

extern "C" int32_t lk_cuda_threshold_f32(int32_t hx, int32_t rows, int32_t cols, int32_t ht, int32_t by_abs,
                                         int32_t hm, int32_t hc) {
  const char* fn = "lk_cuda_threshold_f32";
  if (rows < 0 || cols < 0) return fail(LK_ESHAPE, "%s: rows=%d cols=%d, expected >= 0", fn, rows, cols);
  void *x, *t, *m, *c;
  if (int32_t st = get(fn, "x", hx, 0, (double)rows * cols, &x)) return st;
  if (int32_t st = get(fn, "thr", ht, 0, (double)rows, &t)) return st;
  if (int32_t st = get(fn, "mask", hm, 3, (double)rows * cols, &m)) return st;
  if (int32_t st = get(fn, "count", hc, 2, (double)rows, &c)) return st;
  if (int32_t st = check_nan(fn, (const float*)x, (size_t)rows * cols, (size_t)cols, "x")) return st;
  if (int32_t st = check_nan(fn, (const float*)t, (size_t)rows, 0, "thr")) return st;
  if (rows == 0) return LK_OK;
  threshold_rows<<<rows, 256>>>((const float*)x, cols, (const float*)t, by_abs ? 1 : 0, (unsigned char*)m, (int*)c);
  return launched(fn);
}

// ---------------------------------------------------------------- SparseGPT column sweep
// The same algorithm as lk_cpu_sparsegpt_f64 (ffi/cpu/sparsegpt.c), step for step: per block of
// columns an unstructured mask (w²/U_jj² ≤ the block's ⌊len·sparsity⌋-th smallest over prunable
// rows; the k-th value from a CUB radix sort of the block's scores, non-prunable rows scored +∞)
// or N:M masks chosen during the sweep; the sweep itself one thread per row, the block's columns
// in local memory; the lazy update of the later columns one cublasDgemm.
#define SGPT_MAXB 128

__global__ void sgpt_check_diag(const double* u, int cols, int* bad) {
  for (int j = blockIdx.x * blockDim.x + threadIdx.x; j < cols; j += gridDim.x * blockDim.x)
    if (!(u[(size_t)j * cols + j] > 0)) atomicMin(bad, j);
}

__global__ void sgpt_scores(const double* w, const double* u, const unsigned char* prunable, int rows,
                            int cols, int i1, int count, double* score) {
  size_t len = (size_t)rows * count;
  for (size_t t = blockIdx.x * (size_t)blockDim.x + threadIdx.x; t < len; t += (size_t)gridDim.x * blockDim.x) {
    int r = (int)(t / count), j = i1 + (int)(t % count);
    double d = u[(size_t)j * cols + j], x = w[(size_t)r * cols + j];
    score[t] = prunable[r] ? x * x / (d * d) : __longlong_as_double(0x7ff0000000000000LL);
  }
}

__global__ void sgpt_mark(const double* w, const double* u, const unsigned char* prunable, int rows,
                          int cols, int i1, int count, const double* sorted, size_t k, unsigned char* mask) {
  const double thresh = sorted[k];
  size_t len = (size_t)rows * count;
  for (size_t t = blockIdx.x * (size_t)blockDim.x + threadIdx.x; t < len; t += (size_t)gridDim.x * blockDim.x) {
    int r = (int)(t / count), j = i1 + (int)(t % count);
    double d = u[(size_t)j * cols + j], x = w[(size_t)r * cols + j];
    if (prunable[r] && x * x / (d * d) <= thresh) mask[(size_t)r * cols + j] = 1;
  }
}

__global__ void sgpt_sweep(double* w, const double* u, const unsigned char* prunable, unsigned char* mask,
                           double* err, int rows, int cols, int i1, int count, int block, int n, int m) {
  const int r = blockIdx.x * blockDim.x + threadIdx.x;
  if (r >= rows) return;
  double wl[SGPT_MAXB];
  unsigned char ml[SGPT_MAXB];
  double* wr = w + (size_t)r * cols;
  unsigned char* mr = mask + (size_t)r * cols;
  for (int i = 0; i < count; i++) {
    wl[i] = wr[i1 + i];
    ml[i] = mr[i1 + i];
  }
  const bool can_prune = prunable[r] != 0;
  for (int i = 0; i < count; i++) {
    const int c = i1 + i;
    if (n > 0 && c % m == 0 && can_prune) {
      // the n smallest w²/U_jj² of the group (inside the block: block % m == 0), ties to the lower
      // index
      double sc[64];
      int idx[64];
      for (int q = 0; q < m; q++) {
        double d = u[(size_t)(c + q) * cols + c + q], x = wl[i + q];
        sc[q] = x * x / (d * d);
        idx[q] = q;
      }
      for (int a = 1; a < m; a++) {
        int t = idx[a], b = a - 1;
        while (b >= 0 && (sc[idx[b]] > sc[t] || (sc[idx[b]] == sc[t] && idx[b] > t))) {
          idx[b + 1] = idx[b];
          b--;
        }
        idx[b + 1] = t;
      }
      for (int q = 0; q < n; q++) ml[i + idx[q]] = 1;
    }
    const double* uc = u + (size_t)c * cols + i1;
    const double d = uc[i], x = wl[i], qv = ml[i] ? 0.0 : x, e = (x - qv) / d;
    err[(size_t)r * block + i] = e;
    wl[i] = qv;
    if (e != 0)
      for (int j = i + 1; j < count; j++) wl[j] = fma(-e, uc[j], wl[j]);
  }
  for (int i = 0; i < count; i++) {
    wr[i1 + i] = wl[i];
    mr[i1 + i] = ml[i];
  }
}

extern "C" int32_t lk_cuda_sparsegpt_f64(int32_t hw, int32_t hu, int32_t rows, int32_t cols, double sparsity,
                                         int32_t n, int32_t m, int32_t hp, int32_t block, int32_t hm) {
  const char* fn = "lk_cuda_sparsegpt_f64";
  if (rows < 0 || cols < 1) return fail(LK_ESHAPE, "%s: rows=%d cols=%d, expected rows >= 0, cols >= 1", fn, rows, cols);
  if (block < 1 || block > SGPT_MAXB) return fail(LK_EARG, "%s: block=%d, expected 1..%d on cuda", fn, block, SGPT_MAXB);
  if (n > 0) {
    if (m <= n || cols % m) return fail(LK_ESHAPE, "%s: N:M %d:%d needs N < M and M dividing cols=%d", fn, n, m, cols);
    if (m > 64) return fail(LK_EARG, "%s: M=%d, expected at most 64", fn, m);
    if (block % m) return fail(LK_EARG, "%s: block=%d is not a multiple of M=%d (an N:M group must lie in one block)", fn, block, m);
  } else if (!(sparsity > 0 && sparsity < 1)) {
    return fail(LK_EARG, "%s: sparsity %g is outside (0, 1)", fn, sparsity);
  }
  void *wv, *uv, *pv, *mv;
  if (int32_t st = get(fn, "w", hw, 1, (double)rows * cols, &wv)) return st;
  if (int32_t st = get(fn, "u", hu, 1, (double)cols * cols, &uv)) return st;
  if (int32_t st = get(fn, "prunable", hp, 3, rows, &pv)) return st;
  if (int32_t st = get(fn, "mask", hm, 3, (double)rows * cols, &mv)) return st;
  if (int32_t st = need_blas(fn)) return st;
  double* w = (double*)wv;
  const double* u = (const double*)uv;
  const unsigned char* prunable = (const unsigned char*)pv;
  unsigned char* mask = (unsigned char*)mv;
  int* bad = nullptr;
  double *err = nullptr, *score = nullptr, *sorted = nullptr;
  void* temp = nullptr;
  size_t temp_bytes = 0;
  auto done = [&](int32_t st) {
    cudaFree(bad);
    cudaFree(err);
    cudaFree(score);
    cudaFree(sorted);
    cudaFree(temp);
    return st;
  };
  const size_t work = (size_t)(rows ? rows : 1) * block;
  if (cudaMalloc(&bad, sizeof(int)) || cudaMalloc(&err, work * 8))
    return done(fail(LK_ENOMEM, "%s: cannot allocate the %d×%d error block", fn, rows, block));
  int hb = cols;
  CUDA_TRY(fn, cudaMemcpy(bad, &hb, sizeof hb, cudaMemcpyHostToDevice));
  sgpt_check_diag<<<blocks_for((size_t)cols, 256), 256>>>(u, cols, bad);
  if (int32_t st = launched(fn)) return done(st);
  CUDA_TRY(fn, cudaMemcpy(&hb, bad, sizeof hb, cudaMemcpyDeviceToHost));
  if (hb < cols) {
    double v;
    cudaMemcpy(&v, u + (size_t)hb * cols + hb, sizeof v, cudaMemcpyDeviceToHost);
    return done(fail(LK_ENUMERICAL, "%s: U[%d,%d] = %g, expected a positive diagonal", fn, hb, hb, v));
  }
  CUDA_TRY(fn, cudaMemset(mask, 0, (size_t)rows * cols));
  if (n == 0 && rows > 0) {
    if (cudaMalloc(&score, work * 8) || cudaMalloc(&sorted, work * 8))
      return done(fail(LK_ENOMEM, "%s: cannot allocate the %d×%d score blocks", fn, rows, block));
    cub::DeviceRadixSort::SortKeys(nullptr, temp_bytes, score, sorted, (int)work);
    if (cudaMalloc(&temp, temp_bytes ? temp_bytes : 1))
      return done(fail(LK_ENOMEM, "%s: cannot allocate %zu bytes of sort space", fn, temp_bytes));
  }
  // prunable rows, for the unstructured quantile
  std::vector<unsigned char> hp_rows((size_t)rows);
  if (rows) CUDA_TRY(fn, cudaMemcpy(hp_rows.data(), prunable, (size_t)rows, cudaMemcpyDeviceToHost));
  size_t live = 0;
  for (unsigned char v : hp_rows) live += v != 0;
  const int threads = 128;
  for (int i1 = 0; i1 < cols; i1 += block) {
    const int i2 = i1 + block < cols ? i1 + block : cols, count = i2 - i1;
    if (n == 0 && live > 0) {
      const size_t len = (size_t)rows * count, k = (size_t)floor((double)(live * count) * sparsity);
      sgpt_scores<<<blocks_for(len, 256), 256>>>(w, u, prunable, rows, cols, i1, count, score);
      if (int32_t st = launched(fn)) return done(st);
      if (cub::DeviceRadixSort::SortKeys(temp, temp_bytes, score, sorted, (int)len) != cudaSuccess)
        return done(fail(LK_EBACKEND, "%s: cub::DeviceRadixSort::SortKeys failed", fn));
      sgpt_mark<<<blocks_for(len, 256), 256>>>(w, u, prunable, rows, cols, i1, count, sorted, k, mask);
      if (int32_t st = launched(fn)) return done(st);
    }
    if (rows > 0) {
      sgpt_sweep<<<(rows + threads - 1) / threads, threads>>>(w, u, prunable, mask, err, rows, cols, i1, count,
                                                              block, n, m);
      if (int32_t st = launched(fn)) return done(st);
    }
    if (i2 < cols && rows > 0) {
      // row-major W[:, i2:] -= Err · U[i1:i2, i2:]  ⇔  column-major Wᵀ -= U[i1:i2, i2:]ᵀ · Errᵀ
      const double minus_one = -1, one = 1;
      int st = B.dgemm(B.h, CUBLAS_OP_N, CUBLAS_OP_N, cols - i2, rows, count, &minus_one, u + (size_t)i1 * cols + i2,
                       cols, err, block, &one, w + i2, cols);
      if (st) return done(fail(LK_EBACKEND, "%s: cublasDgemm failed with status %d", fn, st));
    }
  }
  CUDA_TRY(fn, cudaDeviceSynchronize());
  return done(LK_OK);
}

// ---------------------------------------------------------------- bf16 and the routed expert layer
// bf16 buffers (dtype 4), conversion, a bf16 GEMM through cublasGemmEx (f32 accumulation), 2:4
// sparse weights on the sparse tensor cores through cuSPARSELt (loaded at run time, like cuBLAS),
// and the routed Sparse Expansion layer on the device: router projection, nearest centroid,
// grouping by cluster, one product per expert, scatter back.
enum { CUBLAS_COMPUTE_32F_ = 68, CUBLAS_GEMM_DEFAULT_ = -1 };
typedef __nv_bfloat16 bf16;

__global__ void cvt_f32_bf16(const float* x, bf16* y, size_t n) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
    y[i] = __float2bfloat16(x[i]);
}
__global__ void cvt_bf16_f32(const bf16* x, float* y, size_t n) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
    y[i] = __bfloat162float(x[i]);
}

extern "C" int32_t lk_cuda_convert(int32_t hsrc, int32_t hdst) {
  const char* fn = "lk_cuda_convert";
  Buf *a = lookup(hsrc), *b = lookup(hdst);
  if (!a || !b) return fail(LK_EHANDLE, "%s: handle %d is not a live device buffer", fn, a ? hdst : hsrc);
  if (a->len != b->len) return fail(LK_ESHAPE, "%s: %zu elements to %zu", fn, a->len, b->len);
  if (a->dtype == 0 && b->dtype == 4)
    cvt_f32_bf16<<<blocks_for(a->len, 256), 256>>>((const float*)a->ptr, (bf16*)b->ptr, a->len);
  else if (a->dtype == 4 && b->dtype == 0)
    cvt_bf16_f32<<<blocks_for(a->len, 256), 256>>>((const bf16*)a->ptr, (float*)b->ptr, a->len);
  else
    return fail(LK_EARG, "%s: %s to %s, expected f32 to bf16 or bf16 to f32", fn, dname[a->dtype], dname[b->dtype]);
  return launched(fn);
}

// row-major C[m,n] (ldc) = A[m,k] (lda) · op(B), op(B) = B[k,n] or B[n,k]ᵀ (ldb); bf16 in and out
static int32_t gemm_bf16(const char* fn, const bf16* a, int lda, const bf16* b, int ldb, bool trans_b, bf16* c, int ldc,
                         int m, int k, int n) {
  const float one = 1, zero = 0;
  int st = B.gemm_ex(B.h, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, CUBLAS_OP_N, n, m, k, &one, b, CUDA_R_16BF, ldb, a,
                     CUDA_R_16BF, lda, &zero, c, CUDA_R_16BF, ldc, CUBLAS_COMPUTE_32F_, CUBLAS_GEMM_DEFAULT_);
  if (st) return fail(LK_EBACKEND, "%s: cublasGemmEx (bf16) failed with status %d", fn, st);
  return LK_OK;
}

extern "C" int32_t lk_cuda_matmul_bf16(int32_t ha, int32_t hb, int32_t hc, int32_t m, int32_t k, int32_t n,
                                       int32_t trans_b) {
  const char* fn = "lk_cuda_matmul_bf16";
  if (m < 0 || k < 1 || n < 0) return fail(LK_ESHAPE, "%s: m=%d k=%d n=%d, expected m, n >= 0 and k >= 1", fn, m, k, n);
  if (trans_b != 0 && trans_b != 1) return fail(LK_EARG, "%s: trans_b is %d, expected 0 or 1", fn, trans_b);
  void *a, *b, *c;
  if (int32_t st = get(fn, "a", ha, 4, (double)m * k, &a)) return st;
  if (int32_t st = get(fn, "b", hb, 4, (double)k * n, &b)) return st;
  if (int32_t st = get(fn, "c", hc, 4, (double)m * n, &c)) return st;
  if (int32_t st = need_blas(fn)) return st;
  if (m == 0 || n == 0) return LK_OK;
  return gemm_bf16(fn, (const bf16*)a, k, (const bf16*)b, trans_b ? k : n, trans_b, (bf16*)c, n, m, k, n);
}

// ---- cuSPARSELt, declared here (opaque structs sized above any release's: 1024 to 11024 bytes)
struct LtOpaque {
  alignas(64) unsigned char data[16384];
};
enum { LT_OP_N = 0, LT_OP_T = 1, LT_ORDER_COL = 1, LT_ORDER_ROW = 2, LT_SPARSITY_50 = 0, LT_COMPUTE_32F = 2, LT_ALG_DEFAULT = 0 };
struct Lt {
  int (*init)(LtOpaque*);
  int (*version)(const LtOpaque*, int*);
  int (*dense)(const LtOpaque*, LtOpaque*, int64_t, int64_t, int64_t, uint32_t, int, int);
  int (*structured)(const LtOpaque*, LtOpaque*, int64_t, int64_t, int64_t, uint32_t, int, int, int);
  int (*desc_destroy)(const LtOpaque*);
  int (*matmul_desc)(const LtOpaque*, LtOpaque*, int, int, const LtOpaque*, const LtOpaque*, const LtOpaque*,
                     const LtOpaque*, int);
  int (*alg_init)(const LtOpaque*, LtOpaque*, const LtOpaque*, int);
  int (*alg_destroy)(const LtOpaque*);  // cuSPARSELt 0.8 and later
  int (*plan_init)(const LtOpaque*, LtOpaque*, const LtOpaque*, const LtOpaque*);
  int (*plan_destroy)(const LtOpaque*);
  int (*workspace)(const LtOpaque*, const LtOpaque*, size_t*);
  int (*matmul)(const LtOpaque*, const LtOpaque*, const void*, const void*, const void*, const void*, const void*,
                void*, void*, cudaStream_t*, int32_t);
  int (*prune_check2)(const LtOpaque*, const LtOpaque*, int, int, const void*, int*, cudaStream_t);
  int (*compressed_size2)(const LtOpaque*, const LtOpaque*, size_t*, size_t*);
  int (*compress2)(const LtOpaque*, const LtOpaque*, int, int, const void*, void*, void*, cudaStream_t);
  int (*search)(const LtOpaque*, LtOpaque*, const void*, const void*, const void*, const void*, const void*, void*,
                void*, cudaStream_t*, int32_t);  // optional: lk_cuda_sp24_set_search
  // optional: a search's choice read back and given to the next plan of the same problem
  int (*alg_get)(const LtOpaque*, const LtOpaque*, int, void*, size_t);
  int (*alg_set)(const LtOpaque*, LtOpaque*, int, const void*, size_t);
  LtOpaque* h = nullptr;
  int ver = 0;
  char name[48] = "";
  char why[160] = "";
};
static Lt L;
static std::once_flag lt_once;

static void load_lt() {
  static const char* names[] = {"libcusparseLt.so.0", "libcusparseLt.so", nullptr};
  void* h = open_first(names, L.name, sizeof L.name);
  if (!h) {
    snprintf(L.why, sizeof L.why, "libcusparseLt.so.0 not found (PyTorch wheels ship it in nvidia/cusparselt/lib)");
    return;
  }
  *(void**)&L.init = dlsym(h, "cusparseLtInit");
  *(void**)&L.version = dlsym(h, "cusparseLtGetVersion");
  *(void**)&L.dense = dlsym(h, "cusparseLtDenseDescriptorInit");
  *(void**)&L.structured = dlsym(h, "cusparseLtStructuredDescriptorInit");
  *(void**)&L.desc_destroy = dlsym(h, "cusparseLtMatDescriptorDestroy");
  *(void**)&L.matmul_desc = dlsym(h, "cusparseLtMatmulDescriptorInit");
  *(void**)&L.alg_init = dlsym(h, "cusparseLtMatmulAlgSelectionInit");
  *(void**)&L.alg_destroy = dlsym(h, "cusparseLtMatmulAlgSelectionDestroy");
  *(void**)&L.plan_init = dlsym(h, "cusparseLtMatmulPlanInit");
  *(void**)&L.plan_destroy = dlsym(h, "cusparseLtMatmulPlanDestroy");
  *(void**)&L.workspace = dlsym(h, "cusparseLtMatmulGetWorkspace");
  *(void**)&L.matmul = dlsym(h, "cusparseLtMatmul");
  *(void**)&L.prune_check2 = dlsym(h, "cusparseLtSpMMAPruneCheck2");
  *(void**)&L.compressed_size2 = dlsym(h, "cusparseLtSpMMACompressedSize2");
  *(void**)&L.compress2 = dlsym(h, "cusparseLtSpMMACompress2");
  *(void**)&L.search = dlsym(h, "cusparseLtMatmulSearch");
  *(void**)&L.alg_get = dlsym(h, "cusparseLtMatmulAlgGetAttribute");
  *(void**)&L.alg_set = dlsym(h, "cusparseLtMatmulAlgSetAttribute");
  if (!(L.init && L.version && L.dense && L.structured && L.desc_destroy && L.matmul_desc && L.alg_init &&
        L.plan_init && L.plan_destroy && L.workspace && L.matmul && L.prune_check2 && L.compressed_size2 &&
        L.compress2)) {
    snprintf(L.why, sizeof L.why, "%s lacks a cusparseLt entry point this library needs", L.name);
    return;
  }
  LtOpaque* handle = new LtOpaque();
  int st = L.init(handle);
  if (st) {
    snprintf(L.why, sizeof L.why, "cusparseLtInit failed with status %d", st);
    delete handle;
    return;
  }
  L.version(handle, &L.ver);
  // the compute-type numbering this file uses (32F = 2) is that of cuSPARSELt 0.6 and later
  if (L.ver < 600) {
    snprintf(L.why, sizeof L.why, "%s is version %d; 0.6 (600) or later is needed", L.name, L.ver);
    delete handle;
    return;
  }
  L.h = handle;
}

static int32_t need_lt(const char* fn) {
  std::call_once(lt_once, load_lt);
  if (!L.h) return fail(LK_EBACKEND, "%s: cuSPARSELt is unavailable: %s", fn, L.why);
  return LK_OK;
}

// A 2:4 weight W[n,k] (bf16, pruned along k) compressed for the sparse tensor cores, with one
// plan per padded token count m (products D[n,m] = W · Xᵀ for X[m,k], all row-major).
struct Sp24Plan {
  int m = 0, layout = 0;
  bool tuned = false;  // made with a configuration an earlier search chose
  LtOpaque *xd = nullptr, *dd = nullptr, *mm = nullptr, *alg = nullptr, *plan = nullptr;
  void* ws = nullptr;
  size_t ws_bytes = 0;
};
struct Sp24 {
  int n = 0, k = 0;
  LtOpaque* wd = nullptr;
  void* compressed = nullptr;
  std::vector<Sp24Plan> plans;
};
static std::vector<Sp24*> sp24_table;  // id ↔ sp24_table[id - 1]

static void sp24_destroy_plan(Sp24Plan& p) {
  if (p.plan) L.plan_destroy(p.plan);
  if (p.alg && L.alg_destroy) L.alg_destroy(p.alg);
  if (p.xd) L.desc_destroy(p.xd);
  if (p.dd) L.desc_destroy(p.dd);
  delete p.xd;
  delete p.dd;
  delete p.mm;
  delete p.alg;
  delete p.plan;
  cudaFree(p.ws);
  p = Sp24Plan{};
}

static Sp24* sp24_get(int32_t id) {
  std::lock_guard<std::mutex> g(table_mu);
  if (id < 1 || (size_t)id > sp24_table.size()) return nullptr;
  return sp24_table[id - 1];
}

extern "C" int32_t lk_cuda_sp24_create(int32_t hw, int32_t n, int32_t k, int32_t* id_out, double id_len) {
  const char* fn = "lk_cuda_sp24_create";
  if (!(id_len >= 1)) return fail(LK_ESHAPE, "%s: id_out holds %.0f elements, expected 1", fn, id_len);
  if (n < 32 || k < 32 || n % 32 || k % 32)
    return fail(LK_ESHAPE, "%s: W is %d×%d, expected both sizes multiples of 32 (cuSPARSELt tiles)", fn, n, k);
  void* w;
  if (int32_t st = get(fn, "w", hw, 4, (double)n * k, &w)) return st;
  if (int32_t st = need_lt(fn)) return st;
  Sp24* s = new Sp24();
  s->n = n;
  s->k = k;
  s->wd = new LtOpaque();
  int* valid = nullptr;
  void* buffer = nullptr;
  bool wd_ok = false;
  auto bad = [&](int32_t code, const char* what, int st) {
    if (wd_ok) L.desc_destroy(s->wd);
    delete s->wd;
    cudaFree(s->compressed);
    cudaFree(valid);
    cudaFree(buffer);
    delete s;
    return fail(code, "%s: %s (status %d)", fn, what, st);
  };
  int st = L.structured(L.h, s->wd, n, k, k, 16, CUDA_R_16BF, LT_ORDER_ROW, LT_SPARSITY_50);
  if (st) return bad(LK_EBACKEND, "cusparseLtStructuredDescriptorInit failed", st);
  wd_ok = true;
  // the check only raises the flag (seen on an H200 with cuSPARSELt 0.8: a fresh allocation's
  // leftover bytes came back as the verdict), so it starts at 0 = "2:4"
  if (cudaMalloc(&valid, sizeof(int)) || cudaMemset(valid, 0, sizeof(int)))
    return bad(LK_ENOMEM, "cannot allocate a flag", 0);
  st = L.prune_check2(L.h, s->wd, 1, LT_OP_N, w, valid, nullptr);
  if (st) return bad(LK_EBACKEND, "cusparseLtSpMMAPruneCheck2 failed", st);
  int hv = 1;
  cudaMemcpy(&hv, valid, sizeof hv, cudaMemcpyDeviceToHost);
  if (hv != 0) return bad(LK_EARG, "W is not 2:4 sparse along its rows (groups of 4 consecutive columns)", hv);
  size_t csize = 0, bsize = 0;
  st = L.compressed_size2(L.h, s->wd, &csize, &bsize);
  if (st) return bad(LK_EBACKEND, "cusparseLtSpMMACompressedSize2 failed", st);
  if (cudaMalloc(&s->compressed, csize) || cudaMalloc(&buffer, bsize ? bsize : 1))
    return bad(LK_ENOMEM, "cannot allocate the compressed weight", 0);
  st = L.compress2(L.h, s->wd, 1, LT_OP_N, w, s->compressed, buffer, nullptr);
  if (st) return bad(LK_EBACKEND, "cusparseLtSpMMACompress2 failed", st);
  cudaDeviceSynchronize();
  cudaFree(buffer);
  cudaFree(valid);
  std::lock_guard<std::mutex> g(table_mu);
  sp24_table.push_back(s);
  id_out[0] = (int32_t)sp24_table.size();
  return LK_OK;
}

extern "C" int32_t lk_cuda_sp24_free(int32_t id) {
  Sp24* s = sp24_get(id);
  if (!s) return fail(LK_EHANDLE, "lk_cuda_sp24_free: %d is not a live 2:4 weight", id);
  for (auto& p : s->plans) sp24_destroy_plan(p);
  L.desc_destroy(s->wd);
  delete s->wd;
  cudaFree(s->compressed);
  delete s;
  std::lock_guard<std::mutex> g(table_mu);
  sp24_table[id - 1] = nullptr;
  return LK_OK;
}

// Token counts run padded: to a multiple of 16 (cuSPARSELt's tile), and from 256 tokens on to a
// multiple of an eighth of their power of two, so that a weight keeps at most 8 plans per
// doubling of the token count (a plan per distinct count grew without bound as batches varied)
// at the cost of at most 1/8 padded rows.
static int sp24_padded(int m) {
  int g = 16;
  while (g * 16 <= m) g *= 2;
  return (m + g - 1) / g * g;
}

// Whether a new plan is tuned by cusparseLtMatmulSearch on its first product (timing every
// algorithm cuSPARSELt has for the shape) instead of taking the default algorithm.
static int sp24_search = 0;

// What a search chose, by problem (W n × k, padded m, X layout): the algorithm attributes
// CONFIG_ID, SPLIT_K, SPLIT_K_MODE and SPLIT_K_BUFFERS (cusparseLtMatmulAlgAttribute_t 0, 3, 4, 5).
// The experts of a routed layer share their shape, so one search serves all of them (on an H200 a
// search took about 0.26 s per plan, 4 s for a layer's 16 experts).
static const int sp24_attrs[4] = {0, 3, 4, 5};
struct Sp24Tuned {
  int n, k, m, layout;
  int value[4];
};
static std::vector<Sp24Tuned> sp24_tuned;  // guarded by table_mu

static const Sp24Tuned* sp24_tuned_find(int n, int k, int m, int layout) {
  for (auto& t : sp24_tuned)
    if (t.n == n && t.k == k && t.m == m && t.layout == layout) return &t;
  return nullptr;
}

extern "C" int32_t lk_cuda_sp24_set_search(int32_t on) {
  if (on != 0 && on != 1) return fail(LK_EARG, "lk_cuda_sp24_set_search: on=%d, expected 0 or 1", on);
  sp24_search = on;
  return LK_OK;
}

// Gives a new plan's algorithm selection what a search chose for the same problem; false when no
// search has (or an attribute is refused: the plan is then searched, which sets them all anew).
static bool sp24_apply_tuned(const Sp24* s, int m, int layout, LtOpaque* alg) {
  if (!L.alg_set) return false;
  int value[4];
  {
    std::lock_guard<std::mutex> g(table_mu);
    const Sp24Tuned* t = sp24_tuned_find(s->n, s->k, m, layout);
    if (!t) return false;
    memcpy(value, t->value, sizeof value);
  }
  for (int i = 0; i < 4; i++)
    if (L.alg_set(L.h, alg, sp24_attrs[i], &value[i], sizeof(int))) return false;
  return true;
}

// Keeps what a search chose for this problem (nothing when an attribute cannot be read back).
static void sp24_keep_tuned(const Sp24* s, int m, int layout, const LtOpaque* alg) {
  if (!L.alg_get) return;
  Sp24Tuned t{s->n, s->k, m, layout, {0, 0, 0, 0}};
  for (int i = 0; i < 4; i++)
    if (L.alg_get(L.h, alg, sp24_attrs[i], &t.value[i], sizeof(int))) return;
  std::lock_guard<std::mutex> g(table_mu);
  if (!sp24_tuned_find(t.n, t.k, t.m, t.layout)) sp24_tuned.push_back(t);
}

// D[n, m] = W · Xᵀ for X[m, k] (m a multiple of 16), bf16, row-major
static int32_t sp24_run(const char* fn, Sp24* s, const bf16* x, int m, bf16* d) {
  Sp24Plan* p = nullptr;
  bool fresh = false;
  for (auto& q : s->plans)
    if (q.m == m) p = &q;
  if (!p) {
    // X[m,k] row-major is read either as a row-major m × k B with opB = T, or (the layout PyTorch
    // uses) as a column-major k × m B with opB = N; the second is tried when the first is refused
    char why[200] = "";
    for (int layout = 0; layout < 2 && !p; layout++) {
      Sp24Plan q;
      q.m = m;
      q.xd = new LtOpaque();
      q.dd = new LtOpaque();
      q.mm = new LtOpaque();
      q.alg = new LtOpaque();
      q.plan = new LtOpaque();
      bool xd_ok = false, dd_ok = false, alg_ok = false, plan_ok = false;
      int st = 0;
      const char* what = nullptr;
      if ((st = layout == 0 ? L.dense(L.h, q.xd, m, s->k, s->k, 16, CUDA_R_16BF, LT_ORDER_ROW)
                            : L.dense(L.h, q.xd, s->k, m, s->k, 16, CUDA_R_16BF, LT_ORDER_COL)))
        what = "dense descriptor of X";
      else if ((xd_ok = true, st = L.dense(L.h, q.dd, s->n, m, m, 16, CUDA_R_16BF, LT_ORDER_ROW)))
        what = "dense descriptor of D";
      else if ((dd_ok = true, st = L.matmul_desc(L.h, q.mm, LT_OP_N, layout == 0 ? LT_OP_T : LT_OP_N, s->wd, q.xd,
                                                   q.dd, q.dd, LT_COMPUTE_32F)))
        what = "cusparseLtMatmulDescriptorInit";
      else if ((st = L.alg_init(L.h, q.alg, q.mm, LT_ALG_DEFAULT)))
        what = "cusparseLtMatmulAlgSelectionInit";
      // a configuration an earlier search chose for this problem, when there is one
      else if ((alg_ok = true, q.tuned = sp24_search && sp24_apply_tuned(s, m, layout, q.alg),
                st = L.plan_init(L.h, q.plan, q.mm, q.alg)))
        what = "cusparseLtMatmulPlanInit";
      else if ((plan_ok = true, st = L.workspace(L.h, q.plan, &q.ws_bytes)))
        what = "cusparseLtMatmulGetWorkspace";
      else if (q.ws_bytes && cudaMalloc(&q.ws, q.ws_bytes))
        what = "workspace allocation";
      if (!what) {
        q.layout = layout;
        s->plans.push_back(q);
        p = &s->plans.back();
        fresh = true;
        break;
      }
      snprintf(why + strlen(why), sizeof why - strlen(why), "%s%s failed (status %d) with %s", layout ? "; " : "", what,
               st, layout == 0 ? "opB = T" : "X column-major");
      if (plan_ok) L.plan_destroy(q.plan);
      if (alg_ok && L.alg_destroy) L.alg_destroy(q.alg);
      if (xd_ok) L.desc_destroy(q.xd);
      if (dd_ok) L.desc_destroy(q.dd);
      delete q.xd;
      delete q.dd;
      delete q.mm;
      delete q.alg;
      delete q.plan;
    }
    if (!p) return fail(LK_EBACKEND, "%s: W %d×%d and %d tokens: %s", fn, s->n, s->k, m, why);
  }
  const float one = 1, zero = 0;
  if (fresh && sp24_search && !p->tuned) {
    if (!L.search) return fail(LK_EBACKEND, "%s: %s has no cusparseLtMatmulSearch", fn, L.name);
    if (int st = L.search(L.h, p->plan, &one, s->compressed, x, &zero, d, d, p->ws, nullptr, 0))
      return fail(LK_EBACKEND, "%s: cusparseLtMatmulSearch failed with status %d", fn, st);
    sp24_keep_tuned(s, m, p->layout, p->alg);
    // the algorithm chosen may want a larger workspace than the default did
    size_t ws = 0;
    if (int st = L.workspace(L.h, p->plan, &ws))
      return fail(LK_EBACKEND, "%s: cusparseLtMatmulGetWorkspace after the search failed with status %d", fn, st);
    if (ws > p->ws_bytes) {
      cudaFree(p->ws);
      p->ws = nullptr;
      p->ws_bytes = 0;
      if (cudaMalloc(&p->ws, ws)) return fail(LK_ENOMEM, "%s: cannot allocate a %zu-byte workspace", fn, ws);
      p->ws_bytes = ws;
    }
  }
  int st = L.matmul(L.h, p->plan, &one, s->compressed, x, &zero, d, d, p->ws, nullptr, 0);
  if (st) return fail(LK_EBACKEND, "%s: cusparseLtMatmul failed with status %d", fn, st);
  return LK_OK;
}

// y[rows[i], j] = d[j, i] for i < m, j < n (d row-major n × ldd): a tiled transpose-scatter
__global__ void scatter_t(const bf16* d, int ldd, int m, int n, const int* rows, bf16* y) {
  __shared__ bf16 tile[32][33];
  const int i0 = blockIdx.x * 32, j0 = blockIdx.y * 32;
  for (int t = threadIdx.y; t < 32; t += blockDim.y) {
    int j = j0 + t, i = i0 + threadIdx.x;
    if (j < n && i < m) tile[t][threadIdx.x] = d[(size_t)j * ldd + i];
  }
  __syncthreads();
  for (int t = threadIdx.y; t < 32; t += blockDim.y) {
    int i = i0 + t, j = j0 + threadIdx.x;
    if (i < m && j < n) y[(size_t)(rows ? rows[i] : i) * n + j] = tile[threadIdx.x][t];
  }
}

extern "C" int32_t lk_cuda_sp24_matmul(int32_t id, int32_t hx, int32_t m, int32_t hy) {
  const char* fn = "lk_cuda_sp24_matmul";
  Sp24* s = sp24_get(id);
  if (!s) return fail(LK_EHANDLE, "%s: %d is not a live 2:4 weight", fn, id);
  if (m < 0) return fail(LK_ESHAPE, "%s: m=%d, expected >= 0", fn, m);
  void *x, *y;
  if (int32_t st = get(fn, "x", hx, 4, (double)m * s->k, &x)) return st;
  if (int32_t st = get(fn, "y", hy, 4, (double)m * s->n, &y)) return st;
  if (m == 0) return LK_OK;
  const int mp = sp24_padded(m);
  bf16 *xp = nullptr, *d = nullptr;
  auto done = [&](int32_t st) {
    cudaFree(xp);
    cudaFree(d);
    return st;
  };
  if (cudaMalloc(&xp, sizeof(bf16) * (size_t)mp * s->k) || cudaMalloc(&d, sizeof(bf16) * (size_t)s->n * mp))
    return done(fail(LK_ENOMEM, "%s: cannot allocate %d padded token rows", fn, mp));
  CUDA_TRY(fn, cudaMemset(xp, 0, sizeof(bf16) * (size_t)mp * s->k));
  CUDA_TRY(fn, cudaMemcpy(xp, x, sizeof(bf16) * (size_t)m * s->k, cudaMemcpyDeviceToDevice));
  if (int32_t st = sp24_run(fn, s, xp, mp, d)) return done(st);
  scatter_t<<<dim3((m + 31) / 32, (s->n + 31) / 32), dim3(32, 8)>>>(d, mp, m, s->n, nullptr, (bf16*)y);
  if (int32_t st = launched(fn)) return done(st);
  CUDA_TRY(fn, cudaDeviceSynchronize());
  return done(LK_OK);
}

// ---- bitmap weights: the compressed form of unstructured experts on the device
// A bitmap weight W[rows, cols]: bits (u8, rows × ⌈cols/8⌉, bit q of byte b of a row marks column
// 8b + q), rowptr (i32, rows + 1 offsets into val) and val (bf16, the stored values row by row), as
// lib/kernels/spmm_bitmap.ts holds it. Experts keep this form on the device and are unpacked into
// one dense scratch just before their product.

// out[r, :] = row r of the bitmap, one warp per row and one byte (8 columns) per lane per step; the
// lanes' value offsets come from a warp scan of their bytes' bit counts. Every read of val stays
// inside [rowptr[r], rowptr[r + 1]) ⊆ [0, nval); a row whose bits and offsets disagree is written
// as far as it can be and reported through bad (min over (tag << 32 | row)).
__global__ void bitmap_to_dense(const unsigned char* bits, const int* rowptr, const bf16* val, size_t nval, int rows,
                                int cols, bf16* out, unsigned long long tag, unsigned long long* bad) {
  const int lane = threadIdx.x & 31, rb = (cols + 7) >> 3;
  const size_t warps = (size_t)gridDim.x * blockDim.x >> 5;
  // r is the same for the 32 lanes of a warp, so the shuffles below always have the whole warp
  for (size_t rw = (blockIdx.x * (size_t)blockDim.x + threadIdx.x) >> 5; rw < (size_t)rows; rw += warps) {
    const int r = (int)rw;
    const long long lo = rowptr[r], hi = rowptr[r + 1];
    const bool sane = lo >= 0 && lo <= hi && (unsigned long long)hi <= nval;
    const unsigned char* br = bits + (size_t)r * rb;
    bf16* orow = out + (size_t)r * cols;
    long long base = lo;
    for (int b0 = 0; b0 < rb; b0 += 32) {
      const int b = b0 + lane;
      const unsigned v = b < rb ? br[b] : 0u;
      const int c = __popc(v);
      int inc = c;
      for (int s = 1; s < 32; s <<= 1) {
        const int t = __shfl_up_sync(0xffffffffu, inc, s);
        if (lane >= s) inc += t;
      }
      long long pos = base + inc - c;
      union {
        uint4 u;
        unsigned short h[8];
      } pk;
      for (int q = 0; q < 8; q++) {
        bf16 x = __float2bfloat16(0.0f);
        if ((v >> q) & 1u) {
          if (sane && pos < hi) x = val[pos];
          pos++;
        }
        pk.h[q] = __bfloat16_as_ushort(x);
      }
      if (b < rb) {
        if ((cols & 7) == 0) {  // 16-byte aligned: the row starts at a multiple of 8 columns
          *(uint4*)(orow + (size_t)b * 8) = pk.u;
        } else {
          for (int q = 0; q < 8 && b * 8 + q < cols; q++) orow[b * 8 + q] = __ushort_as_bfloat16(pk.h[q]);
        }
      }
      base += __shfl_sync(0xffffffffu, inc, 31);
    }
    if (lane == 0 && (!sane || base != hi)) atomicMin(bad, tag << 32 | (unsigned long long)r);
  }
}

// Looks up the three buffers of a bitmap weight of rows × cols.
static int32_t bitmap_get(const char* fn, const char* what, int32_t hb, int32_t hr, int32_t hv, int rows, int cols,
                          const unsigned char** bits, const int** rowptr, const bf16** val, size_t* nval) {
  void *b, *r, *v;
  char name[64];
  snprintf(name, sizeof name, "%s bits", what);
  if (int32_t st = get(fn, name, hb, 3, (double)rows * ((cols + 7) / 8), &b)) return st;
  snprintf(name, sizeof name, "%s rowptr", what);
  if (int32_t st = get(fn, name, hr, 2, (double)rows + 1, &r)) return st;
  snprintf(name, sizeof name, "%s values", what);
  if (int32_t st = get(fn, name, hv, 4, 0, &v)) return st;
  *bits = (const unsigned char*)b;
  *rowptr = (const int*)r;
  *val = (const bf16*)v;
  *nval = lookup(hv)->len;
  return LK_OK;
}

static int32_t bitmap_bad(const char* fn, unsigned long long bad, bool tagged) {
  if (bad == ~0ull) return LK_OK;
  const int row = (int)(bad & 0xffffffffull), tag = (int)(bad >> 32);
  char who[48] = "";
  if (tagged) snprintf(who, sizeof who, "expert %d: ", tag);
  return fail(LK_EARG, "%s: %srow %d's set bits do not match its rowptr span (or the span leaves the values)", fn,
              who, row);
}

extern "C" int32_t lk_cuda_bitmap_dense_bf16(int32_t hbits, int32_t hrowptr, int32_t hval, int32_t rows,
                                             int32_t cols, int32_t hout) {
  const char* fn = "lk_cuda_bitmap_dense_bf16";
  if (rows < 0 || cols < 1) return fail(LK_ESHAPE, "%s: rows=%d cols=%d, expected rows >= 0, cols >= 1", fn, rows, cols);
  const unsigned char* bits;
  const int* rowptr;
  const bf16* val;
  size_t nval;
  void* out;
  if (int32_t st = bitmap_get(fn, "w", hbits, hrowptr, hval, rows, cols, &bits, &rowptr, &val, &nval)) return st;
  if (int32_t st = get(fn, "out", hout, 4, (double)rows * cols, &out)) return st;
  if (rows == 0) return LK_OK;
  unsigned long long* bad = nullptr;
  unsigned long long hb = ~0ull;
  if (cudaMalloc(&bad, sizeof hb)) return fail(LK_ENOMEM, "%s: cannot allocate a flag", fn);
  auto done = [&](int32_t st) {
    cudaFree(bad);
    return st;
  };
  if (cudaMemcpy(bad, &hb, sizeof hb, cudaMemcpyHostToDevice)) return done(fail(LK_EBACKEND, "%s: flag upload failed", fn));
  bitmap_to_dense<<<blocks_for((size_t)rows * 32, 256), 256>>>(bits, rowptr, val, nval, rows, cols, (bf16*)out, 0, bad);
  if (int32_t st = launched(fn)) return done(st);
  if (cudaMemcpy(&hb, bad, sizeof hb, cudaMemcpyDeviceToHost)) return done(fail(LK_EBACKEND, "%s: flag download failed", fn));
  return done(bitmap_bad(fn, hb, false));
}

// ---- the routed layer
// labels[t] = argmin_c ‖z_t − zoff − cent_c‖², or without centroids (cent null, r = e: z holds one
// linear score per cluster) argmax_c z_tc − zoff_c; ties to the lower c; counts[c] += 1
__global__ void nearest_centroid(const float* z, const float* zoff, const float* cent, int m, int r, int e,
                                 int* labels, int* counts) {
  const int t = blockIdx.x * blockDim.x + threadIdx.x;
  if (t >= m) return;
  const float* zt = z + (size_t)t * r;
  int best = 0;
  float bd = 0;
  if (!cent) {
    for (int c = 0; c < e; c++) {
      const float s = zt[c] - zoff[c];
      if (c == 0 || s > bd) bd = s, best = c;
    }
    labels[t] = best;
    atomicAdd(&counts[best], 1);
    return;
  }
  for (int c = 0; c < e; c++) {
    float s = 0;
    for (int j = 0; j < r; j++) {
      float v = zt[j] - zoff[j] - cent[(size_t)c * r + j];
      s = fmaf(v, v, s);
    }
    if (c == 0 || s < bd) bd = s, best = c;
  }
  labels[t] = best;
  atomicAdd(&counts[best], 1);
}

// perm[off[c] + slot] = t for each token t of cluster c (slots taken atomically)
__global__ void group_tokens(const int* labels, int m, const int* off, int* cursor, int* perm) {
  const int t = blockIdx.x * blockDim.x + threadIdx.x;
  if (t >= m) return;
  const int c = labels[t];
  perm[off[c] + atomicAdd(&cursor[c], 1)] = t;
}

// xs[i, :] = x[rows[i], :] for i < m, zero for m <= i < mp (bf16, d columns)
__global__ void gather_rows(const bf16* x, int d, const int* rows, int m, int mp, bf16* xs) {
  const size_t len = (size_t)mp * d;
  for (size_t t = blockIdx.x * (size_t)blockDim.x + threadIdx.x; t < len; t += (size_t)gridDim.x * blockDim.x) {
    const int i = (int)(t / d);
    xs[t] = i < m ? x[(size_t)rows[i] * d + t % d] : __float2bfloat16(0.0f);
  }
}

// y[rows[i], :] = ys[i, :] for i < m (bf16, n columns)
__global__ void scatter_rows(const bf16* ys, int n, const int* rows, int m, bf16* y) {
  const size_t len = (size_t)m * n;
  for (size_t t = blockIdx.x * (size_t)blockDim.x + threadIdx.x; t < len; t += (size_t)gridDim.x * blockDim.x)
    y[(size_t)rows[t / n] * n + t % n] = ys[t];
}

// Growable device scratch reused across calls (the routed layer runs once per projection).
struct Scratch {
  void* p = nullptr;
  size_t bytes = 0;
  int32_t want(size_t b) {
    if (b <= bytes) return LK_OK;
    cudaFree(p);
    p = nullptr;
    bytes = 0;
    if (cudaMalloc(&p, b)) return LK_ENOMEM;
    bytes = b;
    return LK_OK;
  }
};
static Scratch rs_x, rs_d, rs_small, rs_w;

extern "C" int32_t lk_cuda_routed_bf16(int32_t hx, int32_t m, int32_t d, int32_t hcomp, int32_t r, int32_t hzoff,
                                       int32_t hcent, int32_t e, const int32_t* experts, double experts_len,
                                       int32_t form, int32_t n, int32_t hy, int32_t hlabels) {
  const char* fn = "lk_cuda_routed_bf16";
  if (m < 0 || d < 1 || r < 1 || e < 1 || n < 1)
    return fail(LK_ESHAPE, "%s: m=%d d=%d r=%d e=%d n=%d, expected m >= 0 and the rest >= 1", fn, m, d, r, e, n);
  if (form < 0 || form > 2)
    return fail(LK_EARG, "%s: form=%d, expected 0 (dense), 1 (2:4) or 2 (bitmap)", fn, form);
  const int per = form == 2 ? 3 : 1;  // handles per expert
  if (!(experts_len >= (double)per * e))
    return fail(LK_ESHAPE, "%s: %.0f expert handles given for %d clusters, expected %d", fn, experts_len, e, per * e);
  void *x, *comp, *zoff, *cent, *y, *labels;
  if (int32_t st = get(fn, "x", hx, 4, (double)m * d, &x)) return st;
  if (int32_t st = get(fn, "components", hcomp, 4, (double)r * d, &comp)) return st;
  if (int32_t st = get(fn, "zoff", hzoff, 0, r, &zoff)) return st;
  if (hcent == 0) {  // no centroids: the components are the router's e score weights
    if (r != e)
      return fail(LK_EARG, "%s: without centroids the %d components must be the %d clusters' score weights", fn, r, e);
    cent = nullptr;
  } else if (int32_t st = get(fn, "centroids", hcent, 0, (double)e * r, &cent)) {
    return st;
  }
  if (int32_t st = get(fn, "y", hy, 4, (double)m * n, &y)) return st;
  if (int32_t st = get(fn, "labels", hlabels, 2, m, &labels)) return st;
  const bool sparse = form == 1;
  std::vector<void*> w((size_t)e);
  std::vector<Sp24*> sw((size_t)e);
  struct Bm {
    const unsigned char* bits;
    const int* rowptr;
    const bf16* val;
    size_t nval;
  };
  std::vector<Bm> bm((size_t)e);
  for (int c = 0; c < e; c++) {
    if (form == 2) {
      char what[32];
      snprintf(what, sizeof what, "expert %d", c);
      Bm& b = bm[c];
      if (int32_t st = bitmap_get(fn, what, experts[3 * c], experts[3 * c + 1], experts[3 * c + 2], n, d, &b.bits,
                                  &b.rowptr, &b.val, &b.nval))
        return st;
    } else if (sparse) {
      sw[c] = sp24_get(experts[c]);
      if (!sw[c]) return fail(LK_EHANDLE, "%s: expert %d is %d, not a live 2:4 weight", fn, c, experts[c]);
      if (sw[c]->n != n || sw[c]->k != d)
        return fail(LK_ESHAPE, "%s: expert %d is %d×%d, expected %d×%d", fn, c, sw[c]->n, sw[c]->k, n, d);
    } else if (int32_t st = get(fn, "expert", experts[c], 4, (double)n * d, &w[c])) {
      return st;
    }
  }
  if (int32_t st = need_blas(fn)) return st;
  if (sparse)
    if (int32_t st = need_lt(fn)) return st;
  if (m == 0) return LK_OK;
  // small buffers: the bitmap flag (8 bytes), z (m×r f32), counts/offsets/cursors (3e ints), perm
  // (m ints)
  const size_t zb = sizeof(float) * (size_t)m * r, ib = sizeof(int) * (3 * (size_t)e + m);
  if (rs_small.want(8 + zb + ib)) return fail(LK_ENOMEM, "%s: cannot allocate the routing buffers", fn);
  unsigned long long* bad = (unsigned long long*)rs_small.p;
  float* z = (float*)((char*)rs_small.p + 8);
  int* counts = (int*)((char*)rs_small.p + 8 + zb);
  int *off = counts + e, *cursor = off + e, *perm = cursor + e;
  // z = x · componentsᵀ in f32 (bf16 inputs), then the nearest centroid (or the top score)
  {
    const float one = 1, zero = 0;
    int st = B.gemm_ex(B.h, CUBLAS_OP_T, CUBLAS_OP_N, r, m, d, &one, comp, CUDA_R_16BF, d, x, CUDA_R_16BF, d, &zero,
                       z, CUDA_R_32F, r, CUBLAS_COMPUTE_32F_, CUBLAS_GEMM_DEFAULT_);
    if (st) return fail(LK_EBACKEND, "%s: cublasGemmEx (router projection) failed with status %d", fn, st);
  }
  CUDA_TRY(fn, cudaMemset(counts, 0, sizeof(int) * 3 * (size_t)e));
  nearest_centroid<<<(m + 127) / 128, 128>>>(z, (const float*)zoff, (const float*)cent, m, r, e, (int*)labels, counts);
  if (int32_t st = launched(fn)) return st;
  std::vector<int> hc((size_t)e), ho((size_t)e), hp((size_t)e);
  CUDA_TRY(fn, cudaMemcpy(hc.data(), counts, sizeof(int) * e, cudaMemcpyDeviceToHost));
  size_t maxp = 0;
  for (int c = 0, o = 0; c < e; c++) {
    ho[c] = o;
    o += hc[c];
    hp[c] = sp24_padded(hc[c]);
    if ((size_t)hp[c] > maxp) maxp = hp[c];
  }
  CUDA_TRY(fn, cudaMemcpy(off, ho.data(), sizeof(int) * e, cudaMemcpyHostToDevice));
  group_tokens<<<(m + 127) / 128, 128>>>((const int*)labels, m, off, cursor, perm);
  if (int32_t st = launched(fn)) return st;
  if (rs_x.want(sizeof(bf16) * maxp * d) || rs_d.want(sizeof(bf16) * maxp * n))
    return fail(LK_ENOMEM, "%s: cannot allocate %zu gathered token rows", fn, maxp);
  if (form == 2) {
    if (rs_w.want(sizeof(bf16) * (size_t)n * d))
      return fail(LK_ENOMEM, "%s: cannot allocate the %d×%d expert scratch", fn, n, d);
    CUDA_TRY(fn, cudaMemset(bad, 0xff, 8));
  }
  bf16 *xs = (bf16*)rs_x.p, *ds = (bf16*)rs_d.p;
  for (int c = 0; c < e; c++) {
    if (!hc[c]) continue;
    const int mc = hc[c], mp = sparse ? hp[c] : mc;
    gather_rows<<<blocks_for((size_t)mp * d, 256), 256>>>((const bf16*)x, d, perm + ho[c], mc, mp, xs);
    if (int32_t st = launched(fn)) return st;
    if (sparse) {
      if (int32_t st = sp24_run(fn, sw[c], xs, mp, ds)) return st;  // ds = Wc · xsᵀ (n × mp)
      scatter_t<<<dim3((mc + 31) / 32, (n + 31) / 32), dim3(32, 8)>>>(ds, mp, mc, n, perm + ho[c], (bf16*)y);
    } else {
      const bf16* wc = (const bf16*)w[c];
      if (form == 2) {  // unpack this expert into the scratch, then the dense product
        bitmap_to_dense<<<blocks_for((size_t)n * 32, 256), 256>>>(bm[c].bits, bm[c].rowptr, bm[c].val, bm[c].nval, n,
                                                                  d, (bf16*)rs_w.p, (unsigned long long)c, bad);
        if (int32_t st = launched(fn)) return st;
        wc = (const bf16*)rs_w.p;
      }
      if (int32_t st = gemm_bf16(fn, xs, d, wc, d, true, ds, n, mc, d, n)) return st;
      scatter_rows<<<blocks_for((size_t)mc * n, 256), 256>>>(ds, n, perm + ho[c], mc, (bf16*)y);
    }
    if (int32_t st = launched(fn)) return st;
  }
  if (form == 2) {
    unsigned long long hb = 0;
    CUDA_TRY(fn, cudaMemcpy(&hb, bad, sizeof hb, cudaMemcpyDeviceToHost));
    return bitmap_bad(fn, hb, true);
  }
  return LK_OK;
}
