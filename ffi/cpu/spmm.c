/* Sparse × dense products for pruned weights: Y[m,n] = X[m,k]·Wᵀ with W[n,k] in CSR with 16-bit
 * column indices (k ≤ 65536). Tokens are processed in tiles of T: the tile is transposed so that
 * every nonzero w[o,c] becomes one T-wide multiply-add of the contiguous row XT[c,·]. */
#include <stdlib.h>
#include <string.h>
#include "internal.h"

#define T 32  /* tokens per tile: two AVX-512 vectors */
#define OB 16 /* output rows per task */

int32_t lk_cpu_csr_matmul_f32(const float* x, double x_len, const int32_t* row_ptr,
                              double row_ptr_len, const uint16_t* col, double col_len,
                              const float* val, double val_len, float* y, double y_len, int32_t m,
                              int32_t k, int32_t n) {
  const char* fn = "lk_cpu_csr_matmul_f32";
  if (m < 0 || k < 1 || n < 0)
    return lk_fail(LK_ESHAPE, "%s: m=%d k=%d n=%d, expected m, n >= 0 and k >= 1", fn, m, k, n);
  if (k > 65536) return lk_fail(LK_ESHAPE, "%s: k=%d exceeds 65536 (16-bit column indices)", fn, k);
  if (lk_check_len(fn, "x", x_len, (double)m * k) || lk_check_len(fn, "row_ptr", row_ptr_len, (double)n + 1) ||
      lk_check_len(fn, "y", y_len, (double)m * n))
    return LK_ESHAPE;
  if (row_ptr[0] != 0) return lk_fail(LK_EARG, "%s: row_ptr[0]=%d, expected 0", fn, row_ptr[0]);
  for (int32_t o = 0; o < n; o++)
    if (row_ptr[o + 1] < row_ptr[o])
      return lk_fail(LK_EARG, "%s: row_ptr decreases at row %d (%d > %d)", fn, o, row_ptr[o],
                     row_ptr[o + 1]);
  int32_t nnz = row_ptr[n];
  if (lk_check_len(fn, "col", col_len, nnz) || lk_check_len(fn, "val", val_len, nnz)) return LK_ESHAPE;
  for (int32_t p = 0; p < nnz; p++)
    if (col[p] >= k) return lk_fail(LK_EARG, "%s: col[%d]=%d, expected < k=%d", fn, p, col[p], k);
  if (m == 0 || n == 0) return LK_OK;
  float* xt = lk_alloc(sizeof(float) * (size_t)k * T);
  if (!xt) return lk_fail(LK_ENOMEM, "%s: cannot allocate the %d×%d token tile", fn, k, T);
  for (int32_t t0 = 0; t0 < m; t0 += T) {
    int tn = m - t0 < T ? m - t0 : T;
#pragma omp parallel for schedule(static)
    for (int32_t c = 0; c < k; c++) {
      float* dst = xt + (size_t)c * T;
      for (int t = 0; t < tn; t++) dst[t] = x[(size_t)(t0 + t) * k + c];
      for (int t = tn; t < T; t++) dst[t] = 0.0f;
    }
#pragma omp parallel for schedule(dynamic, 4)
    for (int32_t o0 = 0; o0 < n; o0 += OB) {
      float acc[OB][T] __attribute__((aligned(64)));
      int on = n - o0 < OB ? n - o0 : OB;
      for (int r = 0; r < on; r++) {
        float a[T] __attribute__((aligned(64)));
        for (int t = 0; t < T; t++) a[t] = 0.0f;
        for (int32_t p = row_ptr[o0 + r]; p < row_ptr[o0 + r + 1]; p++) {
          const float v = val[p];
          const float* xr = xt + (size_t)col[p] * T;
          for (int t = 0; t < T; t++) a[t] += v * xr[t];
        }
        memcpy(acc[r], a, sizeof a);
      }
      for (int t = 0; t < tn; t++) {
        float* yr = y + (size_t)(t0 + t) * n + o0;
        for (int r = 0; r < on; r++) yr[r] = acc[r][t];
      }
    }
  }
  free(xt);
  return LK_OK;
}

/* The same product with W stored in row blocks of BR rows whose nonzeros are sorted by column:
 * blk_ptr[nblk+1] offsets into col/row/val, row = the nonzero's row within its block. Each
 * activation row X[·,c] of a token tile is then loaded once per block and applied to every
 * nonzero of that column in the block, instead of once per nonzero. */
