// CPU stand-ins for the cuBLAS, cuSOLVER and cuSPARSELt entry points that lmkit_cuda.cu loads at run
// time, for the CUDA emulator (cuda_emu.h). They follow the libraries' documented semantics
// (column-major BLAS, only the referenced triangle read, C not read when beta is 0, cuSPARSELt's
// descriptors and 2:4 check), and refuse a matrix whose extent (from its sizes and leading
// dimension) leaves the device allocation it starts in: the mistakes a first GPU run would hit.
// Built as libcublas.so.13, libcusolver.so.12 and libcusparseLt.so.0 beside the emulated library.
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include <algorithm>
#include <vector>

#include "cuda_emu.h"

#define EXPORT extern "C" __attribute__((visibility("default")))
enum { OK = 0, NOT_INITIALIZED = 1, INVALID_VALUE = 7, BAD_POINTER = 14 };

static int refuse(int code, const char* fn, const char* fmt, ...) __attribute__((format(printf, 3, 4)));
static int refuse(int code, const char* fn, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "cuda emulator: %s: ", fn);
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
  return code;
}

// A column-major rows × cols matrix (leading dimension ld) of esize-byte elements on the device?
static bool dev_matrix(const void* p, long rows, long cols, long ld, size_t esize) {
  if (rows <= 0 || cols <= 0) return true;
  if (ld < rows) return false;
  return emu_is_device(p, (size_t)(ld * (cols - 1) + rows) * esize);
}
#define NEED_MATRIX(fn, name, p, rows, cols, ld, esize)                                                    \
  if (!dev_matrix(p, rows, cols, ld, esize))                                                             \
    return refuse(BAD_POINTER, fn, "%s (%ld×%ld, ld %ld) is not inside one device allocation", name, \
                  (long)(rows), (long)(cols), (long)(ld));

static int handle_magic = 0x1b1a5;
EXPORT int cublasCreate_v2(void** h) {
  *h = &handle_magic;
  return OK;
}
EXPORT int cusolverDnCreate(void** h) {
  *h = &handle_magic;
  return OK;
}

// element (i, j) of column-major op(X) where X is stored with leading dimension ld
template <typename T>
static inline double at(const T* x, long ld, bool trans, long i, long j) {
  return (double)(trans ? x[i * ld + j] : x[j * ld + i]);
}
static inline double bf(const __nv_bfloat16* x, long ld, bool trans, long i, long j) {
  return (double)__bfloat162float(trans ? x[i * ld + j] : x[j * ld + i]);
}

