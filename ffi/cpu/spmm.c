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
#define FEW 8 /* below this many tokens the decode paths run, without token tiles */
typedef float v16 __attribute__((vector_size(64)));
int32_t lk_cpu_bsc_matmul_f32(const float* x, double x_len, const int32_t* blk_ptr,
                              double blk_ptr_len, const uint16_t* col, double col_len,
                              const uint8_t* row, double row_len, const float* val, double val_len,
                              float* y, double y_len, int32_t m, int32_t k, int32_t n, int32_t br) {
  const char* fn = "lk_cpu_bsc_matmul_f32";
  int32_t st;
  if ((st = check_dims(fn, m, k, n, x_len, y_len))) return st;
  if (br < 1 || br > 256) return lk_fail(LK_EARG, "%s: block rows %d, expected 1..256", fn, br);
  int32_t nblk = (int32_t)(((int64_t)n + br - 1) / br); /* n + br − 1 may pass INT32_MAX */
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
  if (m < FEW) { /* a few tokens (decoding): no token tile, each nonzero reads m activations */
#pragma omp parallel for schedule(dynamic, 2)
    for (int32_t b = 0; b < nblk; b++) {
      float acc[FEW][256];
      int rows_here = n - b * br < br ? n - b * br : br;
      for (int i = 0; i < m; i++) memset(acc[i], 0, sizeof(float) * (size_t)rows_here);
      for (int32_t p = blk_ptr[b]; p < blk_ptr[b + 1]; p++) {
        const float v = val[p];
        const float* xc = x + col[p];
        for (int i = 0; i < m; i++) acc[i][row[p]] += v * xc[(size_t)i * k];
      }
      for (int i = 0; i < m; i++) memcpy(y + (size_t)i * n + (size_t)b * br, acc[i], sizeof(float) * (size_t)rows_here);
    }
    return LK_OK;
  }
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

/* ---- Dense route for bitmap (and, for a few tokens, packed N:M) weights ----
 * From FEW tokens up a bitmap weight is decompressed straight into the packed panels of the own
 * GEMM (lk_sgemm_nt_fill): the dense number of FLOPs at GEMM speed while only the compressed form
 * is stored, which is what 50 % unstructured sparsity can give on a CPU whose dense GEMM runs far
 * faster than any sparse loop (bench/RESULTS.md). */
#ifdef __AVX512F__
#include <immintrin.h>
#endif

typedef struct {
  int32_t k;
  /* bitmap: bit c of row r (byte c/8, bit c%8, least significant first) marks a nonzero;
   * row_ptr[r] = offset of row r's first value in val */
  const uint8_t* bits;
  int64_t row_bytes;
  const int32_t* row_ptr;
  const float* val;
  /* N:M: keep values per group of `group` columns, row-major in val; their positions in the
   * group in idx, idx_bits (2 or 4) each, least significant first, each row on whole bytes */
  const uint8_t* idx;
  int64_t idx_row_bytes;
  int32_t keep, group, idx_bits;
} packed_w;

/* Writes columns c0..c0+nc of bitmap row r into dst (c0 a multiple of 8); *off is the row's value
 * offset at c0, advanced. */
static void unpack_bitmap(const packed_w* w, int32_t r, int32_t c0, int32_t nc, int64_t* off,
                          float* dst) {
  const uint8_t* b = w->bits + (int64_t)r * w->row_bytes + c0 / 8;
  const float* v = w->val;
  int64_t o = *off;
  int32_t c = 0;
#ifdef __AVX512F__
  for (; c + 16 <= nc; c += 16) {
    uint16_t mk;
    memcpy(&mk, b + c / 8, 2);
    _mm512_storeu_ps(dst + c, _mm512_maskz_expandloadu_ps(mk, v + o));
    o += __builtin_popcount(mk);
  }
#endif
  for (; c < nc; c++) {
    int bit = (b[c >> 3] >> (c & 7)) & 1;
    dst[c] = bit ? v[o] : 0.0f;
    o += bit;
  }
  *off = o;
}

/* Writes row r of a packed N:M weight, all k columns, into dst. */
static void unpack_nm_row(const packed_w* w, int32_t r, float* dst) {
  const int keep = w->keep, grp = w->group, ib = w->idx_bits, mask = (1 << ib) - 1;
  const float* v = w->val + (int64_t)r * (w->k / grp) * keep;
  const uint8_t* ix = w->idx + (int64_t)r * w->idx_row_bytes;
  memset(dst, 0, sizeof(float) * (size_t)w->k);
  int64_t q = 0; /* number of the kept entry within the row */
  for (int32_t g = 0; g < w->k; g += grp)
    for (int j = 0; j < keep; j++, q++) dst[g + ((ix[(q * ib) >> 3] >> ((q * ib) & 7)) & mask)] = *v++;
}

/* y = x·Wᵀ for m < FEW tokens (decoding), one row of W at a time: the row is decompressed, then
 * m dot products. The route of packed N:M patterns other than 2:4 and 4:8. */
static int32_t nm_rows_few(const char* fn, const float* x, float* y, int32_t m, int32_t k,
                           int32_t n, const packed_w* w) {
  int failed = 0;
#pragma omp parallel
  {
    float* row = lk_alloc(sizeof(float) * (size_t)k);
    if (!row) {
#pragma omp atomic write
      failed = 1;
    }
#pragma omp for schedule(static)
    for (int32_t r = 0; r < n; r++) {
      if (!row) continue;
      unpack_nm_row(w, r, row);
      for (int32_t i = 0; i < m; i++) {
        const float* xi = x + (size_t)i * k;
        float s = 0;
#pragma omp simd reduction(+ : s)
        for (int32_t c = 0; c < k; c++) s += xi[c] * row[c];
        y[(size_t)i * n + r] = s;
      }
    }
    free(row);
  }
  return failed ? lk_fail(LK_ENOMEM, "%s: cannot allocate a row of %d floats", fn, k) : LK_OK;
}

/* lk_fill_fn of a bitmap weight: off[r] is row r's value offset at the next column block. */
typedef struct {
  const packed_w* w;
  int64_t* off;
} bitmap_fill_ctx;

/* lk_fill_fn of a bitmap weight: with AVX-512, 16 rows × 16 columns at a time are expand-loaded
 * into registers, transposed there and stored as 16 sliver rows; the rest row by row. */
static void bitmap_fill(void* ctx, int j0, int nj, int p0, int kc, float* dst) {
  const bitmap_fill_ctx* f = ctx;
  const packed_w* w = f->w;
  int c = 0;
#ifdef __AVX512F__
  const int c16 = kc / 16 * 16;
  for (int g = 0; g < LK_FILL_NR; g += 16) {
    const int rows = nj - g < 0 ? 0 : (nj - g < 16 ? nj - g : 16);
    const uint8_t* b[16];
    int64_t o[16];
    for (int i = 0; i < 16; i++) {
      b[i] = i < rows ? w->bits + (int64_t)(j0 + g + i) * w->row_bytes + p0 / 8 : NULL;
      o[i] = i < rows ? f->off[j0 + g + i] : 0;
    }
    for (int cc = 0; cc < c16; cc += 16) {
      __m512 r[16];
#pragma GCC unroll 16
      for (int i = 0; i < 16; i++) {
        uint16_t mk = 0;
        if (i < rows) memcpy(&mk, b[i] + cc / 8, 2);
        r[i] = _mm512_maskz_expandloadu_ps(mk, w->val + o[i]);
        o[i] += __builtin_popcount(mk);
      }
      lk_transpose16(r);
#pragma GCC unroll 16
      for (int t = 0; t < 16; t++) _mm512_storeu_ps(dst + (size_t)(cc + t) * LK_FILL_NR + g, r[t]);
    }
    for (int i = 0; i < rows; i++) f->off[j0 + g + i] = o[i];
  }
  c = c16;
#endif
  if (c == kc) return;
  float row[LK_FILL_KC];
  for (int j = 0; j < LK_FILL_NR; j++) {
    if (j < nj) unpack_bitmap(w, j0 + j, p0 + c, kc - c, &f->off[j0 + j], row);
    for (int p = c; p < kc; p++) dst[p * LK_FILL_NR + j] = j < nj ? row[p - c] : 0.0f;
  }
}

/* Bitmap byte of two 2:4 groups from their packed index byte (positions p0 < p1 of each group in
 * a nibble): 2:4 rows decode like bitmap rows, byte for byte. */
static uint8_t nm24_bits[256];
__attribute__((constructor)) static void nm24_bits_init(void) {
  for (int v = 0; v < 256; v++)
    nm24_bits[v] = (uint8_t)((1 << (v & 3)) | (1 << ((v >> 2) & 3)) | (1 << (4 + ((v >> 4) & 3))) |
                             (1 << (4 + (v >> 6))));
}

/* Row encodings that read as bitmaps: the bitmap itself, packed 2:4 (one index byte per 8 columns,
 * through nm24_bits) and packed 4:8 (two index bytes, four 4-bit positions, per 8 columns). */
enum { ROW_BITMAP, ROW_NM24, ROW_NM48 };

/* The bitmap byte of columns 8i … 8i+7 of a row in encoding `kind`. */
static inline __attribute__((always_inline)) uint32_t mask_byte(const uint8_t* b, int64_t i, int kind) {
  if (kind == ROW_BITMAP) return b[i];
  if (kind == ROW_NM24) return nm24_bits[b[i]];
  const uint32_t v = (uint32_t)b[2 * i] | (uint32_t)b[2 * i + 1] << 8; /* positions < 8: checked */
  return (1u << (v & 15)) | (1u << ((v >> 4) & 15)) | (1u << ((v >> 8) & 15)) | (1u << (v >> 12));
}

/* acc[i] = row · x_i for the M tokens x_i (rows of x, k wide) and one row of W read as a bitmap
 * (see ROW_*): the bits and values are read once; two accumulator sets per token hide the FMA
 * latency. The row's values are val[o, end): the bits are checked against them as they are read
 * (no value past `end` is touched); returns 0, or 1 when the row's bits and values disagree. */
static inline __attribute__((always_inline)) int bitmap_row_few(const uint8_t* b, const float* val,
                                                                int64_t o, int64_t end, const float* x,
                                                                int32_t k, const int M, float* acc,
                                                                const int kind) {
  int32_t c = 0;
  for (int i = 0; i < M; i++) acc[i] = 0;
#ifdef __AVX512F__
  __m512 a0[FEW], a1[FEW];
  for (int i = 0; i < M; i++) a0[i] = a1[i] = _mm512_setzero_ps();
  for (; c + 32 <= k; c += 32) {
    uint32_t mk;
    if (kind == ROW_BITMAP)
      memcpy(&mk, b + c / 8, 4);
    else
      mk = mask_byte(b, c / 8, kind) | mask_byte(b, c / 8 + 1, kind) << 8 | mask_byte(b, c / 8 + 2, kind) << 16 |
           mask_byte(b, c / 8 + 3, kind) << 24;
    if (o + __builtin_popcount(mk) > end) return 1;
    const __mmask16 m0 = (__mmask16)(mk & 0xffff), m1 = (__mmask16)(mk >> 16);
    const __m512 e0 = _mm512_maskz_expandloadu_ps(m0, val + o);
    const __m512 e1 = _mm512_maskz_expandloadu_ps(m1, val + o + __builtin_popcount(m0));
    o += __builtin_popcount(mk);
    for (int i = 0; i < M; i++) {
      a0[i] = _mm512_fmadd_ps(e0, _mm512_loadu_ps(x + (size_t)i * k + c), a0[i]);
      a1[i] = _mm512_fmadd_ps(e1, _mm512_loadu_ps(x + (size_t)i * k + c + 16), a1[i]);
    }
  }
  for (int i = 0; i < M; i++) acc[i] = _mm512_reduce_add_ps(_mm512_add_ps(a0[i], a1[i]));
#endif
  for (; c < k; c++)
    if ((mask_byte(b, c >> 3, kind) >> (c & 7)) & 1) {
      if (o >= end) return 1;
      const float v = val[o++];
      for (int i = 0; i < M; i++) acc[i] += v * x[(size_t)i * k + c];
    }
  return o != end;
}

/* y[i, r] = row r · x_i for the m < FEW tokens; a constant token count per case keeps the
 * accumulators in registers. Returns 1 when the row's bits and values disagree. */
static inline __attribute__((always_inline)) int row_few(const uint8_t* b, const float* val, int64_t o,
                                                         int64_t end, const float* x, int32_t k, int32_t m,
                                                         int32_t n, int32_t r, float* y, const int kind) {
  float acc[FEW] = {0};
  int bad;
  switch (m) {
    case 1: bad = bitmap_row_few(b, val, o, end, x, k, 1, acc, kind); break;
    case 2: bad = bitmap_row_few(b, val, o, end, x, k, 2, acc, kind); break;
    case 3: bad = bitmap_row_few(b, val, o, end, x, k, 3, acc, kind); break;
    case 4: bad = bitmap_row_few(b, val, o, end, x, k, 4, acc, kind); break;
    case 5: bad = bitmap_row_few(b, val, o, end, x, k, 5, acc, kind); break;
    case 6: bad = bitmap_row_few(b, val, o, end, x, k, 6, acc, kind); break;
    default: bad = bitmap_row_few(b, val, o, end, x, k, 7, acc, kind); break;
  }
  for (int i = 0; i < m; i++) y[(size_t)i * n + r] = acc[i];
  return bad;
}

/* The first row whose bit count differs from its row_ptr span, or whose padding bits past k are
 * set, as an error; LK_OK when every row agrees. */
static int32_t check_bitmap_rows(const char* fn, const uint8_t* bits, int64_t rb, const int32_t* row_ptr,
                                 int32_t n, int32_t k, int32_t from) {
  const uint8_t pad = k % 8 ? (uint8_t)(0xFF << (k % 8)) : 0;
  for (int32_t r = from; r < n; r++) {
    const uint8_t* b = bits + (int64_t)r * rb;
    int64_t cnt = 0, i = 0;
    for (; i + 8 <= rb; i += 8) {
      uint64_t u;
      memcpy(&u, b + i, 8);
      cnt += __builtin_popcountll(u);
    }
    for (; i < rb; i++) cnt += __builtin_popcount(b[i]);
    if (b[rb - 1] & pad)
      return lk_fail(LK_EARG, "%s: row %d has bits set beyond column k=%d", fn, r, k);
    if (cnt != (int64_t)row_ptr[r + 1] - row_ptr[r])
      return lk_fail(LK_EARG, "%s: row %d has %lld bits set but row_ptr gives it %d values", fn,
                     r, (long long)cnt, row_ptr[r + 1] - row_ptr[r]);
  }
  return LK_OK;
}

int32_t lk_cpu_bitmap_matmul_f32(const float* x, double x_len, const uint8_t* bits,
                                 double bits_len, const int32_t* row_ptr, double row_ptr_len,
                                 const float* val, double val_len, float* y, double y_len,
                                 int32_t m, int32_t k, int32_t n) {
  const char* fn = "lk_cpu_bitmap_matmul_f32";
  int32_t st;
  if (m < 0 || k < 1 || n < 0)
    return lk_fail(LK_ESHAPE, "%s: m=%d k=%d n=%d, expected m, n >= 0 and k >= 1", fn, m, k, n);
  const int64_t rb = ((int64_t)k + 7) / 8;
  if (lk_check_len(fn, "x", x_len, (double)m * k) || lk_check_len(fn, "y", y_len, (double)m * n) ||
      lk_check_len(fn, "bits", bits_len, (double)n * rb))
    return LK_ESHAPE;
  if ((st = check_offsets(fn, "row_ptr", "row", row_ptr, row_ptr_len, n))) return st;
  if (lk_check_len(fn, "val", val_len, row_ptr[n])) return LK_ESHAPE;
  const uint8_t pad = k % 8 ? (uint8_t)(0xFF << (k % 8)) : 0;
  packed_w w = {.k = k, .bits = bits, .row_bytes = rb, .row_ptr = row_ptr, .val = val};
  if (m > 0 && m < FEW && n > 0) {
    /* decoding: read each row's bits and values once, no scratch, and check them as they are read
     * (a separate counting pass would add a quarter to the bytes read at 90 % sparsity) */
    int32_t first_bad = n;
#pragma omp parallel for schedule(static) reduction(min : first_bad)
    for (int32_t r = 0; r < n; r++) {
      const uint8_t* b = bits + (int64_t)r * rb;
      if (row_few(b, val, row_ptr[r], row_ptr[r + 1], x, k, m, n, r, y, ROW_BITMAP) || (b[rb - 1] & pad))
        if (r < first_bad) first_bad = r;
    }
    return first_bad < n ? check_bitmap_rows(fn, bits, rb, row_ptr, n, k, first_bad) : LK_OK;
  }
  if ((st = check_bitmap_rows(fn, bits, rb, row_ptr, n, k, 0))) return st;
  if (m == 0 || n == 0) return LK_OK;
  int64_t* off = lk_alloc(sizeof(int64_t) * (size_t)n);
  if (!off) return lk_fail(LK_ENOMEM, "%s: cannot allocate %d row offsets", fn, n);
  for (int32_t r = 0; r < n; r++) off[r] = row_ptr[r];
  bitmap_fill_ctx ctx = {.w = &w, .off = off};
  const int failed = lk_sgemm_nt_fill(m, n, k, x, k, bitmap_fill, &ctx, y, n);
  free(off);
  return failed ? lk_fail(LK_ENOMEM, "%s: cannot allocate the packed %d×%d tokens", fn, m, k) : LK_OK;
}

/* ---- Tokens-as-lanes route for packed N:M, 8 tokens or more ----
 * X is transposed tile by tile (TB = 32 tokens: two vectors per input column) and each kept
 * entry of a row is applied as one broadcast times the two vectors of the column it names; NR
 * rows at a time (they share the group structure, so one loop serves them all) give 2·NR
 * independent accumulator chains. Only the kept entries are multiplied: N/M of the dense FLOPs,
 * which on this route outruns the dense GEMM (bench/sparse_formats_bench.ts). */
#define NR 4

static inline __attribute__((always_inline)) void nm_entry(const uint8_t* const* ix, const float* const* vr,
                                                         int64_t byte, int sh, int mask, int64_t q,
                                                         const float* xg, v16* a0, v16* a1) {
  for (int r = 0; r < NR; r++) {
    const v16* xc = (const v16*)(xg + ((ix[r][byte] >> sh) & mask) * TB);
    const float v = vr[r][q];
    a0[r] += v * xc[0];
    a1[r] += v * xc[1];
  }
}

static int32_t nm_lanes(const char* fn, const float* x, float* y, int32_t m, int32_t k, int32_t n,
                        const packed_w* w) {
  const int keep = w->keep, grp = w->group, ib = w->idx_bits, mask = (1 << ib) - 1, epb = 8 / ib;
  const int64_t per_row = (int64_t)(k / grp) * keep, full = per_row / epb, irb = w->idx_row_bytes;
  float* xt = lk_alloc(sizeof(float) * (size_t)k * TB);
  int32_t* base = lk_alloc(sizeof(int32_t) * (size_t)(per_row ? per_row : 1)); /* group start in xt */
  if (!xt || !base) {
    free(xt);
    free(base);
    return lk_fail(LK_ENOMEM, "%s: cannot allocate the %d×%d token tile", fn, k, TB);
  }
  for (int64_t q = 0; q < per_row; q++) base[q] = (int32_t)(q / keep * grp * TB);
  for (int32_t t0 = 0; t0 < m; t0 += TB) {
    const int tn = m - t0 < TB ? m - t0 : TB;
    transpose_tile(xt, x, t0, tn, k, TB);
#pragma omp parallel for schedule(static)
    for (int32_t o0 = 0; o0 < n; o0 += NR) {
      v16 a0[NR], a1[NR];
      const uint8_t* ix[NR];
      const float* vr[NR];
      for (int r = 0; r < NR; r++) { /* rows past n repeat the last row; they are not stored */
        const int64_t row = o0 + r < n ? o0 + r : n - 1;
        a0[r] = a1[r] = (v16){0};
        ix[r] = w->idx + row * irb;
        vr[r] = w->val + row * per_row;
      }
      if (keep == 2 && grp == 4) /* 2:4: a byte holds two groups, eight columns */
        for (int64_t b = 0; b < full; b++)
          for (int e = 0; e < 4; e++) nm_entry(ix, vr, b, 2 * e, 3, 4 * b + e, xt + (8 * b + 4 * (e >> 1)) * TB, a0, a1);
      else if (ib == 2)
        for (int64_t b = 0; b < full; b++)
          for (int e = 0; e < 4; e++) nm_entry(ix, vr, b, 2 * e, 3, 4 * b + e, xt + base[4 * b + e], a0, a1);
      else
        for (int64_t b = 0; b < full; b++)
          for (int e = 0; e < 2; e++) nm_entry(ix, vr, b, 4 * e, 15, 2 * b + e, xt + base[2 * b + e], a0, a1);
      for (int64_t q = full * epb; q < per_row; q++) /* a row's last, partly filled byte */
        nm_entry(ix, vr, (q * ib) >> 3, (int)((q * ib) & 7), mask, q, xt + base[q], a0, a1);
      float acc[NR][TB] __attribute__((aligned(64)));
      for (int r = 0; r < NR; r++) {
        memcpy(acc[r], &a0[r], sizeof(v16));
        memcpy(acc[r] + 16, &a1[r], sizeof(v16));
      }
      const int rn = n - o0 < NR ? n - o0 : NR;
      for (int t = 0; t < tn; t++)
        for (int r = 0; r < rn; r++) y[(size_t)(t0 + t) * n + o0 + r] = acc[r][t];
    }
  }
  free(xt);
  free(base);
  return LK_OK;
}

/* Whether every position is below the group size M (when M < 2^ib some index values do not fit).
 * For M a power of two a position fits when its bits from log2(M) up are clear, so whole words are
 * tested at once (the entry-by-entry scan cost 80 ms a call on a 28672 × 8192 4:8 weight, three
 * times a one-token product); other M are scanned entry by entry. */
static int nm_positions_fit(const uint8_t* idx, int64_t irb, int32_t n, int64_t per_row, int ib, int group) {
  if (group & (group - 1)) {
    for (int32_t r = 0; r < n; r++)
      for (int64_t q = 0; q < per_row; q++)
        if (((idx[r * irb + ((q * ib) >> 3)] >> ((q * ib) & 7)) & ((1 << ib) - 1)) >= group) return 0;
    return 1;
  }
  uint8_t high = 0; /* in every field of a byte, the bits a fitting position leaves clear */
  for (int sh = 0; sh < 8; sh += ib) high |= (uint8_t)((((1 << ib) - 1) & ~(group - 1)) << sh);
  const uint64_t high8 = high * 0x0101010101010101ull;
  const int64_t full = per_row * ib / 8; /* whole bytes of entries; the rest is checked alone */
  for (int32_t r = 0; r < n; r++) {
    const uint8_t* b = idx + r * irb;
    uint64_t any = 0;
    int64_t i = 0;
    for (; i + 8 <= full; i += 8) {
      uint64_t u;
      memcpy(&u, b + i, 8);
      any |= u;
    }
    for (; i < full; i++) any |= b[i];
    if (any & high8) return 0;
    for (int64_t q = full * 8 / ib; q < per_row; q++)
      if (((b[(q * ib) >> 3] >> ((q * ib) & 7)) & ((1 << ib) - 1)) >= group) return 0;
  }
  return 1;
}

int32_t lk_cpu_nm_matmul_f32(const float* x, double x_len, const uint8_t* idx, double idx_len,
                             const float* val, double val_len, float* y, double y_len, int32_t m,
                             int32_t k, int32_t n, int32_t keep, int32_t group) {
  const char* fn = "lk_cpu_nm_matmul_f32";
  if (m < 0 || k < 1 || n < 0)
    return lk_fail(LK_ESHAPE, "%s: m=%d k=%d n=%d, expected m, n >= 0 and k >= 1", fn, m, k, n);
  if (group < 1 || group > 16 || keep < 1 || keep > group)
    return lk_fail(LK_EARG, "%s: %d:%d, expected N:M with 1 <= N <= M <= 16", fn, keep, group);
  if (k % group)
    return lk_fail(LK_ESHAPE, "%s: k=%d is not a multiple of the group size M=%d", fn, k, group);
  const int ib = group <= 4 ? 2 : 4;
  const int64_t per_row = (int64_t)(k / group) * keep, irb = (per_row * ib + 7) / 8;
  if (lk_check_len(fn, "x", x_len, (double)m * k) || lk_check_len(fn, "y", y_len, (double)m * n) ||
      lk_check_len(fn, "idx", idx_len, (double)n * irb) ||
      lk_check_len(fn, "val", val_len, (double)n * per_row))
    return LK_ESHAPE;
  if (group != 1 << ib && !nm_positions_fit(idx, irb, n, per_row, ib, group))
    for (int32_t r = 0; r < n; r++) /* name the first position the group cannot hold */
      for (int64_t q = 0; q < per_row; q++) {
        int pos = (idx[r * irb + ((q * ib) >> 3)] >> ((q * ib) & 7)) & ((1 << ib) - 1);
        if (pos >= group)
          return lk_fail(LK_EARG, "%s: row %d entry %lld has position %d, expected < M=%d", fn, r,
                         (long long)q, pos, group);
      }
  packed_w w = {.k = k, .idx = idx, .idx_row_bytes = irb, .val = val, .keep = keep, .group = group,
                .idx_bits = ib};
  if (m >= FEW && n > 0) return nm_lanes(fn, x, y, m, k, n, &w);
  if (m > 0 && ((keep == 2 && group == 4) || (keep == 4 && group == 8))) {
    /* decoding 2:4 and 4:8: each row's index bytes read as its bitmap (at most N set bits per group:
     * never past the row's values) */
    const int kind = group == 4 ? ROW_NM24 : ROW_NM48;
#pragma omp parallel for schedule(static)
    for (int32_t r = 0; r < n; r++) {
      const uint8_t* b = idx + (int64_t)r * irb;
      const int64_t o = (int64_t)r * per_row;
      if (kind == ROW_NM24) row_few(b, val, o, o + per_row, x, k, m, n, r, y, ROW_NM24);
      else row_few(b, val, o, o + per_row, x, k, m, n, r, y, ROW_NM48);
    }
    return LK_OK;
  }
  return nm_rows_few(fn, x, y, m, k, n, &w);
}
