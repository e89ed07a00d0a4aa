/* QUIK layers (Ashkboos et al.): 4- or 8-bit weights and per-token 4- or 8-bit activations, with a
 * few "outlier" input columns kept in f32.
 *
 * lk_cpu_quik_quantize_f32 — for each token t (a row of X, m × k) and the integer columns (every
 * column not listed in idx, kept in order; kq of them): mn, mx = min, max over them;
 * s = (mx − mn)/(2^b − 1) in f32 (1 when that is 0); level u = rint((x − mn)/s) ∈ [0, 2^b − 1]
 * stored signed as q = u − o (o = 2^(b−1)) in xq (m × kp int8, kp = kq rounded up to 64, zero
 * padding); xs[t] = s, xz[t] = mn + o·s (so that x ≈ s·q + xz), qs[t] = Σ q; the outlier columns
 * copied to xo (m × nout). Non-finite inputs fail, naming the token and column.
 *
 * lk_cpu_quik_matmul_f32 — Y[m, n] with, for output c, weight levels w ∈ [0, 2^b − 1] stored
 * unsigned (offset o: the signed level is w − o; 4-bit two to a byte, column p in byte p/2, low
 * nibble for even p; 8-bit one to a byte), row scale ws[c], signed level sum wsum[c] =
 * Σ_p (w[c,p] − o), and f32 outlier weights wo (n × nout):
 *   acc[t,c] = Σ_p q[t,p]·(w[c,p] − o)           (int32, exact)
 *   Y[t,c]   = acc·xs[t]·ws[c] + xz[t]·ws[c]·wsum[c] + Σ_j xo[t,j]·wo[c,j].
 * The integer product runs as Σ q·w − o·qs[t] with w unsigned and q signed: the operand order of
 * vpdpbusd (AVX-512 VNNI: u8 × s8, four products into an int32 lane) and of vpmaddubsw + vpmaddwd
 * (AVX2; 8-bit weights as two nibble planes, the high one weighted 16 by vpmaddwd, so that the
 * 16-bit pair sums cannot saturate). Weights are re-packed per call into panels of NRP outputs
 * (4-bit ones stay nibbles and are unpacked in registers); tokens go MR at a time against a panel,
 * all of k at once (the products' int32 sums need no k blocking). The outlier product is the f32
 * GEMM (lk_sgemm_nt), the epilogue adds the integer part to it. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#if defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h>
#endif
#include "internal.h"
#pragma GCC diagnostic ignored "-Wpsabi"

#define KPAD 64 /* activation rows are padded to a multiple of this many bytes */
#define KMAX 65536 /* the most integer columns: |Σ q·w| must fit int32 (8-bit: 128·255·k) */

#if defined(__AVX512F__) && defined(__AVX512VNNI__)
#define NRP 32 /* outputs per panel: two vectors of 16 int32 lanes */
#ifndef MR
#define MR 12  /* tokens per micro-tile: 24 accumulators */
#endif
#elif defined(__AVX2__)
#define NRP 16
#define MR 4
#else
#define NRP 16
#define MR 4
#endif
#ifndef MC /* tokens per block: the block's activations (MC·kp bytes) stay in L2 */
#define MC 96
#endif

static inline int64_t kpad(int64_t kq) { return (kq + KPAD - 1) / KPAD * KPAD; }

/* ---------------------------------------------------------------- activation quantization */

typedef struct {
  const float* x;
  const int32_t* idx;
  int32_t k, nout, bits;
  int64_t kp;
  int8_t* xq;
  float *xs, *xz, *xo;
  int32_t* qs;
} qx_t;

/* One token's scale, zero term; returns 0, or −2 when its range overflows f32. */
static int32_t scale_of(const qx_t* a, int32_t t, float* mn, float mx, float* s) {
  const int32_t kq = a->k - a->nout, o = 1 << (a->bits - 1), maxq = (1 << a->bits) - 1;
  *s = kq > 0 ? (mx - *mn) / (float)maxq : 0.0f;
  if (!isfinite(*s)) return -2;
  if (*s == 0.0f) *s = 1.0f;
  if (kq == 0) *mn = 0.0f;
  a->xs[t] = *s;
  a->xz[t] = *mn + (float)o * *s;
  return 0;
}

