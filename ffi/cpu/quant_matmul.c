/* Products of GPTQ weight-quantized linear layers (W4A16, W8A16): Y[m,n] = X[m,k]·Ŵᵀ with
 * Ŵ[o,c] = s[o,g(c)]·(q[o,c] − z[o,g(c)]), the levels q stored row by row ("row-packed": 4-bit
 * nibbles, column c in byte c/2, low nibble for even c; or one byte per level), s and z n × G,
 * g(c) = g_idx[c] in any order (act-order).
 *
 * Decoding (up to FEW = 64 tokens, fewer where scales are looked up column by column: see
 * decode_limit). One token is memory bound, so every row is read once per TC tokens, NR_ROWS rows
 * at a time (each vector of X read serves them all). A row's levels are widened to f32 in
 * registers a block of QB columns at a time (nibbles: one vector of the block's even columns and
 * one of its odd columns, against X re-ordered the same way once per call). When every block lies
 * in one group (sequential groups of a multiple of QB columns, or one group) the scale is hoisted
 * out of the loop: row·x = Σ_g s_g·(Σ_{c∈g} x_c q_c − z_g·Σ_{c∈g} x_c), the per-group sums of X
 * computed once per call (route FLUSH); with AVX-512, 4-bit levels go one step further: each nibble
 * picks its dequantized value s_g·(q − z_g) from a 16-entry register (LUT), which costs no more
 * than widening it. Otherwise (act-order, odd group sizes) each column's scale is looked up (TAB*,
 * GATHER) and the zero term Σ_g s_g z_g Σ_{g(c)=g} x_c is subtracted once per row.
 *
 * Prefill: the weight is dequantized straight into the packed panels of the own GEMM
 * (lk_sgemm_nt_fill), 16 (AVX2: 8) rows × 16 columns per register transpose: the GEMM's FLOPs at
 * nearly its rate, from an eighth of the f32 weight's bytes (W4).
 *
 * A product of at most 2^18 multiply-adds runs on the calling thread, on the decode path. */
#include <stdlib.h>
#include <string.h>
#if defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h>
#endif
#include "internal.h"
/* vector arguments of the always-inline helpers: no ABI is crossed (the 256-bit builds warn) */
#pragma GCC diagnostic ignored "-Wpsabi"

/* QV floats a vector; TC tokens and NR_ROWS rows a pass (chosen by measurement among 2–8 × 2–8:
 * NR_ROWS·TC accumulators, the rows' levels and tables and two vectors of X fill the registers) */
#if defined(__AVX512F__)
#define QV 16
#define TC 4
#define NR_ROWS 4
#else
#define QV 8
#define TC 2
#define NR_ROWS 2
#endif
#define QB (2 * QV) /* columns per block: two vectors (a nibble block's even and odd columns) */
#define FEW 64 /* the most tokens the decode path takes (fewer for some routes: decode_limit) */
#define AI static inline __attribute__((always_inline))

typedef float vf __attribute__((vector_size(QV * 4)));
typedef int32_t vi __attribute__((vector_size(QV * 4)));

typedef struct {
  const uint8_t* packed;
  int64_t rb; /* bytes per row */
  const float* scales;
  const float* zeros;
  const int32_t* gidx;
  int32_t k, groups, nibble;
  /* decode */
  const float* xp;       /* X re-ordered block by block, zero-padded to kp columns: m × kp */
  int64_t kp, nfull;     /* kp = blocks·QB; nfull = blocks whose bytes all lie in a row */
  const int32_t* gp;     /* the group of each re-ordered column (TAB*, GATHER), kp */
  const int32_t* run_end; /* LUT, FLUSH: runs of blocks in one group, their ends and groups */
  const int32_t* run_group;
  int32_t runs;
  /* prefill */
  const float* st; /* AVX-512/AVX2: scales and zero points of each block of FB rows transposed, */
  const float* zt; /* st[(b·G + g)·FB + i] = s[FB·b + i, g] (zero past the last row) */
  const int32_t* tile_group; /* otherwise: group of each 16-column tile, −1 when it spans two */
} qw_t;

AI vf splat(float v) { return (vf){0} + v; }
AI float hsum(vf v) {
  float s = 0;
  for (int l = 0; l < QV; l++) s += v[l];
  return s;
}

/* The levels of one block as f32: nibbles (QV bytes) → even columns in *lo, odd in *hi; bytes
 * (QB bytes) → the first QV columns in *lo, the next in *hi. */
