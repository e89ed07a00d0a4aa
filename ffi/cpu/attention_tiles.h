/* Register-tiled small products for causal attention (attention.c's forward, train.c's backward).
 * Attention's products are thin (one side is the head width, 32–128) and triangular, so the
 * packed GEMM (gemm_tmpl.h) spends more on packing than on arithmetic there; these read A by
 * broadcasts in place and B by whole vectors from rows that the caller has laid out (K and V
 * transposed or padded once per call), and the callers skip fully masked tiles themselves. */
#ifndef LK_CPU_ATTENTION_TILES_H
#define LK_CPU_ATTENTION_TILES_H
#include <stddef.h>
#include <string.h>
#include "internal.h"

#if defined(__AVX512F__)
#define LK_ATT_VB 64 /* bytes per vector */
#define LK_ATT_R 8   /* rows per register tile: R × 2 vector accumulators */
#else
#define LK_ATT_VB 32
#define LK_ATT_R 6
#endif
#define LK_ATT_VL (LK_ATT_VB / 4) /* floats per vector: B's rows and C's rows are multiples */
#define LK_ATT_BR 64              /* query rows per block (scores of a block stay in L2) */

typedef float lk_attv_t __attribute__((vector_size(LK_ATT_VB)));

static inline int lk_att_round(int n) { return (n + LK_ATT_VL - 1) / LK_ATT_VL * LK_ATT_VL; }

/* C[0..R-1][0..NV·VL-1] (=, or += when acc) alpha · Σ_p A(r,p)·B[p][·], A(r,p) = a[r·rsa + p·csa],
 * B's row p at b + p·ldb. R and NV are constants after inlining. */
