/* Row-wise top-k and threshold selection. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "internal.h"

static inline float key_of(float v, int by_abs) { return by_abs ? fabsf(v) : v; }

/* k-th largest (1-based) of keys[0..n) by quickselect; reorders keys. */
static float kth_largest(float* keys, int n, int k) {
  int lo = 0, hi = n - 1, want = k - 1;
  unsigned seed = 12345u;
  while (lo < hi) {
    seed = seed * 1103515245u + 12345u;
    float pivot = keys[lo + (int)(seed % (unsigned)(hi - lo + 1))];
    int i = lo, j = hi;
    while (i <= j) {
      while (keys[i] > pivot) i++;
      while (keys[j] < pivot) j--;
      if (i <= j) {
        float t = keys[i];
        keys[i] = keys[j];
        keys[j] = t;
        i++;
        j--;
      }
    }
    if (want <= j) hi = j;
    else if (want >= i) lo = i;
    else return keys[want];
  }
  return keys[want];
}

static int32_t find_nan(const char* fn, const float* x, int32_t rows, int32_t cols) {
  ptrdiff_t len = (ptrdiff_t)rows * cols;
  for (ptrdiff_t i = 0; i < len; i++)
    if (isnan(x[i]))
      return lk_fail(LK_ENUMERICAL, "%s: x[%td,%td] is NaN: expected a number", fn, i / cols,
                     i % cols);
  return LK_OK;
}

int32_t lk_cpu_topk_f32(const float* x, double x_len, int32_t rows, int32_t cols, int32_t k,
                        int32_t by_abs, int32_t* idx, double idx_len, float* val, double val_len,
                        float* thr, double thr_len) {
  const char* fn = "lk_cpu_topk_f32";
  if (rows < 0 || cols < 0) return lk_fail(LK_ESHAPE, "%s: rows=%d cols=%d, expected >= 0", fn, rows, cols);
  if (k < 1 || k > cols)
    return lk_fail(LK_EARG, "%s: k=%d, expected 1 <= k <= cols=%d", fn, k, cols);
  if (lk_check_len(fn, "x", x_len, (double)rows * cols) ||
      lk_check_len(fn, "idx", idx_len, (double)rows * k) ||
      lk_check_len(fn, "val", val_len, (double)rows * k) || lk_check_len(fn, "thr", thr_len, rows))
    return LK_ESHAPE;
  if (find_nan(fn, x, rows, cols)) return LK_ENUMERICAL;
  int failed = 0;
#pragma omp parallel
  {
    float* keys = malloc(sizeof(float) * (size_t)(cols > 0 ? cols : 1));
    if (!keys) {
#pragma omp atomic write
      failed = 1;
    }
#pragma omp for schedule(dynamic, 16)
    for (int r = 0; r < rows; r++) {
      if (!keys) continue;
      const float* xr = x + (ptrdiff_t)r * cols;
      for (int j = 0; j < cols; j++) keys[j] = key_of(xr[j], by_abs);
      float t = kth_largest(keys, cols, k);
      int above = 0;
      for (int j = 0; j < cols; j++) above += key_of(xr[j], by_abs) > t;
      int ties = k - above, o = 0;
      int32_t* ir = idx + (ptrdiff_t)r * k;
      float* vr = val + (ptrdiff_t)r * k;
      for (int j = 0; j < cols && o < k; j++) {
        float kj = key_of(xr[j], by_abs);
        if (kj > t || (kj == t && ties-- > 0)) {
          ir[o] = j;
          vr[o] = xr[j];
          o++;
        }
      }
      thr[r] = t + 0.0f; /* -0 → +0 */
    }
    free(keys);
  }
  if (failed) return lk_fail(LK_ENOMEM, "%s: cannot allocate a row of %d keys", fn, cols);
  return LK_OK;
}

int32_t lk_cpu_threshold_f32(const float* x, double x_len, int32_t rows, int32_t cols,
                             const float* thr, double thr_len, int32_t by_abs, uint8_t* mask,
                             double mask_len, int32_t* count, double count_len) {
  const char* fn = "lk_cpu_threshold_f32";
  if (rows < 0 || cols < 0) return lk_fail(LK_ESHAPE, "%s: rows=%d cols=%d, expected >= 0", fn, rows, cols);
  if (lk_check_len(fn, "x", x_len, (double)rows * cols) || lk_check_len(fn, "thr", thr_len, rows) ||
      lk_check_len(fn, "mask", mask_len, (double)rows * cols) ||
      lk_check_len(fn, "count", count_len, rows))
    return LK_ESHAPE;
  if (find_nan(fn, x, rows, cols)) return LK_ENUMERICAL;
  for (int r = 0; r < rows; r++)
    if (isnan(thr[r])) return lk_fail(LK_ENUMERICAL, "%s: thr[%d] is NaN: expected a number", fn, r);
#pragma omp parallel for schedule(static)
  for (int r = 0; r < rows; r++) {
    const float* xr = x + (ptrdiff_t)r * cols;
    uint8_t* mr = mask + (ptrdiff_t)r * cols;
    int c = 0;
    for (int j = 0; j < cols; j++) {
      uint8_t s = key_of(xr[j], by_abs) >= thr[r];
      mr[j] = s;
      c += s;
    }
    count[r] = c;
  }
  return LK_OK;
}