AI void load_block(const uint8_t* p, const int nib, vf* lo, vf* hi) {
#if defined(__AVX512F__)
  if (nib) {
    const __m512i v = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i*)p));
    *lo = (vf)_mm512_cvtepi32_ps(_mm512_and_si512(v, _mm512_set1_epi32(15)));
    *hi = (vf)_mm512_cvtepi32_ps(_mm512_srli_epi32(v, 4));
  } else {
    *lo = (vf)_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i*)p)));
    *hi = (vf)_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i*)(p + 16))));
  }
#elif defined(__AVX2__)
  if (nib) {
    const __m256i v = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i*)p));
    *lo = (vf)_mm256_cvtepi32_ps(_mm256_and_si256(v, _mm256_set1_epi32(15)));
    *hi = (vf)_mm256_cvtepi32_ps(_mm256_srli_epi32(v, 4));
  } else {
    *lo = (vf)_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i*)p)));
    *hi = (vf)_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i*)(p + 8))));
  }
#else
  for (int l = 0; l < QV; l++) {
    (*lo)[l] = nib ? (float)(p[l] & 15) : (float)p[l];
    (*hi)[l] = nib ? (float)(p[l] >> 4) : (float)p[QV + l];
  }
#endif
}

/* s[idx[0..QV−1]]: the scales of QV columns. */
AI vf gather(const float* s, const int32_t* idx) {
#if defined(__AVX512F__)
  return (vf)_mm512_i32gather_ps(_mm512_loadu_si512(idx), s, 4);
#elif defined(__AVX2__)
  return (vf)_mm256_i32gather_ps(s, _mm256_loadu_si256((const __m256i*)idx), 4);
#else
  vf v;
  for (int l = 0; l < QV; l++) v[l] = s[idx[l]];
  return v;
#endif
}

/* How a pass turns levels into products (see the top of the file):
 * LUT    nibbles, every block in one group, AVX-512: the 16 dequantized values s·(i − z) of the
 *        run's group sit in one register and each nibble picks its value (vpermps): no zero term;
 * FLUSH  every block in one group: Σ x·q per run, times the run's scale once;
 * TAB1/2/4  blocks across groups, at most 32/64/128 groups, AVX-512: each column's scale picked
 *        from the row's scales held in 2/4/8 registers (vpermt2ps, blends by the group's bits);
 * GATHER otherwise: each column's scale gathered from memory (on the machine measured 4 to 10
 *        times slower than the tables: decode_limit hands it to the GEMM early). */
enum { LUT, FLUSH, TAB1, TAB2, TAB4, GATHER };
/* tables of 16 scales a row, and rows per pass (a vector of X read serves them all) by route */
#define TABS_OF(route) ((route) == TAB1 ? 2 : (route) == TAB2 ? 4 : (route) == TAB4 ? 8 : 0)
#define ROWS_OF(route) \
  ((route) == TAB1 ? NR_ROWS - 1 : (route) == TAB2 ? NR_ROWS / 2 : (route) == TAB4 ? 1 : NR_ROWS)
#define IS_TAB(route) ((route) == TAB1 || (route) == TAB2 || (route) == TAB4)

#if defined(__AVX512F__)
/* The scales of 16 columns of groups g (< 32·tabs/2) from a row's scales in t[0 … tabs−1]: one
 * vpermt2ps per 32 groups, blended by the group's bits 5 and 6. */
AI __m512 lookup(const vf* t, __m512i g, const int tabs) {
  const __m512 v0 = _mm512_permutex2var_ps((__m512)t[0], g, (__m512)t[1]);
  if (tabs == 2) return v0;
  const __mmask16 b5 = _mm512_test_epi32_mask(g, _mm512_set1_epi32(32));
  const __m512 v01 = _mm512_mask_blend_ps(b5, v0, _mm512_permutex2var_ps((__m512)t[2], g, (__m512)t[3]));
  if (tabs == 4) return v01;
  const __m512 v2 = _mm512_permutex2var_ps((__m512)t[4], g, (__m512)t[5]);
  const __m512 v23 = _mm512_mask_blend_ps(b5, v2, _mm512_permutex2var_ps((__m512)t[6], g, (__m512)t[7]));
  return _mm512_mask_blend_ps(_mm512_test_epi32_mask(g, _mm512_set1_epi32(64)), v01, v23);
}
#endif