/* The first non-finite column of a token's row (there is one). */
static int32_t first_bad(const float* row, int32_t k) {
  for (int32_t c = 0; c < k; c++)
    if (!isfinite(row[c])) return c;
  return 0;
}

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
/* One token, 16 columns a step under the integer-column masks (imask[b]: bit l for column
 * 16b + l); returns the first non-finite column, −2 when the range overflows, or −1. */
static int32_t quantize_row(const qx_t* a, const __mmask16* imask, int32_t t) {
  const float* row = a->x + (int64_t)t * a->k;
  const int32_t k = a->k, nb = (k + 15) / 16, o = 1 << (a->bits - 1), maxq = (1 << a->bits) - 1;
  __m512 vmn = _mm512_set1_ps(INFINITY), vmx = _mm512_set1_ps(-INFINITY), vp = _mm512_setzero_ps();
  for (int32_t b = 0; b < nb; b++) {
    const __mmask16 valid = b == nb - 1 && k % 16 ? (__mmask16)((1u << (k % 16)) - 1) : 0xFFFF;
    const __m512 v = _mm512_maskz_loadu_ps(valid, row + 16 * b);
    vmn = _mm512_mask_min_ps(vmn, imask[b], vmn, v);
    vmx = _mm512_mask_max_ps(vmx, imask[b], vmx, v);
    vp = _mm512_fmadd_ps(v, _mm512_setzero_ps(), vp);
  }
  if (_mm512_reduce_add_ps(vp) != 0.0f) return first_bad(row, k);
  for (int32_t j = 0; j < a->nout; j++) a->xo[(int64_t)t * a->nout + j] = row[a->idx[j]];
  float mn = _mm512_reduce_min_ps(vmn), s;
  if (scale_of(a, t, &mn, _mm512_reduce_max_ps(vmx), &s)) return -2;
  const __m512 vmin = _mm512_set1_ps(mn), vs = _mm512_set1_ps(s), vhi = _mm512_set1_ps((float)maxq);
  const __m512i vo = _mm512_set1_epi32(o);
  __m512i vsum = _mm512_setzero_si512();
  int8_t* q = a->xq + (int64_t)t * a->kp;
  int32_t p = 0;
  for (int32_t b = 0; b < nb; b++) {
    const __mmask16 m = imask[b];
    if (!m) continue;
    __m512 u = _mm512_div_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, row + 16 * b), vmin), vs);
    u = _mm512_roundscale_ps(u, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    u = _mm512_min_ps(_mm512_max_ps(u, _mm512_setzero_ps()), vhi);
    const __m512i qi = _mm512_maskz_compress_epi32(m, _mm512_sub_epi32(_mm512_cvtps_epi32(u), vo));
    vsum = _mm512_add_epi32(vsum, qi); /* compressed: the lanes past the count are 0 */
    const int cnt = __builtin_popcount(m);
    _mm_mask_storeu_epi8(q + p, (__mmask16)((1u << cnt) - 1), _mm512_cvtepi32_epi8(qi));
    p += cnt;
  }
  if (p < a->kp) memset(q + p, 0, (size_t)(a->kp - p)); /* xq is NULL when k = nout */
  a->qs[t] = _mm512_reduce_add_epi32(vsum);
  return -1;
}
#else
/* One token, run by run between the outliers; returns as above. */
static int32_t quantize_row(const qx_t* a, const void* unused, int32_t t) {
  const float* row = a->x + (int64_t)t * a->k;
  const int32_t nout = a->nout, k = a->k, o = 1 << (a->bits - 1), maxq = (1 << a->bits) - 1;
  float mn = INFINITY, mx = -INFINITY, probe = 0;
  for (int32_t j = 0, c0 = 0; j <= nout; j++) {
    const int32_t c1 = j < nout ? a->idx[j] : k;
    for (int32_t c = c0; c < c1; c++) {
      const float v = row[c];
      mn = v < mn ? v : mn;
      mx = v > mx ? v : mx;
      probe += v * 0.0f;
    }
    if (j < nout) {
      probe += row[c1] * 0.0f;
      a->xo[(int64_t)t * nout + j] = row[c1];
    }
    c0 = c1 + 1;
  }
  if (probe != 0.0f) return first_bad(row, k); /* NaN: some value is not finite */
  float s;
  if (scale_of(a, t, &mn, mx, &s)) return -2;
  int8_t* q = a->xq + (int64_t)t * a->kp;
  int32_t sum = 0, p = 0;
  for (int32_t j = 0, c0 = 0; j <= nout; j++) {
    const int32_t c1 = j < nout ? a->idx[j] : k;
    for (int32_t c = c0; c < c1; c++, p++) {
      float u = rintf((row[c] - mn) / s);
      u = u < 0.0f ? 0.0f : u > (float)maxq ? (float)maxq : u;
      const int32_t qi = (int32_t)u - o;
      q[p] = (int8_t)qi;
      sum += qi;
    }
    c0 = c1 + 1;
  }
  if (p < a->kp) memset(q + p, 0, (size_t)(a->kp - p)); /* xq is NULL when k = nout */
  a->qs[t] = sum;
  return -1;
}
#endif

