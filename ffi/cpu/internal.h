/* Private helpers shared by the CPU library's sources. */
#ifndef LK_CPU_INTERNAL_H
#define LK_CPU_INTERNAL_H
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include "../include/lmkit.h"

int32_t lk_fail(int32_t code, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
/* Checks that a buffer of `have` elements holds `need`; else sets the error naming `what`. */
int32_t lk_check_len(const char* fn, const char* what, double have, double need);
int32_t lk_check_dims(const char* fn, int32_t m, int32_t k, int32_t n);
void* lk_alloc(size_t bytes);

/* OpenBLAS / LAPACK functions found at run time (NULL when absent or disabled). */
typedef struct {
  void (*sgemm)(int, int, int, int, int, int, float, const float*, int, const float*, int, float,
                float*, int);
  void (*dgemm)(int, int, int, int, int, int, double, const double*, int, const double*, int,
                double, double*, int);
  void (*ssyrk)(int, int, int, int, int, float, const float*, int, float, float*, int);
  void (*dsyrk)(int, int, int, int, int, double, const double*, int, double, double*, int);
  void (*dpotrf)(const char*, const int*, double*, const int*, int*);
  void (*dtrtri)(const char*, const char*, const int*, double*, const int*, int*);
} lk_blas_t;
const lk_blas_t* lk_blas(void); /* NULL unless OpenBLAS is loaded and enabled */

/* The project's own GEMM: C[m,n] = beta·C + alpha·A·B with A(i,p) = a[i*rsa + p*csa],
 * B(p,j) = b[p*rsb + j*csb], C row-major with leading dimension ldc. When lower_only, only
 * tiles that touch C's lower triangle (j ≤ i) are computed: entries above it are garbage. */
void lk_sgemm(int m, int n, int k, float alpha, const float* a, ptrdiff_t rsa, ptrdiff_t csa,
              const float* b, ptrdiff_t rsb, ptrdiff_t csb, float beta, float* c, ptrdiff_t ldc,
              int lower_only);
/* lk_sgemm on the calling thread only, with caller-owned packing scratch of
 * lk_sgemm_serial_scratch() floats (64-byte aligned): for many small products inside a parallel
 * region (attention's per-head products). */
size_t lk_sgemm_serial_scratch(void);
void lk_sgemm_serial(int m, int n, int k, float alpha, const float* a, ptrdiff_t rsa, ptrdiff_t csa,
                     const float* b, ptrdiff_t rsb, ptrdiff_t csb, float beta, float* c,
                     ptrdiff_t ldc, int lower_only, float* scratch);
/* C[m,n] = beta·C + A[m,k]·B[n,k]ᵀ (leading dimensions lda, ldb, ldc): OpenBLAS for large
 * products when it is loaded, else the own GEMM. */
void lk_sgemm_nt(int m, int n, int k, const float* a, ptrdiff_t lda, const float* b, ptrdiff_t ldb,
                 float beta, float* c, ptrdiff_t ldc);
/* Writes rows j0 … j0+nj−1 (nj ≤ LK_FILL_NR), columns p0 … p0+kc−1 of a weight W into the GEMM's
 * packed layout, dst[p·LK_FILL_NR + j] = W[j0+j, p0+p], rows nj … LK_FILL_NR−1 zero. Called with
 * p0 = 0, LK_FILL_KC, 2·LK_FILL_KC, … in order for each row (a fill may carry per-row state from
 * one call to the next), each row by one thread at a time. */
typedef void (*lk_fill_fn)(void* ctx, int j0, int nj, int p0, int kc, float* dst);
#if defined(__AVX512F__)
#define LK_FILL_NR 32
#else
#define LK_FILL_NR 16
#endif
#define LK_FILL_KC 512 /* twice the GEMM's KC: half the passes over Y (bench/RESULTS.md) */
/* Y[m,n] = X[m,k]·Wᵀ (leading dimensions ldx, ldy) with W produced by `fill`: the route of a
 * weight stored compressed, decompressed straight into the panels the GEMM reads. Returns 1 when
 * it cannot allocate its m·k + KC·NC floats of scratch, else 0. */
int lk_sgemm_nt_fill(int m, int n, int k, const float* x, ptrdiff_t ldx, lk_fill_fn fill,
                     void* ctx, float* y, ptrdiff_t ldy);
/* f64 GEMM; A and B may be f32 (a_f32/b_f32 set), converted to f64 when packed. */
void lk_dgemm(int m, int n, int k, double alpha, const void* a, int a_f32, ptrdiff_t rsa,
              ptrdiff_t csa, const void* b, int b_f32, ptrdiff_t rsb, ptrdiff_t csb, double beta,
              double* c, ptrdiff_t ldc, int lower_only);

/* the f16 value nearest to x (ties to even), as a double; ±inf past 65504 */
static inline double lk_round_f16(double x) {
  if (x == 0 || !isfinite(x)) return x;
  int e;
  frexp(x, &e); /* 2^(e-1) <= |x| < 2^e */
  int q = e - 11 < -24 ? -24 : e - 11;
  double r = ldexp(nearbyint(ldexp(x, -q)), q);
  return fabs(r) > 65504 ? copysign(INFINITY, r) : r;
}

/* exp(x) in f32 to about 2 ulp (Cephes' polynomial after Cody–Waite range reduction), written
 * so that loops calling it vectorise: 0 below −87.3, +∞ above 88.7, NaN for NaN. */
static inline float lk_expf(float x) {
  const float in = x;
  /* NaN is reduced as 0 (its exponent must not reach the shift below) and returned at the end */
  x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : (x == x ? x : 0.0f));
  float n = __builtin_floorf(x * 1.44269504088896341f + 0.5f);
  float r = x - n * 0.693359375f + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  union {
    int32_t i;
    float f;
  } scale = {.i = ((int32_t)n + 127) << 23};
  float y = p * scale.f;
  return in < -87.3f ? 0.0f : (in > 88.7f ? __builtin_inff() : (in == in ? y : in));
}