/* One block of R rows (src[r]: its bytes) against M tokens of X, into acc. */
AI void block(const qw_t* w, const uint8_t* const* src, int64_t b, const float* xb,
              const float* const* s, const vf* lut, const vf (*tab)[8], const int R, const int M,
              const int nib, const int route, vf acc[NR_ROWS][TC]) {
  vf lo[NR_ROWS], hi[NR_ROWS];
#if defined(__AVX512F__)
  __m512i gl = _mm512_setzero_si512(), gh = gl;
  if (IS_TAB(route)) {
    gl = _mm512_loadu_si512(w->gp + b * QB);
    gh = _mm512_loadu_si512(w->gp + b * QB + QV);
  }
#endif
  for (int r = 0; r < R; r++) {
#if defined(__AVX512F__)
    if (route == LUT) {
      const __m512i v = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i*)src[r]));
      lo[r] = (vf)_mm512_permutexvar_ps(v, (__m512)lut[r]); /* the index's low 4 bits */
      hi[r] = (vf)_mm512_permutexvar_ps(_mm512_srli_epi32(v, 4), (__m512)lut[r]);
      continue;
    }
#endif
    load_block(src[r], nib, &lo[r], &hi[r]);
#if defined(__AVX512F__)
    if (IS_TAB(route)) {
      lo[r] *= (vf)lookup(tab[r], gl, TABS_OF(route));
      hi[r] *= (vf)lookup(tab[r], gh, TABS_OF(route));
    }
#endif
    if (route == GATHER) {
      lo[r] *= gather(s[r], w->gp + b * QB);
      hi[r] *= gather(s[r], w->gp + b * QB + QV);
    }
  }
  xb += b * QB;
  for (int t = 0; t < M; t++) {
    const vf xl = *(const vf*)(xb + t * w->kp), xh = *(const vf*)(xb + t * w->kp + QV);
    for (int r = 0; r < R; r++) {
      acc[r][t] += lo[r] * xl;
      acc[r][t] += hi[r] * xh;
    }
  }
}

/* out[r][t] = row r0+r of the product with token t0+t, for R rows (rows past n repeat row n−1
 * and are not stored by the caller) and M tokens; FLUSH, TAB and GATHER leave out the zero term
 * Σ_g s_g z_g Σ_{g(c)=g} x_c (the caller's). A row's last, partial block comes from a
 * zero-padded copy. */
AI void pass(const qw_t* w, int64_t r0, int32_t n, int t0, const int R, const int M,
             const int nib, const int route, float out[NR_ROWS][TC]) {
  const int64_t bpb = nib ? QV : QB, nb = w->kp / QB, nfull = w->nfull;
  const uint8_t* row[NR_ROWS];
  const float* s[NR_ROWS];
  const float* z[NR_ROWS];
  uint8_t tail[NR_ROWS][QB];
  const uint8_t* src[NR_ROWS];
  vf acc[NR_ROWS][TC], tot[NR_ROWS][TC], lut[NR_ROWS], tab[NR_ROWS][8];
  for (int r = 0; r < R; r++) {
    const int64_t o = r0 + r < n ? r0 + r : n - 1;
    row[r] = w->packed + o * w->rb;
    s[r] = w->scales + o * w->groups;
    z[r] = w->zeros + o * w->groups;
    if (nb > nfull) {
      memset(tail[r], 0, QB);
      memcpy(tail[r], row[r] + nfull * bpb, (size_t)(w->rb - nfull * bpb));
    }
#if defined(__AVX512F__)
    for (int i = 0; i < TABS_OF(route); i++) { /* the row's scales, zero-padded */
      const int left = w->groups - 16 * i;
      const __mmask16 mk = (__mmask16)(left >= 16 ? 0xffff : left <= 0 ? 0 : (1u << left) - 1);
      tab[r][i] = (vf)_mm512_maskz_loadu_ps(mk, s[r] + (left > 0 ? 16 * i : 0));
    }
#endif
    for (int t = 0; t < M; t++) acc[r][t] = tot[r][t] = (vf){0};
  }
  const float* xb = w->xp + (int64_t)t0 * w->kp;
  if (IS_TAB(route) || route == GATHER) {
    for (int64_t b = 0; b < nfull; b++) {
      for (int r = 0; r < R; r++) src[r] = row[r] + b * bpb;
      block(w, src, b, xb, s, lut, tab, R, M, nib, route, acc);
    }
    if (nb > nfull) {
      for (int r = 0; r < R; r++) src[r] = tail[r];
      block(w, src, nfull, xb, s, lut, tab, R, M, nib, route, acc);
    }
  } else {
    vf iota;
    for (int l = 0; l < QV; l++) iota[l] = (float)l;
    int64_t b = 0;
    for (int32_t i = 0; i < w->runs; i++) {
      const int32_t g = w->run_group[i];
      const int64_t end = w->run_end[i], e = end < nfull ? end : nfull;
      if (route == LUT)
        for (int r = 0; r < R; r++) lut[r] = splat(s[r][g]) * (iota - z[r][g]);
      for (; b < e; b++) {
        for (int r = 0; r < R; r++) src[r] = row[r] + b * bpb;
        block(w, src, b, xb, s, lut, tab, R, M, nib, route, acc);
      }
      if (b < end) {
        for (int r = 0; r < R; r++) src[r] = tail[r];
        block(w, src, b++, xb, s, lut, tab, R, M, nib, route, acc);
      }
      if (route == FLUSH)
        for (int r = 0; r < R; r++) {
          const vf sv = splat(s[r][g]);
          for (int t = 0; t < M; t++) {
            tot[r][t] += sv * acc[r][t];
            acc[r][t] = (vf){0};
          }
        }
    }
  }
  for (int r = 0; r < R; r++)
    for (int t = 0; t < M; t++) out[r][t] = hsum(route == FLUSH ? tot[r][t] : acc[r][t]);
}

