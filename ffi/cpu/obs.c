/* OBS preparation (SparseGPT/GPTQ): U = upper Cholesky factor of (H + λI)⁻¹.
 *
 * With J the reversal permutation, if J·H·J = L·Lᵀ (lower Cholesky) then
 * H⁻¹ = (J·L⁻¹·J)ᵀ·(J·L⁻¹·J), and J·L⁻¹·J is upper triangular with a positive diagonal, so it is
 * exactly U. J·M·J of a row-major matrix is the matrix's elements in reverse order. This takes
 * one Cholesky and one triangular inverse (≈ 2n³/3 flops) instead of SparseGPT's
 * Cholesky + cholesky_inverse + Cholesky (≈ 4n³/3), and never forms H⁻¹ explicitly. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "internal.h"

#define NB 96

static void reverse(double* a, ptrdiff_t len) {
  for (ptrdiff_t i = 0, j = len - 1; i < j; i++, j--) {
    double t = a[i];
    a[i] = a[j];
    a[j] = t;
  }
}

/* In-place lower Cholesky of row-major A[n,n]; returns the failing column + 1, or 0. */
static int chol_lower(double* a, int n) {
  for (int kb = 0; kb < n; kb += NB) {
    int nb = n - kb < NB ? n - kb : NB;
    /* factor the diagonal block */
    for (int j = kb; j < kb + nb; j++) {
      double* rj = a + (ptrdiff_t)j * n;
      double d = rj[j];
      for (int p = kb; p < j; p++) d -= rj[p] * rj[p];
      if (!(d > 0) || !isfinite(d)) return j + 1;
      double ljj = sqrt(d);
      rj[j] = ljj;
      for (int i = j + 1; i < kb + nb; i++) {
        double* ri = a + (ptrdiff_t)i * n;
        double s = ri[j];
        for (int p = kb; p < j; p++) s -= ri[p] * rj[p];
        ri[j] = s / ljj;
      }
    }
    int rest = n - kb - nb;
    if (rest <= 0) break;
    /* panel: rows below solve X·Lkkᵀ = A */
#pragma omp parallel for schedule(static)
    for (int i = kb + nb; i < n; i++) {
      double* ri = a + (ptrdiff_t)i * n;
      for (int j = kb; j < kb + nb; j++) {
        const double* rj = a + (ptrdiff_t)j * n;
        double s = ri[j];
        for (int p = kb; p < j; p++) s -= ri[p] * rj[p];
        ri[j] = s / rj[j];
      }
    }
    /* trailing update of the lower triangle: A22 -= P·Pᵀ */
    double* p = a + (ptrdiff_t)(kb + nb) * n + kb;
    lk_dgemm(rest, rest, nb, -1.0, p, 0, n, 1, p, 0, 1, n, 1.0, a + (ptrdiff_t)(kb + nb) * n + kb + nb,
             n, 1);
  }
  return 0;
}

/* In-place inverse of a lower-triangular row-major L[n,n] whose strict upper part is zero. */
static int tri_inv_lower(double* a, int n) {
  double* tmp = lk_alloc(sizeof(double) * (size_t)n * NB);
  if (!tmp) return -1;
  int last = ((n - 1) / NB) * NB;
  for (int jb = last; jb >= 0; jb -= NB) {
    int nb = n - jb < NB ? n - jb : NB;
    /* invert the diagonal block in place (column by column, forward substitution) */
    double inv[NB * NB];
    for (int i = 0; i < nb; i++)
      for (int j = 0; j < nb; j++) inv[i * NB + j] = 0;
    for (int j = 0; j < nb; j++) {
      inv[j * NB + j] = 1.0 / a[(ptrdiff_t)(jb + j) * n + jb + j];
      for (int i = j + 1; i < nb; i++) {
        const double* ri = a + (ptrdiff_t)(jb + i) * n + jb;
        double s = 0;
        for (int p = j; p < i; p++) s += ri[p] * inv[p * NB + j];
        inv[i * NB + j] = -s / ri[i];
      }
    }
    int rest = n - jb - nb;
    if (rest > 0) {
      /* T = L21·inv(L11)  (rest×nb) */
      double* l21 = a + (ptrdiff_t)(jb + nb) * n + jb;
#pragma omp parallel for schedule(static)
      for (int i = 0; i < rest; i++) {
        const double* ri = l21 + (ptrdiff_t)i * n;
        for (int j = 0; j < nb; j++) {
          double s = 0;
          for (int p = j; p < nb; p++) s += ri[p] * inv[p * NB + j];
          tmp[(ptrdiff_t)i * nb + j] = s;
        }
      }
      /* X21 = −X22·T, X22 = inverse of the trailing block (already done, lower) */
      lk_dgemm(rest, nb, rest, -1.0, a + (ptrdiff_t)(jb + nb) * n + jb + nb, 0, n, 1, tmp, 0, nb,
               1, 0.0, l21, n, 0);
    }
    for (int i = 0; i < nb; i++)
      for (int j = 0; j <= i; j++) a[(ptrdiff_t)(jb + i) * n + jb + j] = inv[i * NB + j];
  }
  free(tmp);
  return 0;
}