int32_t lk_cpu_quik_quantize_f32(const float* x, double x_len, const int32_t* idx, double idx_len,
                                 int8_t* xq, double xq_len, float* xs, double xs_len, float* xz,
                                 double xz_len, int32_t* qs, double qs_len, float* xo,
                                 double xo_len, int32_t m, int32_t k, int32_t nout, int32_t bits) {
  const char* fn = "lk_cpu_quik_quantize_f32";
  if (m < 0 || k < 1 || nout < 0 || nout > k)
    return lk_fail(LK_ESHAPE, "%s: m=%d k=%d nout=%d, expected m >= 0, k >= 1, 0 <= nout <= k",
                   fn, m, k, nout);
  if (bits != 4 && bits != 8) return lk_fail(LK_EARG, "%s: bits=%d, expected 4 or 8", fn, bits);
  if (k - nout > KMAX)
    return lk_fail(LK_ESHAPE, "%s: %d integer columns, at most %d fit the int32 sums", fn,
                   k - nout, KMAX);
  const int64_t kp = kpad(k - nout);
  if (lk_check_len(fn, "x", x_len, (double)m * k) || lk_check_len(fn, "idx", idx_len, nout) ||
      lk_check_len(fn, "xq", xq_len, (double)m * kp) || lk_check_len(fn, "xs", xs_len, m) ||
      lk_check_len(fn, "xz", xz_len, m) || lk_check_len(fn, "qs", qs_len, m) ||
      lk_check_len(fn, "xo", xo_len, (double)m * nout))
    return LK_ESHAPE;
  for (int32_t j = 0; j < nout; j++)
    if (idx[j] < 0 || idx[j] >= k || (j > 0 && idx[j] <= idx[j - 1]))
      return lk_fail(LK_EARG, "%s: idx[%d]=%d, expected increasing column indices below k=%d", fn,
                     j, idx[j], k);
  qx_t a = {.x = x, .idx = idx, .k = k, .nout = nout, .bits = bits, .kp = kp, .xq = xq, .xs = xs,
            .xz = xz, .xo = xo, .qs = qs};
  int32_t bad_t = -1, bad_c = 0;
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
  const int32_t nb = (k + 15) / 16;
  __mmask16* imask = lk_alloc(sizeof(__mmask16) * (size_t)nb);
  if (!imask) return lk_fail(LK_ENOMEM, "%s: cannot allocate %d masks", fn, nb);
  for (int32_t b = 0; b < nb; b++)
    imask[b] = b == nb - 1 && k % 16 ? (__mmask16)((1u << (k % 16)) - 1) : 0xFFFF;
  for (int32_t j = 0; j < nout; j++) imask[idx[j] / 16] &= (__mmask16) ~(1u << (idx[j] % 16));
#else
  const void* imask = NULL;
#endif
#pragma omp parallel for schedule(static) if ((double)m * k > 65536.0)
  for (int32_t t = 0; t < m; t++) {
    const int32_t c = quantize_row(&a, imask, t);
    if (c != -1) {
#pragma omp critical(lk_quik_bad)
      if (bad_t < 0 || t < bad_t) bad_t = t, bad_c = c;
    }
  }
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
  free(imask);
#endif
  if (bad_t >= 0) {
    if (bad_c == -2)
      return lk_fail(LK_EARG, "%s: token %d's range overflows f32", fn, bad_t);
    return lk_fail(LK_EARG, "%s: x[%d, %d] = %g, expected a finite value", fn, bad_t, bad_c,
                   (double)x[(int64_t)bad_t * k + bad_c]);
  }
  return LK_OK;
}