#define PASS_BODY(M)                                                                  \
  switch (route * 2 + nib) {                                                          \
    case LUT * 2 + 1: pass(w, r0, n, t0, ROWS_OF(LUT), M, 1, LUT, out); break;        \
    case FLUSH * 2 + 1: pass(w, r0, n, t0, ROWS_OF(FLUSH), M, 1, FLUSH, out); break;  \
    case FLUSH * 2: pass(w, r0, n, t0, ROWS_OF(FLUSH), M, 0, FLUSH, out); break;      \
    case TAB1 * 2 + 1: pass(w, r0, n, t0, ROWS_OF(TAB1), M, 1, TAB1, out); break;     \
    case TAB1 * 2: pass(w, r0, n, t0, ROWS_OF(TAB1), M, 0, TAB1, out); break;         \
    case TAB2 * 2 + 1: pass(w, r0, n, t0, ROWS_OF(TAB2), M, 1, TAB2, out); break;     \
    case TAB2 * 2: pass(w, r0, n, t0, ROWS_OF(TAB2), M, 0, TAB2, out); break;         \
    case TAB4 * 2 + 1: pass(w, r0, n, t0, ROWS_OF(TAB4), M, 1, TAB4, out); break;     \
    case TAB4 * 2: pass(w, r0, n, t0, ROWS_OF(TAB4), M, 0, TAB4, out); break;         \
    case GATHER * 2 + 1: pass(w, r0, n, t0, ROWS_OF(GATHER), M, 1, GATHER, out); break; \
    default: pass(w, r0, n, t0, ROWS_OF(GATHER), M, 0, GATHER, out);                  \
  }
#define PASS_CASE(M) \
  case M:            \
    PASS_BODY(M) break;

/* pass with M (1 … TC), the container and the route as constants. */
static void pass_any(const qw_t* w, int64_t r0, int32_t n, int t0, int M, int nib, int route,
                     float out[NR_ROWS][TC]) {
  switch (M) {
    PASS_CASE(1)
#if TC > 2
    PASS_CASE(2)
#endif
#if TC > 3
    PASS_CASE(3)
#endif
#if TC > 4
    PASS_CASE(4)
#endif
#if TC > 5
    PASS_CASE(5)
#endif
#if TC > 6
    PASS_CASE(6)
#endif
#if TC > 7
    PASS_CASE(7)
#endif
    default:
      PASS_BODY(TC)
  }
}

/* The decode route of a weight (see the enum): LUT or FLUSH when every block of QB columns lies in
 * one group, else a table lookup of the scales when they fit in registers, else GATHER. */
static int route_of(const int32_t* gidx, int32_t k, int32_t G, int nib) {
  for (int64_t c0 = 0; c0 < k; c0 += QB)
    for (int64_t c = c0 + 1; c < c0 + QB && c < k; c++)
      if (gidx[c] != gidx[c0]) {
#if defined(__AVX512F__)
        if (G <= 128) return G <= 32 ? TAB1 : G <= 64 ? TAB2 : TAB4;
#endif
        return GATHER;
      }
#if defined(__AVX512F__)
  if (nib) return LUT;
#endif
  return FLUSH;
}