/* Softmax in place over s[0..n-1] (the causal row's visible scores), f32 with lk_expf. */
static inline void lk_softmax_row(float* s, int n) {
  float max = -__builtin_inff();
  for (int j = 0; j < n; j++) max = s[j] > max ? s[j] : max;
  float sum = 0;
#pragma omp simd reduction(+ : sum)
  for (int j = 0; j < n; j++) {
    const float w = lk_expf(s[j] - max);
    s[j] = w;
    sum += w;
  }
  const float inv = 1.0f / sum;
  for (int j = 0; j < n; j++) s[j] *= inv;
}

/* CBLAS enum values. */
enum { LK_ROW_MAJOR = 101, LK_NO_TRANS = 111, LK_TRANS = 112, LK_UPPER = 121, LK_LOWER = 122 };
#ifdef __AVX512F__
#include <immintrin.h>
/* Transposes the 16 × 16 floats in r[0..15] (rows) in place: at block size b = 8, 4, 2, 1 rows i
 * and i+b (i & b = 0) exchange the b × b blocks off the diagonal of every 2b × 2b block (the
 * bitmap fill of spmm.c and the quantized fill of quant_matmul.c). */
static inline __attribute__((always_inline)) void lk_transpose16(__m512* r) {
#pragma GCC unroll 4
  for (int b = 8; b >= 1; b /= 2) {
    int lo[16], hi[16];
    for (int t = 0; t < 16; t++) {
      const int base = t / (2 * b) * 2 * b, in = t % (2 * b);
      lo[t] = in < b ? base + in : 16 + base + in - b;
      hi[t] = in < b ? base + b + in : 16 + base + in;
    }
    const __m512i ilo = _mm512_loadu_si512(lo), ihi = _mm512_loadu_si512(hi);
#pragma GCC unroll 16
    for (int i = 0; i < 16; i++)
      if (!(i & b)) {
        const __m512 a = r[i], c = r[i + b];
        r[i] = _mm512_permutex2var_ps(a, ilo, c);
        r[i + b] = _mm512_permutex2var_ps(a, ihi, c);
      }
  }
}
#endif
#endif