/* ---------------------------------------------------------------- integer product */

typedef struct {
  const int8_t* xq;
  int64_t kp;
  const float *xs, *xz;
  const int32_t* qs;
  const uint8_t* wq;
  int64_t rb; /* bytes per weight row */
  const float* ws;
  const int32_t* wsum;
  float* wsw; /* ws·wsum, n */
  float* y;
  int32_t* acc; /* NULL when not wanted */
  int32_t m, kq, n, bits;
  uint8_t* panels; /* ⌈n/NRP⌉ panels of pb bytes */
  int64_t pb;
} qm_t;

static inline int level(const qm_t* a, int32_t c, int64_t p) {
  const uint8_t* r = a->wq + (int64_t)c * a->rb;
  return a->bits == 4 ? (p & 1 ? r[p >> 1] >> 4 : r[p >> 1] & 15) : r[p];
}

/* The epilogue of one output: y += acc·xs·ws + xz·ws·wsum (acc already shifted to signed). */
static inline void finish(const qm_t* a, int32_t t, int32_t c, int32_t acc) {
  const int64_t i = (int64_t)t * a->n + c;
  if (a->acc) a->acc[i] = acc;
  a->y[i] = (float)acc * (a->xs[t] * a->ws[c]) + (a->xz[t] * a->wsw[c] + a->y[i]);
}

#if defined(__AVX2__)
/* Packs outputs c0 … c0+NRP−1 into panel dst, per group g of four columns 4g … 4g+3:
 *   4-bit: NRP·2 bytes, byte 4i+e holds column 4g+e of output i (low nibble) and of output
 *          i + NRP/2 (high nibble), i < NRP/2;
 *   8-bit: NRP·4 bytes, byte 4i+e holds column 4g+e of output i.
 * Levels past kq (or of outputs past n) are packed as whatever lies there, or 0: the zero padding
 * of the activations cancels them (the epilogue's Σ w comes from wsum). */
static void pack_panel(const qm_t* a, int32_t c0, uint8_t* dst) {
  const int64_t groups = a->kp / 4, rb = a->rb;
  if (a->bits == 4) {
    const int half = NRP / 2;
    for (int i = 0; i < half; i++) {
      const int32_t cl = c0 + i, ch = c0 + half + i;
      const uint8_t* rl = cl < a->n ? a->wq + (int64_t)cl * rb : NULL;
      const uint8_t* rh = ch < a->n ? a->wq + (int64_t)ch * rb : NULL;
      for (int64_t g = 0; g < groups; g++) {
        /* the group's four nibbles of each row: bytes 2g and 2g+1 */
        uint32_t lo = 0, hi = 0;
        if (2 * g + 1 < rb) {
          if (rl) lo = (uint32_t)rl[2 * g] | (uint32_t)rl[2 * g + 1] << 8;
          if (rh) hi = (uint32_t)rh[2 * g] | (uint32_t)rh[2 * g + 1] << 8;
        } else if (2 * g < rb) {
          if (rl) lo = rl[2 * g];
          if (rh) hi = rh[2 * g];
        }
#if defined(__BMI2__)
        const uint32_t v = _pdep_u32(lo, 0x0F0F0F0Fu) | _pdep_u32(hi, 0xF0F0F0F0u);
#else
        uint32_t v = 0;
        for (int e = 0; e < 4; e++) v |= ((lo >> 4 * e & 15) | (hi >> 4 * e & 15) << 4) << 8 * e;
#endif
        memcpy(dst + g * (NRP * 2) + 4 * i, &v, 4);
      }
    }
  } else {
    for (int i = 0; i < NRP; i++) {
      const int32_t c = c0 + i;
      const uint8_t* r = c < a->n ? a->wq + (int64_t)c * rb : NULL;
      for (int64_t g = 0; g < groups; g++) {
        uint32_t v = 0;
        if (r && 4 * g + 4 <= rb) memcpy(&v, r + 4 * g, 4);
        else if (r && 4 * g < rb) memcpy(&v, r + 4 * g, (size_t)(rb - 4 * g));
        memcpy(dst + g * (NRP * 4) + 4 * i, &v, 4);
      }
    }
  }
}
#endif