static int factor(double* a, int n) {
  const lk_blas_t* bl = lk_blas();
  if (bl) {
    /* row-major lower = column-major upper */
    int info = 0;
    bl->dpotrf("U", &n, a, &n, &info);
    if (info > 0) return info;
    if (info < 0) return -1;
    for (int i = 0; i < n; i++)
      for (int j = i + 1; j < n; j++) a[(ptrdiff_t)i * n + j] = 0;
    bl->dtrtri("U", "N", &n, a, &n, &info);
    return info != 0 ? -1 : 0;
  }
  int bad = chol_lower(a, n);
  if (bad) return bad;
  for (int i = 0; i < n; i++)
    for (int j = i + 1; j < n; j++) a[(ptrdiff_t)i * n + j] = 0;
  return tri_inv_lower(a, n) ? -2 : 0;
}

int32_t lk_cpu_obs_prepare_f64(double* h, double h_len, int32_t n, double percdamp,
                               int32_t max_tries, double* info_out, double info_len) {
  const char* fn = "lk_cpu_obs_prepare_f64";
  if (n < 1) return lk_fail(LK_ESHAPE, "%s: n=%d, expected >= 1", fn, n);
  if (lk_check_len(fn, "h", h_len, (double)n * n) || lk_check_len(fn, "info", info_len, 2))
    return LK_ESHAPE;
  if (!(percdamp >= 0) || !isfinite(percdamp))
    return lk_fail(LK_EARG, "%s: percdamp=%g, expected a finite number >= 0", fn, percdamp);
  if (max_tries < 1) return lk_fail(LK_EARG, "%s: max_tries=%d, expected >= 1", fn, max_tries);
  ptrdiff_t len = (ptrdiff_t)n * n;
  for (ptrdiff_t i = 0; i < len; i++)
    if (!isfinite(h[i]))
      return lk_fail(LK_ENUMERICAL, "%s: H[%td,%td] is %s: expected a finite number", fn, i / n,
                     i % n, isnan(h[i]) ? "NaN" : h[i] > 0 ? "Infinity" : "-Infinity");
  int dead = 0;
  double mean = 0;
  for (int i = 0; i < n; i++) {
    double* d = h + (ptrdiff_t)i * n + i;
    if (*d == 0) {
      *d = 1;
      dead++;
    }
    mean += *d;
  }
  mean /= n;
  double* work = lk_alloc(sizeof(double) * (size_t)len);
  if (!work) return lk_fail(LK_ENOMEM, "%s: cannot allocate a %d×%d work matrix", fn, n, n);
  double damp = percdamp;
  char tried[200] = "";
  size_t used = 0;
  /* a damping that overflows to ∞ would only try H + ∞·I again: stop there */
  for (int t = 0; t < max_tries && isfinite(damp * mean); t++, damp *= 10) {
    memcpy(work, h, sizeof(double) * (size_t)len);
    for (int i = 0; i < n; i++) work[(ptrdiff_t)i * n + i] += damp * mean;
    reverse(work, len);
    int st = factor(work, n);
    if (st == 0) {
      reverse(work, len);
      memcpy(h, work, sizeof(double) * (size_t)len);
      free(work);
      info_out[0] = damp;
      info_out[1] = dead;
      return LK_OK;
    }
    if (st == -2) {
      free(work);
      return lk_fail(LK_ENOMEM, "%s: cannot allocate the triangular-inverse workspace", fn);
    }
    if (used < sizeof tried)
      used += (size_t)snprintf(tried + used, sizeof tried - used, "%s%g", t ? ", " : "", damp);
  }
  free(work);
  return lk_fail(LK_ENUMERICAL,
                 "%s: H + λI is not positive definite for percdamp %s (λ = percdamp·%g)", fn,
                 tried, mean);
}