template <typename T>
static int gemm(const char* fn, int ta, int tb, int m, int n, int k, const T* alpha, const T* a, int lda, const T* b,
                int ldb, const T* beta, T* c, int ldc) {
  if (m < 0 || n < 0 || k < 0 || (ta != 0 && ta != 1) || (tb != 0 && tb != 1))
    return refuse(INVALID_VALUE, fn, "m=%d n=%d k=%d ta=%d tb=%d", m, n, k, ta, tb);
  if (m == 0 || n == 0) return OK;
  NEED_MATRIX(fn, "A", a, ta ? k : m, ta ? m : k, lda, sizeof(T));
  NEED_MATRIX(fn, "B", b, tb ? n : k, tb ? k : n, ldb, sizeof(T));
  NEED_MATRIX(fn, "C", c, m, n, ldc, sizeof(T));
  // op(A) copied column by column, then four columns of C at a time as sums of A's columns,
  // accumulated in T (cuBLAS's sgemm accumulates in f32 too)
  std::vector<T> ac((size_t)m * k), col((size_t)m * 4);
  for (long q = 0; q < k; q++)
    for (long i = 0; i < m; i++) ac[(size_t)q * m + i] = (T)at(a, lda, ta, i, q);
  for (long j0 = 0; j0 < n; j0 += 4) {
    const long nj = n - j0 < 4 ? n - j0 : 4;
    std::fill(col.begin(), col.end(), T(0));
    T* c0 = &col[0];
    T *c1 = c0 + m, *c2 = c1 + m, *c3 = c2 + m;
    for (long q = 0; q < k; q++) {
      const T* aq = &ac[(size_t)q * m];
      T bq[4] = {0, 0, 0, 0};
      for (long jj = 0; jj < nj; jj++) bq[jj] = (T)at(b, ldb, tb, q, j0 + jj);
      for (long i = 0; i < m; i++) {  // one load of A feeds four columns
        const T v = aq[i];
        c0[i] += v * bq[0];
        c1[i] += v * bq[1];
        c2[i] += v * bq[2];
        c3[i] += v * bq[3];
      }
    }
    for (long jj = 0; jj < nj; jj++)
      for (long i = 0; i < m; i++) {
        T* cij = c + (j0 + jj) * ldc + i;
        *cij = (T)(*alpha * col[(size_t)jj * m + i] + (*beta == 0 ? T(0) : *beta * *cij));
      }
  }
  return OK;
}
EXPORT int cublasSgemm_v2(void*, int ta, int tb, int m, int n, int k, const float* alpha, const float* a, int lda,
                          const float* b, int ldb, const float* beta, float* c, int ldc) {
  return gemm("cublasSgemm", ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
EXPORT int cublasDgemm_v2(void*, int ta, int tb, int m, int n, int k, const double* alpha, const double* a, int lda,
                          const double* b, int ldb, const double* beta, double* c, int ldc) {
  return gemm("cublasDgemm", ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

// C = alpha·op(A)·op(A)ᵀ + beta·C on the uplo triangle only (0 lower, 1 upper); op N: A is n × k
template <typename T>
static int syrk(const char* fn, int uplo, int trans, int n, int k, const T* alpha, const T* a, int lda, const T* beta,
                T* c, int ldc) {
  if (n < 0 || k < 0 || (uplo != 0 && uplo != 1) || (trans != 0 && trans != 1))
    return refuse(INVALID_VALUE, fn, "n=%d k=%d uplo=%d trans=%d", n, k, uplo, trans);
  if (n == 0) return OK;
  if (k > 0) NEED_MATRIX(fn, "A", a, trans ? k : n, trans ? n : k, lda, sizeof(T));
  NEED_MATRIX(fn, "C", c, n, n, ldc, sizeof(T));
  for (long j = 0; j < n; j++)
    for (long i = uplo == 0 ? j : 0; i < (uplo == 0 ? n : j + 1); i++) {
      double s = 0;
      for (long q = 0; q < k; q++) s += at(a, lda, trans, i, q) * at(a, lda, trans, j, q);
      T* cij = c + j * ldc + i;
      *cij = (T)(*alpha * s + (*beta == 0 ? 0.0 : *beta * (double)*cij));
    }
  return OK;
}
EXPORT int cublasSsyrk_v2(void*, int uplo, int trans, int n, int k, const float* alpha, const float* a, int lda,
                          const float* beta, float* c, int ldc) {
  return syrk("cublasSsyrk", uplo, trans, n, k, alpha, a, lda, beta, c, ldc);
}
EXPORT int cublasDsyrk_v2(void*, int uplo, int trans, int n, int k, const double* alpha, const double* a, int lda,
                          const double* beta, double* c, int ldc) {
  return syrk("cublasDsyrk", uplo, trans, n, k, alpha, a, lda, beta, c, ldc);
}

// op(A)·X = alpha·B, X over B; side left only; A m × m triangular, only its uplo triangle read
EXPORT int cublasDtrsm_v2(void*, int side, int uplo, int trans, int diag, int m, int n, const double* alpha,
                          const double* a, int lda, double* b, int ldb) {
  const char* fn = "cublasDtrsm";
  if (side != 0 || (uplo != 0 && uplo != 1) || (trans != 0 && trans != 1) || (diag != 0 && diag != 1) || m < 0 ||
      n < 0)
    return refuse(INVALID_VALUE, fn, "side=%d uplo=%d trans=%d diag=%d m=%d n=%d (the emulator does side left)", side,
                  uplo, trans, diag, m, n);
  if (m == 0 || n == 0) return OK;
  NEED_MATRIX(fn, "A", a, m, m, lda, 8);
  NEED_MATRIX(fn, "B", b, m, n, ldb, 8);
  // op(A) is upper when (uplo upper) xor trans
  const bool upper = (uplo == 1) != (trans == 1);
  auto opa = [&](long i, long j) {  // only the stored triangle is read
    long r = trans ? j : i, c = trans ? i : j;
    return a[c * lda + r];
  };
  for (long col = 0; col < n; col++) {
    double* x = b + col * ldb;
    for (long i = 0; i < m; i++) x[i] *= *alpha;
    if (upper) {
      for (long i = m - 1; i >= 0; i--) {
        double s = x[i];
        for (long j = i + 1; j < m; j++) s -= opa(i, j) * x[j];
        x[i] = diag ? s : s / opa(i, i);
      }
    } else {
      for (long i = 0; i < m; i++) {
        double s = x[i];
        for (long j = 0; j < i; j++) s -= opa(i, j) * x[j];
        x[i] = diag ? s : s / opa(i, i);
      }
    }
  }
  return OK;
}

EXPORT int cublasGemmEx(void*, int ta, int tb, int m, int n, int k, const void* alpha, const void* a, int atype, int lda,
                        const void* b, int btype, int ldb, const void* beta, void* c, int ctype, int ldc, int compute,
                        int algo) {
  const char* fn = "cublasGemmEx";
  (void)algo;
  if (compute != 68) return refuse(INVALID_VALUE, fn, "compute type %d (the emulator does CUBLAS_COMPUTE_32F = 68)", compute);
  if (atype != CUDA_R_16BF || btype != CUDA_R_16BF || (ctype != CUDA_R_16BF && ctype != CUDA_R_32F))
    return refuse(INVALID_VALUE, fn, "types A %d, B %d, C %d (the emulator does bf16 inputs, bf16 or f32 output)", atype,
                  btype, ctype);
  if (m < 0 || n < 0 || k < 0 || (ta != 0 && ta != 1) || (tb != 0 && tb != 1))
    return refuse(INVALID_VALUE, fn, "m=%d n=%d k=%d ta=%d tb=%d", m, n, k, ta, tb);
  if (m == 0 || n == 0) return OK;
  const size_t ce = ctype == CUDA_R_32F ? 4 : 2;
  NEED_MATRIX(fn, "A", a, ta ? k : m, ta ? m : k, lda, 2);
  NEED_MATRIX(fn, "B", b, tb ? n : k, tb ? k : n, ldb, 2);
  NEED_MATRIX(fn, "C", c, m, n, ldc, ce);
  const float al = *(const float*)alpha, be = *(const float*)beta;
  const __nv_bfloat16 *A = (const __nv_bfloat16*)a, *B = (const __nv_bfloat16*)b;
  // op(A) in f32 column by column; each column of C accumulated in f32 over q in order
  std::vector<float> ac((size_t)m * k), col((size_t)m);
  for (long q = 0; q < k; q++)
    for (long i = 0; i < m; i++) ac[(size_t)q * m + i] = (float)bf(A, lda, ta, i, q);
  for (long j = 0; j < n; j++) {
    std::fill(col.begin(), col.end(), 0.0f);
    for (long q = 0; q < k; q++) {
      const float bq = (float)bf(B, ldb, tb, q, j), *aq = &ac[(size_t)q * m];
      for (long i = 0; i < m; i++) col[i] = fmaf(aq[i], bq, col[i]);
    }
    for (long i = 0; i < m; i++) {
      if (ce == 4) {
        float* cij = (float*)c + j * ldc + i;
        *cij = al * col[i] + (be == 0 ? 0.0f : be * *cij);
      } else {
        __nv_bfloat16* cij = (__nv_bfloat16*)c + j * ldc + i;
        *cij = __float2bfloat16(al * col[i] + (be == 0 ? 0.0f : be * __bfloat162float(*cij)));
      }
    }
  }
  return OK;
}

// ---------------------------------------------------------------- cuSOLVER
EXPORT int cusolverDnDpotrf_bufferSize(void*, int uplo, int n, double* a, int lda, int* lwork) {
  (void)uplo;
  (void)a;
  (void)lda;
  *lwork = n > 0 ? n : 1;
  return OK;
}

// A = Uᵀ·U (uplo upper) or L·Lᵀ (lower), column-major, factor over its triangle; *info (device) is 0
// or the order of the first leading minor that is not positive definite
EXPORT int cusolverDnDpotrf(void*, int uplo, int n, double* a, int lda, double* work, int lwork, int* info) {
  const char* fn = "cusolverDnDpotrf";
  if ((uplo != 0 && uplo != 1) || n < 0) return refuse(INVALID_VALUE, fn, "uplo=%d n=%d", uplo, n);
  if (!emu_is_device(info, sizeof(int))) return refuse(BAD_POINTER, fn, "info is not a device int");
  if (n == 0) return *info = 0, OK;
  NEED_MATRIX(fn, "A", a, n, n, lda, 8);
  if (lwork < n || !emu_is_device(work, (size_t)lwork * 8))
    return refuse(BAD_POINTER, fn, "the workspace is not %d device doubles", lwork);
  // factor the upper triangle as Uᵀ·U: U(i,j) at a[j*lda + i], i <= j (lower: the transpose)
  auto u = [&](long i, long j) -> double& { return uplo == 1 ? a[j * lda + i] : a[i * lda + j]; };
  for (long j = 0; j < n; j++) {
    double d = u(j, j);
    for (long q = 0; q < j; q++) d -= u(q, j) * u(q, j);
    if (!(d > 0)) return *info = (int)j + 1, OK;
    d = sqrt(d);
    u(j, j) = d;
    for (long c = j + 1; c < n; c++) {
      double s = u(j, c);
      for (long q = 0; q < j; q++) s -= u(q, j) * u(q, c);
      u(j, c) = s / d;
    }
  }
  *info = 0;
  return OK;
}

// ---------------------------------------------------------------- cuSPARSELt
// The caller's opaque structs hold these. The "compressed" 2:4 matrix is a header and the dense
// pruned values, which is all a CPU product needs.
enum { LT_OK = 0, LT_NOT_INIT = 1, LT_INVALID = 3, LT_NOT_SUPPORTED = 10 };
enum { MAGIC_HANDLE = 0x17a11d1e, MAGIC_MAT = 0x17a1da7a, MAGIC_MM = 0x17a1b1a5, MAGIC_ALG = 0x17a1a160,
       MAGIC_PLAN = 0x17a1b1a9, MAGIC_COMP = 0x17a1c0b1 };
struct Mat {
  int magic;
  int64_t rows, cols, ld;
  int order, type, structured;  // order 1 column, 2 row
};
struct Mm {
  int magic, opA, opB;
  Mat a, b, c, d;
};
// attributes 0 CONFIG_ID, 1 CONFIG_MAX_ID, 2 SEARCH_ITERATIONS, 3 SPLIT_K, 4 SPLIT_K_MODE,
// 5 SPLIT_K_BUFFERS (cusparseLtMatmulAlgAttribute_t), all int
struct Alg {
  int magic;
  Mm mm;
  int attr[6];
};
struct Plan {
  int magic;
  Mm mm;
  Alg* alg;  // the selection it was made from: a search writes its choice there
};
// Searches run so far, and the configuration the last product ran with (tests read them to see a
// search's choice reused, not repeated)
static int lt_searches = 0, lt_last_config = -1;
EXPORT int emu_lt_searches() { return lt_searches; }
EXPORT int emu_lt_last_config() { return lt_last_config; }
struct CompHeader {
  int magic;
  int64_t rows, cols;
  char pad[256 - 24];
};

static bool handle_ok(const void* h) { return h && *(const int*)h == MAGIC_HANDLE; }
EXPORT int cusparseLtInit(void* h) {
  *(int*)h = MAGIC_HANDLE;
  return LT_OK;
}
EXPORT int cusparseLtGetVersion(const void* h, int* v) {
  if (!handle_ok(h)) return LT_NOT_INIT;
  *v = 801;
  return LT_OK;
}
static int mat_init(const char* fn, const void* h, void* d, int64_t rows, int64_t cols, int64_t ld, uint32_t align,
                    int type, int order, int structured) {
  if (!handle_ok(h)) return LT_NOT_INIT;
  if (rows < 1 || cols < 1 || align != 16 || type != CUDA_R_16BF || (order != 1 && order != 2) ||
      ld < (order == 2 ? cols : rows))
    return refuse(LT_INVALID, fn, "rows=%lld cols=%lld ld=%lld align=%u type=%d order=%d", (long long)rows,
                  (long long)cols, (long long)ld, align, type, order);
  if (rows % 16 || cols % 16 || (structured && (rows % 32 || cols % 32)))
    return refuse(LT_INVALID, fn, "%lld×%lld: sizes must be multiples of %d", (long long)rows, (long long)cols,
                  structured ? 32 : 16);
  Mat m{MAGIC_MAT, rows, cols, ld, order, type, structured};
  memcpy(d, &m, sizeof m);
  return LT_OK;
}
EXPORT int cusparseLtDenseDescriptorInit(const void* h, void* d, int64_t rows, int64_t cols, int64_t ld, uint32_t align,
                                         int type, int order) {
  return mat_init("cusparseLtDenseDescriptorInit", h, d, rows, cols, ld, align, type, order, 0);
}
EXPORT int cusparseLtStructuredDescriptorInit(const void* h, void* d, int64_t rows, int64_t cols, int64_t ld,
                                              uint32_t align, int type, int order, int sparsity) {
  if (sparsity != 0) return refuse(LT_INVALID, "cusparseLtStructuredDescriptorInit", "sparsity %d", sparsity);
  return mat_init("cusparseLtStructuredDescriptorInit", h, d, rows, cols, ld, align, type, order, 1);
}
static bool mat_ok(const void* d) { return d && ((const Mat*)d)->magic == MAGIC_MAT; }
EXPORT int cusparseLtMatDescriptorDestroy(const void* d) {
  if (!mat_ok(d)) return refuse(LT_INVALID, "cusparseLtMatDescriptorDestroy", "not a live descriptor");
  ((Mat*)d)->magic = 0;
  return LT_OK;
}
// rows and columns of op(X)
static int64_t op_rows(const Mat& m, int op) { return op ? m.cols : m.rows; }
static int64_t op_cols(const Mat& m, int op) { return op ? m.rows : m.cols; }
EXPORT int cusparseLtMatmulDescriptorInit(const void* h, void* mm, int opA, int opB, const void* a, const void* b,
                                          const void* c, const void* d, int compute) {
  const char* fn = "cusparseLtMatmulDescriptorInit";
  if (!handle_ok(h)) return LT_NOT_INIT;
  if (!mat_ok(a) || !mat_ok(b) || !mat_ok(c) || !mat_ok(d)) return refuse(LT_INVALID, fn, "a descriptor is not live");
  const Mat &A = *(const Mat*)a, &B = *(const Mat*)b, &C = *(const Mat*)c, &D = *(const Mat*)d;
  if (compute != 2) return refuse(LT_INVALID, fn, "compute type %d, expected CUSPARSE_COMPUTE_32F (2)", compute);
  if ((opA != 0 && opA != 1) || (opB != 0 && opB != 1) || !A.structured || B.structured || C.structured)
    return refuse(LT_INVALID, fn, "opA=%d opB=%d (the emulator does a structured A)", opA, opB);
  const int64_t m = op_rows(A, opA), k = op_cols(A, opA), n = op_cols(B, opB);
  if (op_rows(B, opB) != k || C.rows != m || C.cols != n || D.rows != m || D.cols != n || C.order != D.order)
    return refuse(LT_INVALID, fn, "op(A) %lld×%lld, op(B) %lld×%lld, C %lld×%lld, D %lld×%lld do not fit",
                  (long long)m, (long long)k, (long long)op_rows(B, opB), (long long)n, (long long)C.rows,
                  (long long)C.cols, (long long)D.rows, (long long)D.cols);
  if (getenv("LMKIT_EMU_LT_REFUSE_OPB_T") && opB == 1) return LT_NOT_SUPPORTED;
  Mm x{MAGIC_MM, opA, opB, A, B, C, D};
  memcpy(mm, &x, sizeof x);
  return LT_OK;
}
EXPORT int cusparseLtMatmulAlgSelectionInit(const void* h, void* alg, const void* mm, int which) {
  if (!handle_ok(h)) return LT_NOT_INIT;
  if (!mm || ((const Mm*)mm)->magic != MAGIC_MM || which != 0)
    return refuse(LT_INVALID, "cusparseLtMatmulAlgSelectionInit", "not a live matmul descriptor");
  Alg x{MAGIC_ALG, *(const Mm*)mm, {0, 3, 5, 1, 0, 1}};
  memcpy(alg, &x, sizeof x);
  return LT_OK;
}
static int alg_attr(const char* fn, const void* h, const void* alg, int attr, size_t size, bool set) {
  if (!handle_ok(h)) return LT_NOT_INIT;
  if (!alg || ((const Alg*)alg)->magic != MAGIC_ALG) return refuse(LT_INVALID, fn, "not a live selection");
  if (attr < 0 || attr > 5 || size != sizeof(int) || (set && attr == 1))
    return refuse(LT_INVALID, fn, "attribute %d with %zu bytes", attr, size);
  return LT_OK;
}
EXPORT int cusparseLtMatmulAlgGetAttribute(const void* h, const void* alg, int attr, void* data, size_t size) {
  if (int st = alg_attr("cusparseLtMatmulAlgGetAttribute", h, alg, attr, size, false)) return st;
  memcpy(data, &((const Alg*)alg)->attr[attr], sizeof(int));
  return LT_OK;
}
EXPORT int cusparseLtMatmulAlgSetAttribute(const void* h, void* alg, int attr, const void* data, size_t size) {
  if (int st = alg_attr("cusparseLtMatmulAlgSetAttribute", h, alg, attr, size, true)) return st;
  int v;
  memcpy(&v, data, sizeof v);
  if (attr == 0 && (v < 0 || v >= ((Alg*)alg)->attr[1]))
    return refuse(LT_INVALID, "cusparseLtMatmulAlgSetAttribute", "config %d of %d", v, ((Alg*)alg)->attr[1]);
  ((Alg*)alg)->attr[attr] = v;
  return LT_OK;
}
EXPORT int cusparseLtMatmulAlgSelectionDestroy(const void* alg) {
  if (!alg || ((const Alg*)alg)->magic != MAGIC_ALG)
    return refuse(LT_INVALID, "cusparseLtMatmulAlgSelectionDestroy", "not a live selection");
  ((Alg*)alg)->magic = 0;
  return LT_OK;
}
EXPORT int cusparseLtMatmulPlanInit(const void* h, void* plan, const void* mm, const void* alg) {
  if (!handle_ok(h)) return LT_NOT_INIT;
  if (!mm || ((const Mm*)mm)->magic != MAGIC_MM || !alg || ((const Alg*)alg)->magic != MAGIC_ALG)
    return refuse(LT_INVALID, "cusparseLtMatmulPlanInit", "not a live descriptor and selection");
  Plan x{MAGIC_PLAN, *(const Mm*)mm, (Alg*)alg};
  memcpy(plan, &x, sizeof x);
  return LT_OK;
}
EXPORT int cusparseLtMatmulPlanDestroy(const void* plan) {
  if (!plan || ((const Plan*)plan)->magic != MAGIC_PLAN)
    return refuse(LT_INVALID, "cusparseLtMatmulPlanDestroy", "not a live plan");
  ((Plan*)plan)->magic = 0;
  return LT_OK;
}
static const size_t WORKSPACE = 4096;
EXPORT int cusparseLtMatmulGetWorkspace(const void* h, const void* plan, size_t* bytes) {
  if (!handle_ok(h)) return LT_NOT_INIT;
  if (!plan || ((const Plan*)plan)->magic != MAGIC_PLAN) return LT_INVALID;
  *bytes = WORKSPACE;
  return LT_OK;
}

// element (i, j) of a matrix as its descriptor lays it out
static size_t idx(const Mat& m, int64_t i, int64_t j) {
  return (size_t)(m.order == 2 ? i * m.ld + j : j * m.ld + i);
}
static size_t mat_bytes(const Mat& m) {
  return (size_t)((m.order == 2 ? m.rows : m.cols) - 1) * m.ld * 2 + (size_t)(m.order == 2 ? m.cols : m.rows) * 2;
}

// 0 when every group of 4 consecutive elements along op(A)'s rows holds at most 2 nonzeros
static int not_24(const Mat& m, int op, const __nv_bfloat16* x) {
  const int64_t r = op_rows(m, op), k = op_cols(m, op);
  for (int64_t i = 0; i < r; i++)
    for (int64_t g = 0; g < k; g += 4) {
      int nz = 0;
      for (int64_t q = g; q < g + 4 && q < k; q++) {
        const __nv_bfloat16 v = op ? x[idx(m, q, i)] : x[idx(m, i, q)];
        nz += (__bfloat16_as_ushort(v) & 0x7fff) != 0;
      }
      if (nz > 2) return 1;
    }
  return 0;
}
EXPORT int cusparseLtSpMMAPruneCheck2(const void* h, const void* sd, int is_a, int op, const void* in, int* valid,
                                      cudaStream_t) {
  const char* fn = "cusparseLtSpMMAPruneCheck2";
  if (!handle_ok(h)) return LT_NOT_INIT;
  if (!mat_ok(sd) || !((const Mat*)sd)->structured || is_a != 1 || (op != 0 && op != 1))
    return refuse(LT_INVALID, fn, "not a live structured descriptor, or is_a=%d op=%d", is_a, op);
  const Mat& m = *(const Mat*)sd;
  if (!emu_is_device(in, mat_bytes(m)) || !emu_is_device(valid, sizeof(int)))
    return refuse(LT_INVALID, fn, "the matrix or the flag is not device memory of the described size");
  // as the real check does (seen on an H200): it raises the flag and never clears it
  if (not_24(m, op, (const __nv_bfloat16*)in)) *valid = 1;
  return LT_OK;
}
EXPORT int cusparseLtSpMMACompressedSize2(const void* h, const void* sd, size_t* comp, size_t* buf) {
  if (!handle_ok(h)) return LT_NOT_INIT;
  if (!mat_ok(sd) || !((const Mat*)sd)->structured) return LT_INVALID;
  const Mat& m = *(const Mat*)sd;
  *comp = sizeof(CompHeader) + (size_t)m.rows * m.cols * 2;
  *buf = 512;
  return LT_OK;
}
EXPORT int cusparseLtSpMMACompress2(const void* h, const void* sd, int is_a, int op, const void* in, void* out,
                                    void* buf, cudaStream_t) {
  const char* fn = "cusparseLtSpMMACompress2";
  if (!handle_ok(h)) return LT_NOT_INIT;
  if (!mat_ok(sd) || !((const Mat*)sd)->structured || is_a != 1 || op != 0)
    return refuse(LT_INVALID, fn, "not a live structured descriptor, or is_a=%d op=%d", is_a, op);
  const Mat& m = *(const Mat*)sd;
  const size_t body = (size_t)m.rows * m.cols * 2;
  if (!emu_is_device(in, mat_bytes(m)) || !emu_is_device(out, sizeof(CompHeader) + body) || !emu_is_device(buf, 512))
    return refuse(LT_INVALID, fn, "a buffer is not device memory of the size CompressedSize2 gave");
  if (not_24(m, op, (const __nv_bfloat16*)in)) return refuse(LT_INVALID, fn, "the matrix is not 2:4 sparse");
  CompHeader hd{};
  hd.magic = MAGIC_COMP;
  hd.rows = m.rows;
  hd.cols = m.cols;
  memcpy(out, &hd, sizeof hd);
  __nv_bfloat16* dst = (__nv_bfloat16*)((char*)out + sizeof hd);
  for (int64_t i = 0; i < m.rows; i++)
    for (int64_t j = 0; j < m.cols; j++) dst[i * m.cols + j] = ((const __nv_bfloat16*)in)[idx(m, i, j)];
  return LT_OK;
}
static int lt_matmul(const char* fn, const void* h, const void* plan, const void* alpha, const void* a, const void* b,
                     const void* beta, const void* c, void* d, void* ws, cudaStream_t* streams, int32_t nstreams);
EXPORT int cusparseLtMatmul(const void* h, const void* plan, const void* alpha, const void* a, const void* b,
                            const void* beta, const void* c, void* d, void* ws, cudaStream_t* streams, int32_t nstreams) {
  return lt_matmul("cusparseLtMatmul", h, plan, alpha, a, b, beta, c, d, ws, streams, nstreams);
}
// the search times every algorithm, each writing D, and writes its choice into the selection the
// plan was made from; here every algorithm computes the same, and the "fastest" is config 2 with
// a split-k of 2
EXPORT int cusparseLtMatmulSearch(const void* h, void* plan, const void* alpha, const void* a, const void* b,
                                  const void* beta, const void* c, void* d, void* ws, cudaStream_t* streams,
                                  int32_t nstreams) {
  int st = lt_matmul("cusparseLtMatmulSearch", h, plan, alpha, a, b, beta, c, d, ws, streams, nstreams);
  if (st) return st;
  Alg* alg = ((Plan*)plan)->alg;
  if (!alg || alg->magic != MAGIC_ALG)
    return refuse(LT_INVALID, "cusparseLtMatmulSearch", "the plan's selection was destroyed");
  alg->attr[0] = 2;
  alg->attr[3] = 2;
  lt_searches++;
  return LT_OK;
}
static int lt_matmul(const char* fn, const void* h, const void* plan, const void* alpha, const void* a, const void* b,
                     const void* beta, const void* c, void* d, void* ws, cudaStream_t* streams, int32_t nstreams) {
  if (!handle_ok(h)) return LT_NOT_INIT;
  if (!plan || ((const Plan*)plan)->magic != MAGIC_PLAN) return refuse(LT_INVALID, fn, "not a live plan");
  if (nstreams < 0 || (nstreams > 0 && !streams)) return LT_INVALID;
  const Alg* sel = ((const Plan*)plan)->alg;
  lt_last_config = sel && sel->magic == MAGIC_ALG ? sel->attr[0] : -1;
  const Mm& mm = ((const Plan*)plan)->mm;
  const CompHeader* hd = (const CompHeader*)a;
  if (!emu_is_device(a, sizeof(CompHeader)) || hd->magic != MAGIC_COMP || hd->rows != mm.a.rows || hd->cols != mm.a.cols)
    return refuse(LT_INVALID, fn, "A is not a compressed matrix of the plan's shape");
  if (!emu_is_device(b, mat_bytes(mm.b)) || !emu_is_device(c, mat_bytes(mm.c)) || !emu_is_device(d, mat_bytes(mm.d)))
    return refuse(LT_INVALID, fn, "B, C or D is not device memory of its described size");
  if (!emu_is_device(ws, WORKSPACE)) return refuse(LT_INVALID, fn, "the workspace is not %zu device bytes", WORKSPACE);
  const float al = *(const float*)alpha, be = *(const float*)beta;
  const __nv_bfloat16* A = (const __nv_bfloat16*)((const char*)a + sizeof(CompHeader));  // row-major rows × cols
  const __nv_bfloat16 *B = (const __nv_bfloat16*)b, *C = (const __nv_bfloat16*)c;
  __nv_bfloat16* D = (__nv_bfloat16*)d;
  const int64_t m = op_rows(mm.a, mm.opA), k = op_cols(mm.a, mm.opA), n = op_cols(mm.b, mm.opB);
  std::vector<__nv_bfloat16> out((size_t)(m * n));
  for (int64_t i = 0; i < m; i++)
    for (int64_t j = 0; j < n; j++) {
      float s = 0;
      for (int64_t q = 0; q < k; q++) {
        const __nv_bfloat16 av = mm.opA ? A[q * mm.a.cols + i] : A[i * mm.a.cols + q];
        const __nv_bfloat16 bv = mm.opB ? B[idx(mm.b, j, q)] : B[idx(mm.b, q, j)];
        s = fmaf(__bfloat162float(av), __bfloat162float(bv), s);
      }
      const float cv = be == 0 ? 0.0f : be * __bfloat162float(C[idx(mm.c, i, j)]);
      out[(size_t)(i * n + j)] = __float2bfloat16(al * s + cv);
    }
  for (int64_t i = 0; i < m; i++)
    for (int64_t j = 0; j < n; j++) D[idx(mm.d, i, j)] = out[(size_t)(i * n + j)];
  return LT_OK;
}