/* Up to how many tokens the decode path beats the GEMM on dequantized panels, by route (measured
 * single-threaded on a 4096 × 4096 weight): at a few dozen tokens the GEMM spends more on packing
 * than the decode path on re-reading its rows for every TC tokens, unless the decode path looks
 * up scales column by column. */
static int decode_limit(int route) {
  switch (route) {
#if defined(__AVX512F__)
    case LUT: case FLUSH: case TAB1: return FEW;
#else
    case FLUSH: return 40;
#endif
    case TAB2: return 32;
    case TAB4: return 24;
    default: return 8;
  }
}

/* The decode path (m ≤ FEW tokens): X re-ordered and padded, the runs of groups or the columns'
 * groups, and the per-group sums of X prepared once; then NR_ROWS rows at a time, in parallel
 * when `threads`, each read once per TC tokens. */
static int32_t decode(const char* fn, qw_t* w, const float* x, float* y, int32_t m, int32_t n,
                      int nib, int route, int threads) {
  const int32_t k = w->k, G = w->groups;
  const int64_t nb = ((int64_t)k + QB - 1) / QB, kp = nb * QB;
  w->kp = kp;
  w->nfull = nib ? w->rb / QV : k / QB;
  float* xp = lk_alloc(sizeof(float) * (size_t)(m * kp));
  int32_t* runs = lk_alloc(sizeof(int32_t) * 2 * (size_t)nb);
  const int nh = (m + QV - 1) / QV; /* vectors of tokens in the zero term */
  vf* xs = NULL; /* per-group sums of X: xs[g·nh + h] holds tokens h·QV … h·QV+QV−1 */
  double* xsum = NULL;
  int32_t* gp = NULL;
  if (xp && runs) {
    /* runs of blocks in one group (LUT, FLUSH) */
    int32_t* end = runs;
    int32_t* grp = runs + nb;
    int32_t nr = 0;
    for (int64_t b = 0; b < nb && (route == LUT || route == FLUSH); b++) {
      const int32_t g = w->gidx[b * QB];
      if (nr > 0 && grp[nr - 1] == g) {
        end[nr - 1] = (int32_t)b + 1;
      } else {
        end[nr] = (int32_t)b + 1;
        grp[nr++] = g;
      }
    }
    w->run_end = end;
    w->run_group = grp;
    w->runs = nr;
    if ((IS_TAB(route) || route == GATHER) && (gp = lk_alloc(sizeof(int32_t) * (size_t)kp)))
      for (int64_t c = 0; c < kp; c++) { /* re-ordered column c holds column src (pad: group 0) */
        const int64_t b = c / QB, l = c % QB;
        const int64_t src = nib ? b * QB + (l < QV ? 2 * l : 2 * (l - QV) + 1) : c;
        gp[c] = src < k ? w->gidx[src] : 0;
      }
    if (route != LUT) {
      xs = lk_alloc(sizeof(vf) * (size_t)G * (size_t)nh);
      xsum = lk_alloc(sizeof(double) * (size_t)G);
    }
  }
  if (!xp || !runs || ((IS_TAB(route) || route == GATHER) && !gp) ||
      (route != LUT && (!xs || !xsum))) {
    free(xp);
    free(runs);
    free(gp);
    free(xs);
    free(xsum);
    return lk_fail(LK_ENOMEM, "%s: cannot allocate the re-ordered %d×%d tokens", fn, m, k);
  }
  w->gp = gp;
  if (xs) memset(xs, 0, sizeof(vf) * (size_t)G * (size_t)nh);
  for (int32_t t = 0; t < m; t++) {
    const float* xt = x + (int64_t)t * k;
    float* dst = xp + (int64_t)t * kp;
    if (nib) {
      for (int64_t c = 0; c < kp; c++) {
        const int64_t b = c / QB, l = c % QB;
        const int64_t src = b * QB + (l < QV ? 2 * l : 2 * (l - QV) + 1);
        dst[c] = src < k ? xt[src] : 0.0f;
      }
    } else {
      memcpy(dst, xt, sizeof(float) * (size_t)k);
      memset(dst + k, 0, sizeof(float) * (size_t)(kp - k));
    }
    if (xs) { /* Σ_{g(c)=g} x_c for the zero term, summed in f64 */
      memset(xsum, 0, sizeof(double) * (size_t)G);
      for (int32_t c = 0; c < k; c++) xsum[w->gidx[c]] += xt[c];
      for (int32_t g = 0; g < G; g++) ((float*)xs)[((int64_t)g * nh) * QV + t] = (float)xsum[g];
    }
  }
  w->xp = xp;
  const int R = ROWS_OF(route);
#pragma omp parallel for schedule(static) if (threads)
  for (int64_t r0 = 0; r0 < n; r0 += R) {
    float out[NR_ROWS][FEW], part[NR_ROWS][TC];
    for (int t0 = 0; t0 < m; t0 += TC) {
      const int M = m - t0 < TC ? m - t0 : TC;
      pass_any(w, r0, n, t0, M, nib, route, part);
      for (int r = 0; r < R; r++)
        for (int t = 0; t < M; t++) out[r][t0 + t] = part[r][t];
    }
    const int rn = n - r0 < R ? (int)(n - r0) : R;
    for (int r = 0; r < rn; r++) {
      vf corr[FEW / QV];
      for (int h = 0; h < FEW / QV; h++) corr[h] = (vf){0};
      if (route != LUT) {
        const float* s = w->scales + (r0 + r) * G;
        const float* z = w->zeros + (r0 + r) * G;
        for (int32_t g = 0; g < G; g++) {
          const vf sz = splat(s[g] * z[g]);
          for (int h = 0; h < nh; h++) corr[h] += sz * xs[(int64_t)g * nh + h];
        }
      }
      for (int t = 0; t < m; t++) y[(int64_t)t * n + r0 + r] = out[r][t] - corr[t / QV][t % QV];
    }
  }
  free(xp);
  free(runs);
  free(gp);
  free(xs);
  free(xsum);
  return LK_OK;
}

