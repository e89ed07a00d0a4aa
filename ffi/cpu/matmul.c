/* Dense f32 matmul and Gram accumulation: OpenBLAS when loaded, else the own GEMM. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "internal.h"

/* Few rows (decoding one token): dot products or row updates, no packing. */
static void matmul_few_rows(const float* a, const float* b, float* c, int m, int k, int n,
                            int trans_b) {
  int threads_ok = (double)m * n * k > 65536;
  if (trans_b) {
#pragma omp parallel for schedule(static) if (threads_ok)
    for (int j = 0; j < n; j++) {
      const float* bj = b + (ptrdiff_t)j * k;
      for (int i = 0; i < m; i++) {
        const float* ai = a + (ptrdiff_t)i * k;
        float s = 0;
#pragma omp simd reduction(+ : s)
        for (int p = 0; p < k; p++) s += ai[p] * bj[p];
        c[(ptrdiff_t)i * n + j] = s;
      }
    }
  } else {
    const int chunk = 256;
#pragma omp parallel for schedule(static) if (threads_ok)
    for (int j0 = 0; j0 < n; j0 += chunk) {
      int j1 = j0 + chunk < n ? j0 + chunk : n;
      for (int i = 0; i < m; i++) {
        float* ci = c + (ptrdiff_t)i * n;
        for (int j = j0; j < j1; j++) ci[j] = 0;
        for (int p = 0; p < k; p++) {
          const float aip = a[(ptrdiff_t)i * k + p];
          const float* bp = b + (ptrdiff_t)p * n;
#pragma omp simd
          for (int j = j0; j < j1; j++) ci[j] += aip * bp[j];
        }
      }
    }
  }
}

/* OpenBLAS pays thread start-up on every call; below this many multiply-adds our own kernel is
 * as fast or faster on the machines measured (bench/kernels_bench.ts), so BLAS is used above. */
#define LK_BLAS_MIN_MACS 134217728.0

int32_t lk_cpu_matmul_f32(const float* a, double a_len, const float* b, double b_len, float* c,
                          double c_len, int32_t m, int32_t k, int32_t n, int32_t trans_b) {
  const char* fn = "lk_cpu_matmul_f32";
  if (lk_check_dims(fn, m, k, n)) return LK_ESHAPE;
  if (trans_b != 0 && trans_b != 1)
    return lk_fail(LK_EARG, "%s: trans_b is %d, expected 0 or 1", fn, trans_b);
  if (lk_check_len(fn, "a", a_len, (double)m * k) || lk_check_len(fn, "b", b_len, (double)k * n) ||
      lk_check_len(fn, "c", c_len, (double)m * n))
    return LK_ESHAPE;
  if (m == 0 || n == 0) return LK_OK;
  const lk_blas_t* bl = lk_blas();
  if (m < 8 && k > 0) {
    matmul_few_rows(a, b, c, m, k, n, trans_b);
  } else if (bl && k > 0 && (double)m * n * k >= LK_BLAS_MIN_MACS) {
    bl->sgemm(LK_ROW_MAJOR, LK_NO_TRANS, trans_b ? LK_TRANS : LK_NO_TRANS, m, n, k, 1.0f, a, k, b,
              trans_b ? k : n, 0.0f, c, n);
  } else if (trans_b) {
    lk_sgemm(m, n, k, 1.0f, a, k, 1, b, 1, k, 0.0f, c, n, 0);
  } else {
    lk_sgemm(m, n, k, 1.0f, a, k, 1, b, n, 1, 0.0f, c, n, 0);
  }
  return LK_OK;
}

void lk_sgemm_nt(int m, int n, int k, const float* a, ptrdiff_t lda, const float* b, ptrdiff_t ldb,
                 float beta, float* c, ptrdiff_t ldc) {
  const lk_blas_t* bl = lk_blas();
  if (bl && (double)m * n * k >= LK_BLAS_MIN_MACS)
    bl->sgemm(LK_ROW_MAJOR, LK_NO_TRANS, LK_TRANS, m, n, k, 1.0f, a, (int)lda, b, (int)ldb, beta, c,
              (int)ldc);
  else
    lk_sgemm(m, n, k, 1.0f, a, lda, 1, b, 1, ldb, beta, c, ldc, 0);
}