#if NRP == 32
/* The epilogue of a micro-tile whose raw sums are in buf (kept out of the product loop, whose
 * accumulators then stay in registers). */
static __attribute__((noinline)) void epilogue512(const qm_t* a, int32_t (*buf)[32], int32_t t0, int mr, int32_t c0) {
  const int o = 1 << (a->bits - 1);
  const int32_t left = a->n - c0;
  const __mmask16 m0 = left >= 16 ? 0xFFFF : (__mmask16)((1u << left) - 1),
                  m1 = left >= 32 ? 0xFFFF : left <= 16 ? 0 : (__mmask16)((1u << (left - 16)) - 1);
  const __m512 ws0 = _mm512_maskz_loadu_ps(m0, a->ws + c0), ws1 = _mm512_maskz_loadu_ps(m1, a->ws + c0 + 16);
  const __m512 wz0 = _mm512_maskz_loadu_ps(m0, a->wsw + c0), wz1 = _mm512_maskz_loadu_ps(m1, a->wsw + c0 + 16);
  for (int r = 0; r < mr; r++) {
    const int32_t t = t0 + r;
    const __m512i shift = _mm512_set1_epi32(o * a->qs[t]);
    const __m512i i0 = _mm512_sub_epi32(_mm512_loadu_si512(buf[r]), shift), i1 = _mm512_sub_epi32(_mm512_loadu_si512(buf[r] + 16), shift);
    const int64_t at = (int64_t)t * a->n + c0;
    if (a->acc) {
      _mm512_mask_storeu_epi32(a->acc + at, m0, i0);
      _mm512_mask_storeu_epi32(a->acc + at + 16, m1, i1);
    }
    const __m512 xs = _mm512_set1_ps(a->xs[t]), xz = _mm512_set1_ps(a->xz[t]);
    float* y = a->y + at;
    /* acc·(xs·ws) + (xz·(ws·wsum) + y): the order of the scalar finish() */
    const __m512 y0 = _mm512_add_ps(_mm512_mul_ps(xz, wz0), _mm512_maskz_loadu_ps(m0, y));
    const __m512 y1 = _mm512_add_ps(_mm512_mul_ps(xz, wz1), _mm512_maskz_loadu_ps(m1, y + 16));
    _mm512_mask_storeu_ps(y, m0, _mm512_add_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(i0), _mm512_mul_ps(xs, ws0)), y0));
    _mm512_mask_storeu_ps(y + 16, m1, _mm512_add_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(i1), _mm512_mul_ps(xs, ws1)), y1));
  }
}