#define TB 32 /* tokens per tile: two AVX-512 vectors */
typedef float v16 __attribute__((vector_size(64)));
int32_t lk_cpu_bsc_matmul_f32(const float* x, double x_len, const int32_t* blk_ptr,
                              double blk_ptr_len, const uint16_t* col, double col_len,
                              const uint8_t* row, double row_len, const float* val, double val_len,
                              float* y, double y_len, int32_t m, int32_t k, int32_t n, int32_t br) {
  const char* fn = "lk_cpu_bsc_matmul_f32";
  if (m < 0 || k < 1 || n < 0)
    return lk_fail(LK_ESHAPE, "%s: m=%d k=%d n=%d, expected m, n >= 0 and k >= 1", fn, m, k, n);
  if (k > 65536) return lk_fail(LK_ESHAPE, "%s: k=%d exceeds 65536 (16-bit column indices)", fn, k);
  if (br < 1 || br > 256) return lk_fail(LK_EARG, "%s: block rows %d, expected 1..256", fn, br);
  int32_t nblk = (n + br - 1) / br;
  if (lk_check_len(fn, "x", x_len, (double)m * k) || lk_check_len(fn, "blk_ptr", blk_ptr_len, (double)nblk + 1) ||
      lk_check_len(fn, "y", y_len, (double)m * n))
    return LK_ESHAPE;
  if (blk_ptr[0] != 0) return lk_fail(LK_EARG, "%s: blk_ptr[0]=%d, expected 0", fn, blk_ptr[0]);
  for (int32_t b = 0; b < nblk; b++)
    if (blk_ptr[b + 1] < blk_ptr[b])
      return lk_fail(LK_EARG, "%s: blk_ptr decreases at block %d", fn, b);
  int32_t nnz = blk_ptr[nblk];
  if (lk_check_len(fn, "col", col_len, nnz) || lk_check_len(fn, "row", row_len, nnz) ||
      lk_check_len(fn, "val", val_len, nnz))
    return LK_ESHAPE;
  for (int32_t b = 0; b < nblk; b++) {
    int rows_here = n - b * br < br ? n - b * br : br;
    for (int32_t p = blk_ptr[b]; p < blk_ptr[b + 1]; p++) {
      if (col[p] >= k) return lk_fail(LK_EARG, "%s: col[%d]=%d, expected < k=%d", fn, p, col[p], k);
      if (row[p] >= rows_here)
        return lk_fail(LK_EARG, "%s: row[%d]=%d, expected < %d rows in block %d", fn, p, row[p], rows_here, b);
    }
  }
  if (m == 0 || n == 0) return LK_OK;
  float* xt = lk_alloc(sizeof(float) * (size_t)k * TB);
  if (!xt) return lk_fail(LK_ENOMEM, "%s: cannot allocate the %d×%d token tile", fn, k, TB);
  for (int32_t t0 = 0; t0 < m; t0 += TB) {
    int tn = m - t0 < TB ? m - t0 : TB;
#pragma omp parallel for schedule(static)
    for (int32_t c = 0; c < k; c++) {
      float* dst = xt + (size_t)c * TB;
      for (int t = 0; t < tn; t++) dst[t] = x[(size_t)(t0 + t) * k + c];
      for (int t = tn; t < TB; t++) dst[t] = 0.0f;
    }
#pragma omp parallel for schedule(dynamic, 2)
    for (int32_t b = 0; b < nblk; b++) {
      float acc[256][TB] __attribute__((aligned(64)));
      int rows_here = n - b * br < br ? n - b * br : br;
      memset(acc, 0, sizeof(float) * TB * (size_t)rows_here);
      /* nonzeros are sorted by column: keep the column's activations in registers while its
       * nonzeros in this block are applied */
      const int32_t end = blk_ptr[b + 1];
      for (int32_t p = blk_ptr[b]; p < end;) {
        const uint16_t c = col[p];
        const v16* xr = (const v16*)(xt + (size_t)c * TB);
        const v16 x0 = xr[0], x1 = xr[1];
        do {
          v16* a = (v16*)acc[row[p]];
          const float v = val[p];
          a[0] += v * x0;
          a[1] += v * x1;
          p++;
        } while (p < end && col[p] == c);
      }
      for (int t = 0; t < tn; t++) {
        float* yr = y + (size_t)(t0 + t) * n + (size_t)b * br;
        for (int r = 0; r < rows_here; r++) yr[r] = acc[r][t];
      }
    }
  }
  free(xt);
  return LK_OK;
}
