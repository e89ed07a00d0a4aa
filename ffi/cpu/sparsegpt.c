/* SparseGPT's column sweep (see lmkit.h and lib/sparse/sparsegpt.ts, its reference). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "internal.h"

/* k-th smallest (0-based) of a[0..n), reordering a */
static double kth_smallest(double* a, ptrdiff_t n, ptrdiff_t k) {
  ptrdiff_t lo = 0, hi = n - 1;
  unsigned seed = 2463534242u;
  while (lo < hi) {
    seed ^= seed << 13, seed ^= seed >> 17, seed ^= seed << 5;
    double pivot = a[lo + (ptrdiff_t)(seed % (unsigned)(hi - lo + 1))];
    ptrdiff_t i = lo, j = hi;
    while (i <= j) {
      while (a[i] < pivot) i++;
      while (a[j] > pivot) j--;
      if (i <= j) {
        double t = a[i];
        a[i++] = a[j];
        a[j--] = t;
      }
    }
    if (k <= j) hi = j;
    else if (k >= i) lo = i;
    else return a[k];
  }
  return a[k];
}

int32_t lk_cpu_sparsegpt_f64(double* w, double w_len, const double* u, double u_len, int32_t rows,
                             int32_t cols, double sparsity, int32_t n, int32_t m,
                             const uint8_t* prunable, double prunable_len, int32_t block,
                             uint8_t* mask, double mask_len) {
  const char* fn = "lk_cpu_sparsegpt_f64";
  if (rows < 0 || cols < 1) return lk_fail(LK_ESHAPE, "%s: rows=%d cols=%d, expected rows >= 0, cols >= 1", fn, rows, cols);
  if (block < 1) return lk_fail(LK_EARG, "%s: block=%d, expected >= 1", fn, block);
  if (n > 0) {
    if (m <= n || cols % m) return lk_fail(LK_ESHAPE, "%s: N:M %d:%d needs N < M and M dividing cols=%d", fn, n, m, cols);
    if (m > 64) return lk_fail(LK_EARG, "%s: M=%d, expected at most 64", fn, m);
    if (block % m) return lk_fail(LK_EARG, "%s: block=%d is not a multiple of M=%d (an N:M group must lie in one block)", fn, block, m);
  } else if (!(sparsity > 0 && sparsity < 1)) {
    return lk_fail(LK_EARG, "%s: sparsity %g is outside (0, 1)", fn, sparsity);
  }
  if (lk_check_len(fn, "w", w_len, (double)rows * cols) || lk_check_len(fn, "u", u_len, (double)cols * cols) ||
      lk_check_len(fn, "prunable", prunable_len, rows) || lk_check_len(fn, "mask", mask_len, (double)rows * cols))
    return LK_ESHAPE;
  for (int j = 0; j < cols; j++)
    if (!(u[(ptrdiff_t)j * cols + j] > 0))
      return lk_fail(LK_ENUMERICAL, "%s: U[%d,%d] = %g, expected a positive diagonal", fn, j, j, u[(ptrdiff_t)j * cols + j]);
  if (rows > 0) memset(mask, 0, (size_t)rows * cols); /* mask is NULL when empty */
  double* err = lk_alloc(sizeof(double) * (size_t)(rows ? rows : 1) * block);
  double* tmp = n > 0 ? NULL : lk_alloc(sizeof(double) * (size_t)(rows ? rows : 1) * block);
  if (!err || (n == 0 && !tmp)) {
    free(err);
    free(tmp);
    return lk_fail(LK_ENOMEM, "%s: cannot allocate %d×%d work arrays", fn, rows, block);
  }
  for (int i1 = 0; i1 < cols; i1 += block) {
    const int i2 = i1 + block < cols ? i1 + block : cols, count = i2 - i1;
    if (n == 0) {
      ptrdiff_t len = 0;
      for (int r = 0; r < rows; r++) {
        if (!prunable[r]) continue;
        for (int j = i1; j < i2; j++) {
          double d = u[(ptrdiff_t)j * cols + j], x = w[(ptrdiff_t)r * cols + j];
          tmp[len++] = x * x / (d * d);
        }
      }
      if (len > 0) {
        double thresh = kth_smallest(tmp, len, (ptrdiff_t)floor((double)len * sparsity));
        for (int r = 0; r < rows; r++) {
          if (!prunable[r]) continue;
          for (int j = i1; j < i2; j++) {
            double d = u[(ptrdiff_t)j * cols + j], x = w[(ptrdiff_t)r * cols + j];
            if (x * x / (d * d) <= thresh) mask[(ptrdiff_t)r * cols + j] = 1;
          }
        }
      }
    }
#pragma omp parallel for schedule(static) if ((double)rows * count * count > 65536)
    for (int r = 0; r < rows; r++) {
      double* wr = w + (ptrdiff_t)r * cols;
      uint8_t* mr = mask + (ptrdiff_t)r * cols;
      for (int i = 0; i < count; i++) {
        const int c = i1 + i;
        if (n > 0 && c % m == 0 && prunable[r]) {
          /* the n smallest w²/U_jj² of the group, ties to the lower index */
          int idx[64];
          double sc[64];
          const int mm = m;
          for (int k = 0; k < mm; k++) {
            double d = u[(ptrdiff_t)(c + k) * cols + c + k];
            sc[k] = wr[c + k] * wr[c + k] / (d * d);
            idx[k] = k;
          }
          for (int a = 1; a < mm; a++) { /* insertion sort by (score, index) */
            int t = idx[a], b = a - 1;
            while (b >= 0 && (sc[idx[b]] > sc[t] || (sc[idx[b]] == sc[t] && idx[b] > t))) idx[b + 1] = idx[b], b--;
            idx[b + 1] = t;
          }
          for (int k = 0; k < n; k++) mr[c + idx[k]] = 1;
        }
        const double d = u[(ptrdiff_t)c * cols + c], x = wr[c], q = mr[c] ? 0 : x, e = (x - q) / d;
        err[(ptrdiff_t)r * block + i] = e;
        wr[c] = q;
        if (e != 0) {
          const double* uc = u + (ptrdiff_t)c * cols;
          for (int j = c + 1; j < i2; j++) wr[j] -= e * uc[j];
        }
      }
    }
    if (i2 < cols && rows > 0) /* W[:, i2:] -= Err · U[i1:i2, i2:] */
      lk_dgemm(rows, cols - i2, count, -1.0, err, 0, block, 1, u + (ptrdiff_t)i1 * cols + i2, 0, cols, 1,
               1.0, w + i2, cols, 0);
  }
  free(err);
  free(tmp);
  return LK_OK;
}