static inline __attribute__((always_inline)) void lk_att_micro(const int R, const int NV, int k,
                                                               const float* a, ptrdiff_t rsa,
                                                               ptrdiff_t csa, const float* b,
                                                               ptrdiff_t ldb, float* c,
                                                               ptrdiff_t ldc, float alpha, int acc) {
  lk_attv_t s[LK_ATT_R][2];
#pragma GCC unroll 16
  for (int r = 0; r < R; r++)
#pragma GCC unroll 2
    for (int v = 0; v < NV; v++) s[r][v] = (lk_attv_t){0};
  for (int p = 0; p < k; p++) {
    lk_attv_t bv[2];
#pragma GCC unroll 2
    for (int v = 0; v < NV; v++) memcpy(&bv[v], b + p * ldb + v * LK_ATT_VL, sizeof(lk_attv_t));
    const float* ap = a + p * csa;
#pragma GCC unroll 16
    for (int r = 0; r < R; r++) {
      const float av = ap[r * rsa];
#pragma GCC unroll 2
      for (int v = 0; v < NV; v++) s[r][v] += av * bv[v];
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < R; r++)
#pragma GCC unroll 2
    for (int v = 0; v < NV; v++) {
      float* cp = c + r * ldc + v * LK_ATT_VL;
      lk_attv_t x = alpha * s[r][v];
      if (acc) {
        lk_attv_t o;
        memcpy(&o, cp, sizeof o);
        x += o;
      }
      memcpy(cp, &x, sizeof x);
    }
}

/* C[m,n] (=, or += when acc) alpha·A·B with A(i,p) = a[i·rsa + p·csa] (m × k) and B's row p
 * (n floats, n a multiple of LK_ATT_VL) at b + p·ldb; C row-major, leading dimension ldc. */
static inline void lk_att_gemm(int m, int n, int k, float alpha, const float* a, ptrdiff_t rsa,
                        ptrdiff_t csa, const float* b, ptrdiff_t ldb, float* c, ptrdiff_t ldc,
                        int acc) {
  int i = 0;
  for (; i + LK_ATT_R <= m; i += LK_ATT_R) {
    const float* ai = a + i * rsa;
    float* ci = c + i * ldc;
    int j = 0;
    for (; j + 2 * LK_ATT_VL <= n; j += 2 * LK_ATT_VL)
      lk_att_micro(LK_ATT_R, 2, k, ai, rsa, csa, b + j, ldb, ci + j, ldc, alpha, acc);
    if (j < n) lk_att_micro(LK_ATT_R, 1, k, ai, rsa, csa, b + j, ldb, ci + j, ldc, alpha, acc);
  }
  for (; i < m; i++) {
    const float* ai = a + i * rsa;
    float* ci = c + i * ldc;
    int j = 0;
    for (; j + 2 * LK_ATT_VL <= n; j += 2 * LK_ATT_VL)
      lk_att_micro(1, 2, k, ai, rsa, csa, b + j, ldb, ci + j, ldc, alpha, acc);
    if (j < n) lk_att_micro(1, 1, k, ai, rsa, csa, b + j, ldb, ci + j, ldc, alpha, acc);
  }
}

/* dst[e·ldd + j] = src[j·lds + e] for j < n, e < d, and 0 for n ≤ j < npad: a head's keys (or
 * values) transposed, so that a row of scores is a sum of whole vectors. */
static inline void lk_att_transpose(int n, int npad, int d, const float* src, ptrdiff_t lds, float* dst,
                             ptrdiff_t ldd) {
  for (int j0 = 0; j0 < n; j0 += 16) {
    const int nj = n - j0 < 16 ? n - j0 : 16;
    for (int e = 0; e < d; e++)
      for (int j = 0; j < nj; j++) dst[e * ldd + j0 + j] = src[(j0 + j) * lds + e];
  }
  for (int e = 0; e < d; e++)
    for (int j = n; j < npad; j++) dst[e * ldd + j] = 0;
}

/* dst[j·ldd + e] = src[j·lds + e] for e < d and 0 for d ≤ e < ldd (rows padded to whole vectors). */
static inline void lk_att_pad_rows(int n, int d, const float* src, ptrdiff_t lds, float* dst,
                            ptrdiff_t ldd) {
  for (int j = 0; j < n; j++) {
    memcpy(dst + j * ldd, src + j * lds, sizeof(float) * (size_t)d);
    for (int e = d; e < ldd; e++) dst[j * ldd + e] = 0;
  }
}

typedef int32_t lk_attvi_t __attribute__((vector_size(LK_ATT_VB)));

/* m ? a : b lane by lane (m all ones or all zeros) */
static inline lk_attv_t lk_att_sel(lk_attvi_t m, lk_attv_t a, lk_attv_t b) {
  return (lk_attv_t)(((lk_attvi_t)a & m) | ((lk_attvi_t)b & ~m));
}

/* lk_expf (internal.h) on a whole vector: the same range reduction, polynomial and special
 * cases, written with vector types so that it cannot fall back to a scalar loop. */
static inline lk_attv_t lk_att_vexp(lk_attv_t in) {
  const lk_attvi_t isnan = in != in;
  lk_attv_t x = lk_att_sel(in < -87.0f, (lk_attv_t){0} - 87.0f, in);
  x = lk_att_sel(x > 88.0f, (lk_attv_t){0} + 88.0f, x);
  x = lk_att_sel(isnan, (lk_attv_t){0}, x);
  const lk_attv_t f = x * 1.44269504088896341f + 0.5f;
  lk_attvi_t ni = __builtin_convertvector(f, lk_attvi_t); /* toward zero, then down to floor */
  lk_attv_t n = __builtin_convertvector(ni, lk_attv_t);
  const lk_attvi_t over = n > f;
  ni += over; /* −1 where truncation rounded up */
  n = __builtin_convertvector(ni, lk_attv_t);
  const lk_attv_t r = x - n * 0.693359375f + n * 2.12194440e-4f;
  lk_attv_t p = (lk_attv_t){0} + 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const lk_attv_t y = p * (lk_attv_t)((ni + 127) << 23);
  lk_attv_t res = lk_att_sel(isnan, in, y);
  res = lk_att_sel(in > 88.7f, (lk_attv_t){0} + __builtin_inff(), res);
  return lk_att_sel(in < -87.3f, (lk_attv_t){0}, res);
}

/* Softmax in place over s[0..n-1] as lk_softmax_row (max, one exp per score, sum, scaling by
 * the inverse), by whole vectors: s[n..nv-1] (nv = n rounded up to whole vectors; readable and
 * writable) become 0. */
static inline float lk_att_softmax_unscaled(float* s, int n);
static inline void lk_att_softmax(float* s, int n) {
  const int nv = lk_att_round(n);
  const float inv = lk_att_softmax_unscaled(s, n);
  for (int j = 0; j < nv; j += LK_ATT_VL) {
    lk_attv_t x;
    memcpy(&x, s + j, sizeof x);
    x *= inv;
    memcpy(s + j, &x, sizeof x);
  }
}

/* lk_att_softmax without the last pass: leaves the exponentials and returns 1 / their sum. */
static inline float lk_att_softmax_unscaled(float* s, int n) {
  const int nv = lk_att_round(n);
  lk_attvi_t iota;
  for (int l = 0; l < LK_ATT_VL; l++) iota[l] = l;
  lk_attv_t mv = (lk_attv_t){0} - __builtin_inff();
  for (int j = 0; j < nv; j += LK_ATT_VL) {
    lk_attv_t x;
    memcpy(&x, s + j, sizeof x);
    mv = lk_att_sel((iota + j < n) & (x > mv), x, mv);
  }
  float max = mv[0];
  for (int l = 1; l < LK_ATT_VL; l++) max = mv[l] > max ? mv[l] : max;
  lk_attv_t sv = {0};
  for (int j = 0; j < nv; j += LK_ATT_VL) {
    lk_attv_t x;
    memcpy(&x, s + j, sizeof x);
    x = lk_att_sel(iota + j < n, lk_att_vexp(x - max), (lk_attv_t){0});
    memcpy(s + j, &x, sizeof x);
    sv += x;
  }
  float sum = 0;
  for (int l = 0; l < LK_ATT_VL; l++) sum += sv[l];
  return 1.0f / sum;
}
#endif