/* ---- prefill: dequantization into the GEMM's panels ---- */
typedef float f16v __attribute__((vector_size(64)));
typedef int32_t i16v __attribute__((vector_size(64)));
typedef uint8_t b16v __attribute__((vector_size(16)));
typedef uint8_t b8v __attribute__((vector_size(8)));

/* The levels q[row, col … col+15] as floats (col a multiple of 16, col + 16 ≤ k). */
AI f16v q16(const qw_t* w, int32_t row, int32_t col, const int nib) {
  const uint8_t* p = w->packed + row * w->rb;
  b16v q8;
  if (nib) {
    b8v b;
    memcpy(&b, p + col / 2, 8);
    const b8v lo = b & 15, hi = b >> 4;
    q8 = __builtin_shufflevector(lo, hi, 0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15);
  } else {
    memcpy(&q8, p + col, 16);
  }
  return __builtin_convertvector(__builtin_convertvector(q8, i16v), f16v);
}

/* Ŵ[row, c] one entry at a time (the columns past the last whole tile). */
static float dq1(const qw_t* w, int32_t row, int32_t c) {
  const uint8_t* p = w->packed + row * w->rb;
  const int q = w->nibble ? (p[c >> 1] >> ((c & 1) << 2)) & 15 : p[c];
  const int64_t g = (int64_t)row * w->groups + w->gidx[c];
  return ((float)q - w->zeros[g]) * w->scales[g];
}

#if defined(__AVX512F__)
#define FB 16 /* rows of W per transposed tile in the fill */
#elif defined(__AVX2__)
#define FB 8
/* Transposes the 8 × 8 floats in r[0..7] in place. */
AI void transpose8(__m256* r) {
  __m256 t[8], u[8];
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 8; i += 4) {
    u[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
    u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xee);
    u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
    u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xee);
  }
  for (int i = 0; i < 4; i++) {
    r[i] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x20);
    r[i + 4] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x31);
  }
}
#endif

/* lk_fill_fn: rows j0 … j0+nj−1, columns p0 … p0+kc−1 of Ŵ into dst[p·LK_FILL_NR + j], whole
 * 16-column tiles first. With AVX-512 (AVX2) the levels of FB = 16 (8) rows × 16 columns are
 * transposed in registers and then dequantized a column at a time, with that column's group's
 * scales and zero points of the FB rows read as one vector each from copies transposed block by
 * block (st, zt): no gathers, whatever the group indices. Without either, each row's tile is
 * dequantized (a broadcast scale where the tile lies in one group, else a lookup per column) and
 * stored with stride LK_FILL_NR. */