/* AVX-512 VNNI: tokens t0 … t0+mr−1 (mr ≤ MR) against one panel. */
static void tile(const qm_t* a, const uint8_t* panel, int32_t t0, int mr, int32_t c0) {
  __m512i acc[MR][2];
  for (int r = 0; r < MR; r++) acc[r][0] = acc[r][1] = _mm512_setzero_si512();
  const int64_t groups = a->kp / 4;
  const int32_t* xr[MR];
  for (int r = 0; r < MR; r++)
    xr[r] = (const int32_t*)(a->xq + (int64_t)(t0 + (r < mr ? r : 0)) * a->kp);
  const __m512i low = _mm512_set1_epi8(15);
  if (a->bits == 4) {
    for (int64_t g = 0; g < groups; g++) {
      const __m512i v = _mm512_loadu_si512(panel + g * 64);
      const __m512i w0 = _mm512_and_si512(v, low), w1 = _mm512_and_si512(_mm512_srli_epi16(v, 4), low);
#pragma GCC unroll 12
      for (int r = 0; r < MR; r++) {
        const __m512i x = _mm512_set1_epi32(xr[r][g]);
        acc[r][0] = _mm512_dpbusd_epi32(acc[r][0], w0, x);
        acc[r][1] = _mm512_dpbusd_epi32(acc[r][1], w1, x);
      }
    }
  } else {
    for (int64_t g = 0; g < groups; g++) {
      const __m512i w0 = _mm512_loadu_si512(panel + g * 128),
                    w1 = _mm512_loadu_si512(panel + g * 128 + 64);
#pragma GCC unroll 12
      for (int r = 0; r < MR; r++) {
        const __m512i x = _mm512_set1_epi32(xr[r][g]);
        acc[r][0] = _mm512_dpbusd_epi32(acc[r][0], w0, x);
        acc[r][1] = _mm512_dpbusd_epi32(acc[r][1], w1, x);
      }
    }
  }
  int32_t buf[MR][32];
#pragma GCC unroll 12
  for (int r = 0; r < MR; r++) {
    _mm512_storeu_si512(buf[r], acc[r][0]);
    _mm512_storeu_si512(buf[r] + 16, acc[r][1]);
  }
  epilogue512(a, buf, t0, mr, c0);
}
#elif defined(__AVX2__)
/* AVX2: vpmaddubsw (u8 × s8 → pairs summed in int16) then vpmaddwd (→ int32 lanes). */
static void tile(const qm_t* a, const uint8_t* panel, int32_t t0, int mr, int32_t c0) {
  __m256i acc[MR][2];
  for (int r = 0; r < MR; r++) acc[r][0] = acc[r][1] = _mm256_setzero_si256();
  const int64_t groups = a->kp / 4;
  const int32_t* xr[MR];
  for (int r = 0; r < MR; r++)
    xr[r] = (const int32_t*)(a->xq + (int64_t)(t0 + (r < mr ? r : 0)) * a->kp);
  const __m256i low = _mm256_set1_epi8(15), ones = _mm256_set1_epi16(1),
                sixteen = _mm256_set1_epi16(16);
  if (a->bits == 4) {
    for (int64_t g = 0; g < groups; g++) {
      const __m256i v = _mm256_loadu_si256((const __m256i*)(panel + g * 32));
      const __m256i w0 = _mm256_and_si256(v, low),
                    w1 = _mm256_and_si256(_mm256_srli_epi16(v, 4), low);
#pragma GCC unroll 4
      for (int r = 0; r < MR; r++) {
        const __m256i x = _mm256_set1_epi32(xr[r][g]);
        acc[r][0] = _mm256_add_epi32(acc[r][0],
                                     _mm256_madd_epi16(_mm256_maddubs_epi16(w0, x), ones));
        acc[r][1] = _mm256_add_epi32(acc[r][1],
                                     _mm256_madd_epi16(_mm256_maddubs_epi16(w1, x), ones));
      }
    }
  } else {
    for (int64_t g = 0; g < groups; g++) {
      for (int h = 0; h < 2; h++) {
        const __m256i v = _mm256_loadu_si256((const __m256i*)(panel + g * 64 + 32 * h));
        const __m256i lo = _mm256_and_si256(v, low),
                      hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low);
#pragma GCC unroll 4
        for (int r = 0; r < MR; r++) {
          const __m256i x = _mm256_set1_epi32(xr[r][g]);
          const __m256i s = _mm256_add_epi32(
              _mm256_madd_epi16(_mm256_maddubs_epi16(lo, x), ones),
              _mm256_madd_epi16(_mm256_maddubs_epi16(hi, x), sixteen));
          acc[r][h] = _mm256_add_epi32(acc[r][h], s);
        }
      }
    }
  }
  const int o = 1 << (a->bits - 1);
  for (int r = 0; r < mr; r++) {
    const int32_t t = t0 + r, shift = o * a->qs[t];
    int32_t lanes[16];
    _mm256_storeu_si256((__m256i*)lanes, acc[r][0]);
    _mm256_storeu_si256((__m256i*)(lanes + 8), acc[r][1]);
    for (int i = 0; i < 16 && c0 + i < a->n; i++) finish(a, t, c0 + i, lanes[i] - shift);
  }
}
#endif