static int32_t check_gram(const char* fn, double x_len, int32_t rows, int32_t n, double h_len,
                          double alpha, double beta) {
  if (rows < 0 || n < 0) return lk_fail(LK_ESHAPE, "%s: rows=%d n=%d, expected >= 0", fn, rows, n);
  if (!isfinite(alpha) || !isfinite(beta))
    return lk_fail(LK_EARG, "%s: alpha=%g beta=%g, expected finite numbers", fn, alpha, beta);
  if (lk_check_len(fn, "x", x_len, (double)rows * n) || lk_check_len(fn, "h", h_len, (double)n * n))
    return LK_ESHAPE;
  return LK_OK;
}

/* Copies the lower triangle of a row-major n×n matrix onto its upper triangle, in 64×64 tiles
 * so that the column reads stay in cache (an element-wise loop took about 80 ms per call at
 * n = 4096: most of a 128-batch Hessian's time). */
#define MIRROR_LOWER(T, h, n)                                                                  \
  do {                                                                                         \
    const int n_ = (n);                                                                        \
    _Pragma("omp parallel for schedule(dynamic, 1) if (n_ > 256)")                             \
    for (int i0_ = 0; i0_ < n_; i0_ += 64) {                                                   \
      const int i1_ = i0_ + 64 < n_ ? i0_ + 64 : n_;                                           \
      for (int j0_ = i0_; j0_ < n_; j0_ += 64) {                                               \
        const int j1_ = j0_ + 64 < n_ ? j0_ + 64 : n_;                                         \
        for (int i_ = i0_; i_ < i1_; i_++)                                                     \
          for (int j_ = j0_ > i_ + 1 ? j0_ : i_ + 1; j_ < j1_; j_++)                           \
            (h)[(ptrdiff_t)i_ * n_ + j_] = (h)[(ptrdiff_t)j_ * n_ + i_];                       \
      }                                                                                        \
    }                                                                                          \
  } while (0)

int32_t lk_cpu_gram_f32(const float* x, double x_len, int32_t rows, int32_t n, float* h,
                        double h_len, double alpha, double beta) {
  int32_t st = check_gram("lk_cpu_gram_f32", x_len, rows, n, h_len, alpha, beta);
  if (st) return st;
  if (n == 0) return LK_OK;
  const lk_blas_t* bl = lk_blas();
  if (bl && rows > 0) {
    /* row-major lower C = alpha·AᵀA + beta·C with A = X[rows,n] */
    bl->ssyrk(LK_ROW_MAJOR, LK_LOWER, LK_TRANS, n, rows, (float)alpha, x, n, (float)beta, h, n);
  } else {
    lk_sgemm(n, n, rows, (float)alpha, x, 1, n, x, n, 1, (float)beta, h, n, 1);
  }
  MIRROR_LOWER(float, h, n);
  return LK_OK;
}

int32_t lk_cpu_gram_f64(const float* x, double x_len, int32_t rows, int32_t n, double* h,
                        double h_len, double alpha, double beta) {
  int32_t st = check_gram("lk_cpu_gram_f64", x_len, rows, n, h_len, alpha, beta);
  if (st) return st;
  if (n == 0) return LK_OK;
  const lk_blas_t* bl = lk_blas();
  if (bl && rows > 0) {
    /* convert X to f64 in chunks of rows, then dsyrk each chunk */
    int chunk = (int)(((size_t)1 << 22) / (size_t)n);
    if (chunk < 1) chunk = 1;
    if (chunk > rows) chunk = rows;
    double* xd = lk_alloc(sizeof(double) * (size_t)chunk * n);
    if (!xd) return lk_fail(LK_ENOMEM, "lk_cpu_gram_f64: cannot allocate %d×%d f64 rows", chunk, n);
    for (int r0 = 0; r0 < rows; r0 += chunk) {
      int cr = rows - r0 < chunk ? rows - r0 : chunk;
      const float* src = x + (ptrdiff_t)r0 * n;
      for (ptrdiff_t i = 0; i < (ptrdiff_t)cr * n; i++) xd[i] = src[i];
      bl->dsyrk(LK_ROW_MAJOR, LK_LOWER, LK_TRANS, n, cr, alpha, xd, n, r0 == 0 ? beta : 1.0, h, n);
    }
    free(xd);
  } else {
    lk_dgemm(n, n, rows, alpha, x, 1, 1, n, x, 1, n, 1, beta, h, n, 1);
  }
  MIRROR_LOWER(double, h, n);
  return LK_OK;
}