AI void fill_body(const qw_t* w, int j0, int nj, int p0, int kc, float* dst, const int nib) {
  const int c16 = kc / 16 * 16;
#if defined(__AVX512F__) || defined(__AVX2__)
  for (int g = 0; g < LK_FILL_NR; g += FB) {
    const int rows = nj - g < 0 ? 0 : (nj - g < FB ? nj - g : FB);
    if (!rows) {
      for (int p = 0; p < c16; p++) memset(dst + (size_t)p * LK_FILL_NR + g, 0, sizeof(float) * FB);
      continue;
    }
    const float* st = w->st + (int64_t)(j0 + g) * w->groups; /* rows j0+g … j0+g+FB−1 */
    const float* zt = w->zt + (int64_t)(j0 + g) * w->groups;
    for (int cc = 0; cc < c16; cc += 16) {
      const int32_t* gi = w->gidx + p0 + cc;
#if defined(__AVX512F__)
      __m512 r[16];
#pragma GCC unroll 16
      for (int i = 0; i < 16; i++)
        r[i] = i < rows ? (__m512)q16(w, j0 + g + i, p0 + cc, nib) : _mm512_setzero_ps();
      lk_transpose16(r);
#pragma GCC unroll 16
      for (int t = 0; t < 16; t++) {
        const int64_t o = (int64_t)gi[t] * FB;
        const __m512 v = _mm512_mul_ps(_mm512_sub_ps(r[t], _mm512_loadu_ps(zt + o)), _mm512_loadu_ps(st + o));
        _mm512_storeu_ps(dst + (size_t)(cc + t) * LK_FILL_NR + g, v);
      }
#else
      f16v q[8];
      for (int i = 0; i < 8; i++) q[i] = i < rows ? q16(w, j0 + g + i, p0 + cc, nib) : (f16v){0};
      for (int h = 0; h < 2; h++) {
        __m256 r[8];
        for (int i = 0; i < 8; i++) memcpy(&r[i], (const float*)&q[i] + 8 * h, 32);
        transpose8(r);
        for (int t = 0; t < 8; t++) {
          const int64_t o = (int64_t)gi[8 * h + t] * FB;
          const __m256 v = _mm256_mul_ps(_mm256_sub_ps(r[t], _mm256_loadu_ps(zt + o)), _mm256_loadu_ps(st + o));
          _mm256_storeu_ps(dst + (size_t)(cc + 8 * h + t) * LK_FILL_NR + g, v);
        }
      }
#endif
    }
  }
#else
  for (int j = 0; j < LK_FILL_NR; j++)
    for (int cc = 0; cc < c16; cc += 16) {
      f16v v = (f16v){0};
      if (j < nj) {
        const int32_t row = j0 + j, col = p0 + cc, tg = w->tile_group[col / 16];
        const float* s = w->scales + (int64_t)row * w->groups;
        const float* z = w->zeros + (int64_t)row * w->groups;
        f16v sv, zv;
        if (tg >= 0) {
          sv = (f16v){0} + s[tg];
          zv = (f16v){0} + z[tg];
        } else {
          for (int l = 0; l < 16; l++) {
            sv[l] = s[w->gidx[col + l]];
            zv[l] = z[w->gidx[col + l]];
          }
        }
        v = (q16(w, row, col, nib) - zv) * sv;
      }
      for (int t = 0; t < 16; t++) dst[(size_t)(cc + t) * LK_FILL_NR + j] = v[t];
    }
#endif
  for (int p = c16; p < kc; p++)
    for (int j = 0; j < LK_FILL_NR; j++)
      dst[(size_t)p * LK_FILL_NR + j] = j < nj ? dq1(w, j0 + j, p0 + p) : 0.0f;
}
static void fill_nibble(void* ctx, int j0, int nj, int p0, int kc, float* dst) {
  fill_body(ctx, j0, nj, p0, kc, dst, 1);
}
static void fill_byte(void* ctx, int j0, int nj, int p0, int kc, float* dst) {
  fill_body(ctx, j0, nj, p0, kc, dst, 0);
}

/* The prefill path: what the fill reads besides the weight (transposed scales and zero points
 * with AVX-512, the tiles' groups without), then the GEMM. */
