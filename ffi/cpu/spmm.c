/* Sparse × dense products for pruned weights: Y[m,n] = X[m,k]·Wᵀ with W[n,k] in CSR with 16-bit
 * column indices (k ≤ 65536). Tokens are processed in tiles of T: the tile is transposed so that
 * every nonzero w[o,c] becomes one T-wide multiply-add of the contiguous row XT[c,·]. */
#include <stdlib.h>
#include <string.h>
#include "internal.h"

#define T 32  /* tokens per tile: two AVX-512 vectors */
#define OB 16 /* output rows per task */

/* Shapes and buffer lengths common to both products; 16-bit columns need k ≤ 65536. */
static int32_t check_dims(const char* fn, int32_t m, int32_t k, int32_t n, double x_len,
                          double y_len) {
  if (m < 0 || k < 1 || n < 0)
    return lk_fail(LK_ESHAPE, "%s: m=%d k=%d n=%d, expected m, n >= 0 and k >= 1", fn, m, k, n);
  if (k > 65536) return lk_fail(LK_ESHAPE, "%s: k=%d exceeds 65536 (16-bit column indices)", fn, k);
  if (lk_check_len(fn, "x", x_len, (double)m * k) || lk_check_len(fn, "y", y_len, (double)m * n))
    return LK_ESHAPE;
  return LK_OK;
}

/* count+1 offsets starting at 0 and never decreasing; `unit` names what they index. */
static int32_t check_offsets(const char* fn, const char* name, const char* unit,
                             const int32_t* ptr, double ptr_len, int32_t count) {
  if (lk_check_len(fn, name, ptr_len, (double)count + 1)) return LK_ESHAPE;
  if (ptr[0] != 0) return lk_fail(LK_EARG, "%s: %s[0]=%d, expected 0", fn, name, ptr[0]);
  for (int32_t i = 0; i < count; i++)
    if (ptr[i + 1] < ptr[i])
      return lk_fail(LK_EARG, "%s: %s decreases at %s %d (%d > %d)", fn, name, unit, i, ptr[i],
                     ptr[i + 1]);
  return LK_OK;
}

/* xt[c*tile + t] = x[(t0+t)*k + c] for the tn tokens of a tile, zero-padded to `tile`. */
static void transpose_tile(float* xt, const float* x, int32_t t0, int tn, int32_t k, int tile) {
#pragma omp parallel for schedule(static)
  for (int32_t c = 0; c < k; c++) {
    float* dst = xt + (size_t)c * tile;
    for (int t = 0; t < tn; t++) dst[t] = x[(size_t)(t0 + t) * k + c];
    for (int t = tn; t < tile; t++) dst[t] = 0.0f;
  }
}

int32_t lk_cpu_csr_matmul_f32(const float* x, double x_len, const int32_t* row_ptr,
                              double row_ptr_len, const uint16_t* col, double col_len,
                              const float* val, double val_len, float* y, double y_len, int32_t m,
                              int32_t k, int32_t n) {
  const char* fn = "lk_cpu_csr_matmul_f32";
  int32_t st;
  if ((st = check_dims(fn, m, k, n, x_len, y_len)) ||
      (st = check_offsets(fn, "row_ptr", "row", row_ptr, row_ptr_len, n)))
    return st;
  int32_t nnz = row_ptr[n];
  if (lk_check_len(fn, "col", col_len, nnz) || lk_check_len(fn, "val", val_len, nnz)) return LK_ESHAPE;
  for (int32_t p = 0; p < nnz; p++)
    if (col[p] >= k) return lk_fail(LK_EARG, "%s: col[%d]=%d, expected < k=%d", fn, p, col[p], k);
  if (m == 0 || n == 0) return LK_OK;
  float* xt = lk_alloc(sizeof(float) * (size_t)k * T);
  if (!xt) return lk_fail(LK_ENOMEM, "%s: cannot allocate the %d×%d token tile", fn, k, T);
  for (int32_t t0 = 0; t0 < m; t0 += T) {
    int tn = m - t0 < T ? m - t0 : T;
    transpose_tile(xt, x, t0, tn, k, T);
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
  int32_t st;
  if ((st = check_dims(fn, m, k, n, x_len, y_len))) return st;
  if (br < 1 || br > 256) return lk_fail(LK_EARG, "%s: block rows %d, expected 1..256", fn, br);
  int32_t nblk = (n + br - 1) / br;
  if ((st = check_offsets(fn, "blk_ptr", "block", blk_ptr, blk_ptr_len, nblk))) return st;
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
    transpose_tile(xt, x, t0, tn, k, TB);
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