#if !defined(__AVX2__)
/* Without AVX2: one output at a time from the row-packed weight. */
static void plain(const qm_t* a, int32_t t0, int mr, int32_t c0) {
  const int o = 1 << (a->bits - 1);
  for (int32_t c = c0; c < c0 + NRP && c < a->n; c++)
    for (int32_t t = t0; t < t0 + mr; t++) {
      const int8_t* q = a->xq + (int64_t)t * a->kp;
      int32_t s = 0;
      for (int32_t p = 0; p < a->kq; p++) s += q[p] * (level(a, c, p) - o);
      finish(a, t, c, s);
    }
}
#endif

int32_t lk_cpu_quik_matmul_f32(const int8_t* xq, double xq_len, const float* xs, double xs_len,
                               const float* xz, double xz_len, const int32_t* qs, double qs_len,
                               const float* xo, double xo_len, const uint8_t* wq, double wq_len,
                               const float* ws, double ws_len, const int32_t* wsum,
                               double wsum_len, const float* wo, double wo_len, float* y,
                               double y_len, int32_t* acc, double acc_len, int32_t m, int32_t kq,
                               int32_t nout, int32_t n, int32_t bits) {
  const char* fn = "lk_cpu_quik_matmul_f32";
  if (m < 0 || kq < 0 || nout < 0 || n < 0 || kq + nout < 1)
    return lk_fail(LK_ESHAPE, "%s: m=%d kq=%d nout=%d n=%d, expected sizes >= 0, kq + nout >= 1",
                   fn, m, kq, nout, n);
  if (bits != 4 && bits != 8) return lk_fail(LK_EARG, "%s: bits=%d, expected 4 or 8", fn, bits);
  if (kq > KMAX)
    return lk_fail(LK_ESHAPE, "%s: kq=%d integer columns, at most %d fit the int32 sums", fn, kq,
                   KMAX);
  const int64_t kp = kpad(kq), rb = bits == 4 ? ((int64_t)kq + 1) / 2 : kq;
  if (lk_check_len(fn, "xq", xq_len, (double)m * kp) || lk_check_len(fn, "xs", xs_len, m) ||
      lk_check_len(fn, "xz", xz_len, m) || lk_check_len(fn, "qs", qs_len, m) ||
      lk_check_len(fn, "xo", xo_len, (double)m * nout) ||
      lk_check_len(fn, "wq", wq_len, (double)n * rb) || lk_check_len(fn, "ws", ws_len, n) ||
      lk_check_len(fn, "wsum", wsum_len, n) || lk_check_len(fn, "wo", wo_len, (double)n * nout) ||
      lk_check_len(fn, "y", y_len, (double)m * n))
    return LK_ESHAPE;
  if (acc_len != 0 && lk_check_len(fn, "acc", acc_len, (double)m * n)) return LK_ESHAPE;
  if (m == 0 || n == 0) return LK_OK;
  if (nout > 0) lk_sgemm_nt(m, n, nout, xo, nout, wo, nout, 0.0f, y, n);
  else memset(y, 0, sizeof(float) * (size_t)m * n);
  if (kq == 0) {
    for (int64_t i = 0; i < (int64_t)m * n && acc_len != 0; i++) acc[i] = 0;
    return LK_OK;
  }
  qm_t a = {.xq = xq, .kp = kp, .xs = xs, .xz = xz, .qs = qs, .wq = wq, .rb = rb, .ws = ws,
            .wsum = wsum, .y = y, .acc = acc_len != 0 ? acc : NULL, .m = m, .kq = kq, .n = n,
            .bits = bits};
  const int32_t np = (n + NRP - 1) / NRP;
  a.wsw = lk_alloc(sizeof(float) * (size_t)n);
  if (!a.wsw) return lk_fail(LK_ENOMEM, "%s: cannot allocate %d floats", fn, n);
  for (int32_t c = 0; c < n; c++) a.wsw[c] = ws[c] * (float)wsum[c];
  const int threads = (double)m * n * kq > 262144.0;
#if defined(__AVX2__)
  a.pb = bits == 4 ? kp / 4 * NRP * 2 : kp / 4 * NRP * 4;
  a.panels = lk_alloc((size_t)(np * a.pb));
  if (!a.panels) {
    free(a.wsw);
    return lk_fail(LK_ENOMEM, "%s: cannot allocate %d weight panels", fn, np);
  }
#pragma omp parallel if (threads)
  {
#pragma omp for schedule(static)
    for (int32_t b = 0; b < np; b++) pack_panel(&a, b * NRP, a.panels + b * a.pb);
    for (int32_t t0 = 0; t0 < m; t0 += MC) {
      const int32_t t1 = t0 + MC < m ? t0 + MC : m;
#pragma omp for schedule(static)
      for (int32_t b = 0; b < np; b++)
        for (int32_t t = t0; t < t1; t += MR)
          tile(&a, a.panels + b * a.pb, t, t1 - t < MR ? t1 - t : MR, b * NRP);
    }
  }
  free(a.panels);
#else
#pragma omp parallel for schedule(static) if (threads)
  for (int32_t b = 0; b < np; b++)
    for (int32_t t = 0; t < m; t += MR) plain(&a, t, m - t < MR ? m - t : MR, b * NRP);
#endif
  free(a.wsw);
  return LK_OK;
}