static int32_t prefill(const char* fn, qw_t* w, const float* x, float* y, int32_t m, int32_t n) {
  const int32_t k = w->k;
#if defined(__AVX512F__) || defined(__AVX2__)
  const int64_t G = w->groups, nblk = ((int64_t)n + FB - 1) / FB + 1; /* + 1: slivers past n */
  float* st = lk_alloc(sizeof(float) * (size_t)(nblk * G * FB));
  float* zt = lk_alloc(sizeof(float) * (size_t)(nblk * G * FB));
  if (!st || !zt) {
    free(st);
    free(zt);
    return lk_fail(LK_ENOMEM, "%s: cannot allocate the transposed %d×%lld scales", fn, n, (long long)G);
  }
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < nblk; b++)
    for (int i = 0; i < FB; i++) {
      const int64_t o = FB * b + i;
      for (int64_t g = 0; g < G; g++) {
        st[(b * G + g) * FB + i] = o < n ? w->scales[o * G + g] : 0.0f;
        zt[(b * G + g) * FB + i] = o < n ? w->zeros[o * G + g] : 0.0f;
      }
    }
  w->st = st;
  w->zt = zt;
#else
  const int64_t tiles = k / 16;
  int32_t* tg = lk_alloc(sizeof(int32_t) * (size_t)(tiles ? tiles : 1));
  if (!tg) return lk_fail(LK_ENOMEM, "%s: cannot allocate %lld tile groups", fn, (long long)tiles);
  for (int64_t t = 0; t < tiles; t++) {
    int32_t g = w->gidx[16 * t];
    for (int c = 1; c < 16; c++)
      if (w->gidx[16 * t + c] != g) g = -1;
    tg[t] = g;
  }
  w->tile_group = tg;
#endif
  const int failed = lk_sgemm_nt_fill(m, n, k, x, k, w->nibble ? fill_nibble : fill_byte, w, y, n);
#if defined(__AVX512F__) || defined(__AVX2__)
  free(st);
  free(zt);
#else
  free(tg);
#endif
  return failed ? lk_fail(LK_ENOMEM, "%s: cannot allocate the packed %d×%d tokens", fn, m, k)
                : LK_OK;
}

int32_t lk_cpu_quant_matmul_f32(const float* x, double x_len, const uint8_t* packed,
                                double packed_len, const float* scales, double scales_len,
                                const float* zeros, double zeros_len, const int32_t* g_idx,
                                double g_idx_len, float* y, double y_len, int32_t m, int32_t k,
                                int32_t n, int32_t groups, int32_t nibble) {
  const char* fn = "lk_cpu_quant_matmul_f32";
  if (m < 0 || k < 1 || n < 0)
    return lk_fail(LK_ESHAPE, "%s: m=%d k=%d n=%d, expected m, n >= 0 and k >= 1", fn, m, k, n);
  if (groups < 1) return lk_fail(LK_EARG, "%s: groups=%d, expected >= 1", fn, groups);
  if (nibble != 0 && nibble != 1)
    return lk_fail(LK_EARG, "%s: nibble=%d, expected 0 (bytes) or 1 (nibbles)", fn, nibble);
  const int64_t rb = nibble ? ((int64_t)k + 1) / 2 : k;
  if (lk_check_len(fn, "x", x_len, (double)m * k) ||
      lk_check_len(fn, "packed", packed_len, (double)n * rb) ||
      lk_check_len(fn, "scales", scales_len, (double)n * groups) ||
      lk_check_len(fn, "zeros", zeros_len, (double)n * groups) ||
      lk_check_len(fn, "g_idx", g_idx_len, k) || lk_check_len(fn, "y", y_len, (double)m * n))
    return LK_ESHAPE;
  for (int32_t c = 0; c < k; c++)
    if (g_idx[c] < 0 || g_idx[c] >= groups)
      return lk_fail(LK_EARG, "%s: g_idx[%d]=%d, expected 0 <= g < groups=%d", fn, c, g_idx[c],
                     groups);
  if (m == 0 || n == 0) return LK_OK;
  qw_t w = {.packed = packed, .rb = rb, .scales = scales, .zeros = zeros, .gidx = g_idx, .k = k,
            .groups = groups, .nibble = nibble};
  const int route = route_of(g_idx, k, groups, nibble);
  /* a small product runs on the calling thread, FEW tokens at a time (a team costs more) */
  const int small = (double)m * n * k <= 262144.0;
  if (m <= decode_limit(route) || small) {
    for (int32_t t0 = 0; t0 < m; t0 += FEW) {
      const int32_t mm = m - t0 < FEW ? m - t0 : FEW;
      const int32_t st = decode(fn, &w, x + (int64_t)t0 * k, y + (int64_t)t0 * n, mm, n, nibble, route, !small);
      if (st) return st;
    }
    return LK_OK;
  }
  return prefill(fn, &w, x, y, m, n);
}