/* ---------------------------------------------------------------- weight scales */

/* QUIK's symmetric per-row weight scales (lib/quant/quik.ts quikWeightScales is the reference):
 * over the columns with is_int[j] = 1, xmax = max|w| (1 when 0), s = f16(p·xmax/(2^(b−1) − 1))
 * with p = 1, or with clip the p among 1, 0.99, …, 0.21 of least Σ|s·clamp(round(w/s)) − w|^2.4. */
int32_t lk_cpu_quik_scales_f64(const double* w, double w_len, const uint8_t* is_int,
                               double is_int_len, double* scales, double scales_len,
                               int32_t rows, int32_t cols, int32_t bits, int32_t clip) {
  const char* fn = "lk_cpu_quik_scales_f64";
  if (rows < 0 || cols < 1)
    return lk_fail(LK_ESHAPE, "%s: rows=%d cols=%d, expected rows >= 0, cols >= 1", fn, rows, cols);
  if (bits < 2 || bits > 8) return lk_fail(LK_EARG, "%s: bits=%d, expected 2 to 8", fn, bits);
  if (lk_check_len(fn, "w", w_len, (double)rows * cols) ||
      lk_check_len(fn, "is_int", is_int_len, cols) || lk_check_len(fn, "scales", scales_len, rows))
    return LK_ESHAPE;
  const double o = (double)(1 << (bits - 1));
  int32_t bad = -1;
#pragma omp parallel for schedule(dynamic, 4) if ((double)rows * cols * (clip ? 80 : 1) > 65536.0)
  for (int32_t r = 0; r < rows; r++) {
    const double* x = w + (int64_t)r * cols;
    double xmax = 0;
    for (int32_t j = 0; j < cols; j++)
      if (is_int[j]) xmax = fabs(x[j]) > xmax ? fabs(x[j]) : xmax;
    if (!isfinite(xmax)) {
#pragma omp critical(lk_quik_scales)
      if (bad < 0 || r < bad) bad = r;
      continue;
    }
    if (xmax == 0) xmax = 1;
    double best = lk_round_f16(xmax / (o - 1));
    if (clip) {
      double best_err = INFINITY;
      for (int i = 0; i < 80; i++) {
        const double s = lk_round_f16((1 - i / 100.0) * xmax / (o - 1));
        if (!(s > 0)) continue;
        double err = 0;
        for (int32_t j = 0; j < cols; j++) {
          if (!is_int[j]) continue;
          double q = nearbyint(x[j] / s);
          q = q < -o ? -o : q > o - 1 ? o - 1 : q;
          err += exp(2.4 * log(fabs(s * q - x[j]))); /* |d|^2.4 (pow is 3× slower) */
        }
        if (err < best_err) best_err = err, best = s;
      }
    }
    scales[r] = best;
  }
  if (bad >= 0) return lk_fail(LK_EARG, "%s: row %d holds a weight that is not finite", fn, bad);
  return LK_OK;
}
