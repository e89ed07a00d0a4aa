/* Bucketed max–min quantization for compressed collectives (QSDP, CGX; lib/comm/quantize.ts):
 * the same arithmetic as the ts reference and ffi/cuda/comm_quant.cu, step for step, so that the
 * three backends give the same bytes.
 *
 * The message for n elements in buckets of B: first the metadata, per bucket its min then its
 * unit (f32 little-endian, or f16 when meta_f16), then the levels, b bits each, packed densely
 * least significant bit first across bucket boundaries (level i in bits [i·b, i·b + b) of the
 * level section), the last byte zero-padded. unit = (max − min)/(2^b − 1) in f32 (f16 metadata:
 * min rounded down and unit rounded up to f16, so that the grid still covers the bucket);
 * level = min(⌊(x − min)/unit + r⌋, 2^b − 1), r = 0.5 (nearest) or a draw in [0, 1) from a
 * counter-based hash of (seed, element index), H((i + k0) ^ k1) (stochastic), every operation rounded to f32
 * (no contraction into FMA: this file is compiled with fp-contract off);
 * dequantized y = min + level·unit (f32).
 *
 * Work is split between threads in groups of whole buckets that start on a multiple of 8
 * elements (so that each group's levels start on a byte); within a group, levels go through a
 * small byte buffer and are packed 8 at a time (b bytes), with BMI2's pext/pdep where AVX-512 is
 * (Intel, AMD Zen 4: fast there; Zen 1–2, which microcode them, have no AVX-512). */
#pragma GCC optimize("fp-contract=off")
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#include "internal.h"
#if defined(__AVX512F__) && defined(__BMI2__)
#include <immintrin.h>
#define CQ_PEXT 1
#endif

#define CQ_CHUNK 4096 /* levels buffered before packing (a multiple of 8) */

/* ---- the counter-based draws (shared with the ts reference and the CUDA kernel) ---- */
static inline uint32_t cq_hash(uint32_t x) { /* "lowbias32" (C. Wellons), a bijection */
  x ^= x >> 16;
  x *= 0x7feb352du;
  x ^= x >> 15;
  x *= 0x846ca68bu;
  x ^= x >> 16;
  return x;
}

typedef struct {
  uint32_t k0, k1;
} cq_keys;

static cq_keys cq_derive(double seed) {
  const uint32_t hi = (uint32_t)floor(seed / 4294967296.0);
  const uint32_t lo = (uint32_t)(seed - (double)hi * 4294967296.0);
  cq_keys k;
  k.k0 = cq_hash(lo ^ cq_hash(hi ^ 0x6a09e667u));
  k.k1 = cq_hash(k.k0 ^ 0xbb67ae85u);
  return k;
}

/* ---- f16 metadata: values rounded toward −∞ / +∞ onto f16, and their bits ---- */
static double cq_f16_round(double v, int up) {
  if (v == 0) return 0;
  int e;
  frexp(fabs(v), &e); /* 2^(e−1) ≤ |v| < 2^e */
  const int qe = e - 11 < -24 ? -24 : e - 11;
  const double t = ldexp(v, -qe);
  return ldexp(up ? ceil(t) : floor(t), qe) + 0.0; /* + 0.0: −0 → +0 */
}

static uint16_t cq_f16_bits(double r) { /* r an f16 value, |r| ≤ 65504 */
  uint16_t s = r < 0 ? 0x8000 : 0;
  const double a = fabs(r);
  if (a < 0x1p-14) return s | (uint16_t)(a * 0x1p24);
  int e;
  frexp(a, &e);
  return s | (uint16_t)((e - 1 + 15) << 10) | (uint16_t)(ldexp(a, 11 - e) - 1024);
}

static float cq_f16_value(uint16_t h) {
  const int ex = (h >> 10) & 31, m = h & 1023;
  const float a = ex == 0 ? ldexpf((float)m, -24) : ldexpf((float)(m + 1024), ex - 25);
  return (h & 0x8000) ? -a : a;
}

static inline double cq_buckets(double n, double bucket) { return n == 0 ? 0 : ceil(n / bucket); }

static double cq_bytes(double n, int bits, int32_t bucket, int meta_f16) {
  return cq_buckets(n, bucket) * (meta_f16 ? 4 : 8) + ceil(n * bits / 8);
}

/* checks bits, bucket, meta_f16 and n (an integer in [0, 2^32)) */
static int32_t cq_check_spec(const char* fn, double n, int32_t bits, int32_t bucket,
                             int32_t meta_f16) {
  if (bits < 1 || bits > 8)
    return lk_fail(LK_EARG, "%s: bits=%d, expected an integer from 1 to 8", fn, bits);
  if (bucket < 1)
    return lk_fail(LK_EARG, "%s: bucket size %d, expected an integer from 1 to 2147483647", fn,
                   bucket);
  if (meta_f16 != 0 && meta_f16 != 1)
    return lk_fail(LK_EARG, "%s: meta_f16=%d, expected 0 (f32) or 1 (f16)", fn, meta_f16);
  if (!(n >= 0) || n != floor(n) || n >= 4294967296.0)
    return lk_fail(LK_ESHAPE, "%s: %g elements, expected an integer from 0 to 2^32 - 1", fn, n);
  return LK_OK;
}

int32_t lk_cpu_cq_bytes(double n, int32_t bits, int32_t bucket, int32_t meta_f16, double* out,
                        double out_len) {
  const char* fn = "lk_cpu_cq_bytes";
  const int32_t st = cq_check_spec(fn, n, bits, bucket, meta_f16);
  if (st) return st;
  if (lk_check_len(fn, "out", out_len, 1)) return LK_ESHAPE;
  out[0] = cq_bytes(n, bits, bucket, meta_f16);
  return LK_OK;
}

/* ---- bucket metadata ---- */
/* min and max of x[0..len); returns 0 when some element is not finite */
static int cq_minmax(const float* x, size_t len, float* mn_out, float* mx_out) {
  size_t i = 0;
  float mn = x[0], mx = x[0];
  int ok = 1;
#ifdef __AVX512F__
  if (len >= 16) {
    __m512 vmn = _mm512_loadu_ps(x), vmx = vmn;
    const __m512 big = _mm512_set1_ps(FLT_MAX);
    __mmask16 bad = 0;
    for (; i + 16 <= len; i += 16) {
      const __m512 v = _mm512_loadu_ps(x + i);
      vmn = _mm512_min_ps(vmn, v);
      vmx = _mm512_max_ps(vmx, v);
      bad |= _mm512_cmp_ps_mask(_mm512_abs_ps(v), big, _CMP_NLE_UQ);
    }
    ok = bad == 0;
    mn = _mm512_reduce_min_ps(vmn);
    mx = _mm512_reduce_max_ps(vmx);
  }
#endif
  for (; i < len; i++) {
    const float v = x[i];
    ok &= fabsf(v) <= FLT_MAX;
    mn = v < mn ? v : mn;
    mx = v > mx ? v : mx;
  }
  *mn_out = mn;
  *mx_out = mx;
  return ok;
}

enum { CQ_OK = 0, CQ_NONFINITE = 1, CQ_RANGE = 2, CQ_F16 = 3 };

/* min and unit of one bucket (the values the levels are computed with) */
static int cq_meta(const float* x, size_t len, int bits, int meta_f16, float* mn_out,
                   float* unit_out) {
  float mn, mx;
  if (!cq_minmax(x, len, &mn, &mx)) return CQ_NONFINITE;
  const int levels = (1 << bits) - 1;
  if (!meta_f16) {
    const float range = mx - mn;
    if (!(range <= FLT_MAX)) return CQ_RANGE;
    *mn_out = mn;
    *unit_out = range / (float)levels;
    return CQ_OK;
  }
  const double m16 = cq_f16_round(mn, 0);
  if (m16 < -65504 || m16 > 65504) return CQ_F16;
  const double u16 = cq_f16_round(((double)mx - m16) / levels, 1);
  if (u16 > 65504) return CQ_F16;
  *mn_out = (float)m16;
  *unit_out = (float)u16;
  return CQ_OK;
}

static void cq_put_meta(uint8_t* out, size_t q, int meta_f16, float mn, float unit) {
  if (meta_f16) {
    const uint16_t h[2] = {cq_f16_bits(mn), cq_f16_bits(unit)};
    memcpy(out + q * 4, h, 4);
  } else {
    const float f[2] = {mn, unit};
    memcpy(out + q * 8, f, 8);
  }
}

static void cq_get_meta(const uint8_t* in, size_t q, int meta_f16, float* mn, float* unit) {
  if (meta_f16) {
    uint16_t h[2];
    memcpy(h, in + q * 4, 4);
    *mn = cq_f16_value(h[0]);
    *unit = cq_f16_value(h[1]);
  } else {
    float f[2];
    memcpy(f, in + q * 8, 8);
    *mn = f[0];
    *unit = f[1];
  }
}

/* ---- levels ---- */
static void cq_levels(const float* x, size_t len, uint32_t i0, float mn, float unit, int levels,
                      int stochastic, cq_keys k, uint8_t* lev) {
  if (unit == 0) { /* a constant bucket */
    memset(lev, 0, len);
    return;
  }
  if (stochastic) {
    for (size_t i = 0; i < len; i++) {
      const float v = (x[i] - mn) / unit;
      const uint32_t h = cq_hash(((i0 + (uint32_t)i) + k.k0) ^ k.k1);
      const float s = v + (float)(int32_t)(h >> 8) * 0x1p-24f;
      const int32_t l = (int32_t)s;
      lev[i] = (uint8_t)(l < levels ? l : levels);
    }
  } else {
    for (size_t i = 0; i < len; i++) {
      const float s = (x[i] - mn) / unit + 0.5f;
      const int32_t l = (int32_t)s;
      lev[i] = (uint8_t)(l < levels ? l : levels);
    }
  }
}

/* packs lev[0..len) (b bits each) into out; len is a multiple of 8 unless this is the end of the
 * message, whose last byte is zero-padded; writes exactly ceil(len·b/8) bytes */
static void cq_pack(const uint8_t* lev, size_t len, int b, uint8_t* out) {
  if (b == 8) {
    memcpy(out, lev, len);
    return;
  }
  const size_t groups = len / 8;
  size_t g = 0;
#ifdef CQ_PEXT
  const uint64_t mask = 0x0101010101010101ull * (uint64_t)((1u << b) - 1);
  /* 8-byte stores overlap the next groups' bytes (written after), and stay within this call's */
  for (; g * b + 8 <= groups * b; g++) {
    uint64_t w;
    memcpy(&w, lev + g * 8, 8);
    w = _pext_u64(w, mask);
    memcpy(out + g * b, &w, 8);
  }
#endif
  for (; g < groups; g++) {
    uint64_t w = 0;
    for (int j = 0; j < 8; j++) w |= (uint64_t)lev[g * 8 + j] << (j * b);
    for (int j = 0; j < b; j++) out[g * b + j] = (uint8_t)(w >> (8 * j));
  }
  const size_t rest = len - groups * 8;
  if (rest) {
    uint64_t w = 0;
    for (size_t j = 0; j < rest; j++) w |= (uint64_t)lev[groups * 8 + j] << (j * b);
    const size_t nb = (rest * b + 7) / 8;
    for (size_t j = 0; j < nb; j++) out[groups * b + j] = (uint8_t)(w >> (8 * j));
  }
}

/* the inverse: lev[0..len) from ceil(len·b/8) bytes of in */
static void cq_unpack(const uint8_t* in, size_t len, int b, uint8_t* lev) {
  if (b == 8) {
    memcpy(lev, in, len);
    return;
  }
  const size_t groups = len / 8;
  const uint32_t m = (1u << b) - 1;
  size_t g = 0;
#ifdef CQ_PEXT
  const uint64_t mask = 0x0101010101010101ull * m;
  /* 8-byte loads read past the group's b bytes, and stay within this call's */
  for (; g * b + 8 <= groups * b; g++) {
    uint64_t w;
    memcpy(&w, in + g * b, 8);
    w = _pdep_u64(w, mask);
    memcpy(lev + g * 8, &w, 8);
  }
#endif
  for (; g < groups; g++) {
    uint64_t w = 0;
    for (int j = 0; j < b; j++) w |= (uint64_t)in[g * b + j] << (8 * j);
    for (int j = 0; j < 8; j++) lev[g * 8 + j] = (uint8_t)((w >> (j * b)) & m);
  }
  const size_t rest = len - groups * 8;
  if (rest) {
    uint64_t w = 0;
    const size_t nb = (rest * b + 7) / 8;
    for (size_t j = 0; j < nb; j++) w |= (uint64_t)in[groups * b + j] << (8 * j);
    for (size_t j = 0; j < rest; j++) lev[groups * 8 + j] = (uint8_t)((w >> (j * b)) & m);
  }
}

/* buckets per thread work item: the fewest whole buckets that span a multiple of 8 elements */
static size_t cq_group(int32_t bucket) {
  size_t g = 8;
  while (g > 1 && ((size_t)bucket * (g / 2)) % 8 == 0) g /= 2;
  return g;
}

static int32_t cq_nonfinite(const char* fn, const float* x, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!(fabsf(x[i]) <= FLT_MAX))
      return lk_fail(LK_ENUMERICAL, "%s: x[%zu] is %s: expected finite values to quantize", fn, i,
                     isnan(x[i]) ? "NaN" : x[i] > 0 ? "Infinity" : "-Infinity");
  return LK_OK;
}

int32_t lk_cpu_cq_quantize_f32(const float* x, double x_len, int32_t bits, int32_t bucket,
                               int32_t meta_f16, int32_t stochastic, double seed, uint8_t* out,
                               double out_len) {
  const char* fn = "lk_cpu_cq_quantize_f32";
  const int32_t st = cq_check_spec(fn, x_len, bits, bucket, meta_f16);
  if (st) return st;
  if (stochastic != 0 && stochastic != 1)
    return lk_fail(LK_EARG, "%s: stochastic=%d, expected 0 (nearest) or 1", fn, stochastic);
  if (!(seed >= 0) || seed != floor(seed) || seed > 9007199254740991.0)
    return lk_fail(LK_EARG, "%s: seed %g, expected an integer from 0 to 2^53 - 1", fn, seed);
  const double need = cq_bytes(x_len, bits, bucket, meta_f16);
  if (lk_check_len(fn, "out", out_len, need)) return LK_ESHAPE;
  const size_t n = (size_t)x_len, nb = (size_t)cq_buckets(x_len, bucket), B = (size_t)bucket;
  if (n == 0) return LK_OK;
  const size_t g = cq_group(bucket), ngroups = (nb + g - 1) / g;
  const size_t meta_bytes = nb * (meta_f16 ? 4 : 8);
  uint8_t* lev_out = out + meta_bytes;
  const int levels = (1 << bits) - 1;
  const cq_keys k = cq_derive(seed);
  size_t bad_bucket = SIZE_MAX;
  int bad_kind = CQ_OK;
#pragma omp parallel for schedule(static) if (n >= (1u << 18))
  for (size_t gi = 0; gi < ngroups; gi++) {
    uint8_t lev[CQ_CHUNK];
    size_t fill = 0, lev0 = gi * g * B; /* lev[0]'s element index */
    const size_t q_end = (gi + 1) * g < nb ? (gi + 1) * g : nb;
    for (size_t q = gi * g; q < q_end; q++) {
      const size_t b0 = q * B, b1 = b0 + B < n ? b0 + B : n;
      float mn = 0, unit = 0;
      const int kind = cq_meta(x + b0, b1 - b0, bits, meta_f16, &mn, &unit);
      if (kind) {
#pragma omp critical(lk_cq_bad)
        if (q < bad_bucket) {
          bad_bucket = q;
          bad_kind = kind;
        }
        continue; /* the output is not used */
      }
      cq_put_meta(out, q, meta_f16, mn, unit);
      for (size_t i = b0; i < b1;) {
        const size_t m = b1 - i < CQ_CHUNK - fill ? b1 - i : CQ_CHUNK - fill;
        cq_levels(x + i, m, (uint32_t)i, mn, unit, levels, stochastic, k, lev + fill);
        fill += m;
        i += m;
        if (fill == CQ_CHUNK) {
          cq_pack(lev, CQ_CHUNK, bits, lev_out + lev0 / 8 * bits);
          lev0 += CQ_CHUNK;
          fill = 0;
        }
      }
    }
    if (fill) cq_pack(lev, fill, bits, lev_out + lev0 / 8 * bits);
  }
  if (bad_kind == CQ_OK) return LK_OK;
  /* a non-finite element anywhere is reported first, then the lowest bad bucket */
  if (cq_nonfinite(fn, x, n)) return LK_ENUMERICAL;
  const size_t b0 = bad_bucket * B, b1 = b0 + B < n ? b0 + B : n;
  float mn, mx;
  cq_minmax(x + b0, b1 - b0, &mn, &mx);
  if (bad_kind == CQ_RANGE)
    return lk_fail(LK_ENUMERICAL,
                   "%s: bucket %zu (elements %zu to %zu) spans %g to %g, a range that "
                   "overflows f32: expected max - min below 3.4e38",
                   fn, bad_bucket, b0, b1 - 1, (double)mn, (double)mx);
  return lk_fail(LK_ENUMERICAL,
                 "%s: bucket %zu (elements %zu to %zu) spans %g to %g, whose min or unit does "
                 "not fit f16 metadata (|value| <= 65504): use f32 metadata",
                 fn, bad_bucket, b0, b1 - 1, (double)mn, (double)mx);
}

int32_t lk_cpu_cq_dequantize_f32(const uint8_t* msg, double msg_len, int32_t bits, int32_t bucket,
                                 int32_t meta_f16, int32_t accumulate, float* out,
                                 double out_len) {
  const char* fn = "lk_cpu_cq_dequantize_f32";
  const int32_t st = cq_check_spec(fn, out_len, bits, bucket, meta_f16);
  if (st) return st;
  if (accumulate != 0 && accumulate != 1)
    return lk_fail(LK_EARG, "%s: accumulate=%d, expected 0 or 1", fn, accumulate);
  if (lk_check_len(fn, "msg", msg_len, cq_bytes(out_len, bits, bucket, meta_f16)))
    return LK_ESHAPE;
  const size_t n = (size_t)out_len, nb = (size_t)cq_buckets(out_len, bucket), B = (size_t)bucket;
  if (n == 0) return LK_OK;
  const size_t g = cq_group(bucket), ngroups = (nb + g - 1) / g;
  const uint8_t* lev_in = msg + nb * (meta_f16 ? 4 : 8);
#pragma omp parallel for schedule(static) if (n >= (1u << 18))
  for (size_t gi = 0; gi < ngroups; gi++) {
    uint8_t lev[CQ_CHUNK];
    const size_t e0 = gi * g * B, e1 = (gi + 1) * g * B < n ? (gi + 1) * g * B : n;
    for (size_t c0 = e0; c0 < e1; c0 += CQ_CHUNK) {
      const size_t c1 = c0 + CQ_CHUNK < e1 ? c0 + CQ_CHUNK : e1;
      cq_unpack(lev_in + c0 / 8 * bits, c1 - c0, bits, lev);
      for (size_t i = c0; i < c1;) {
        const size_t q = i / B, s1 = (q + 1) * B < c1 ? (q + 1) * B : c1;
        float mn, unit;
        cq_get_meta(msg, q, meta_f16, &mn, &unit);
        const uint8_t* l = lev + (i - c0);
        float* y = out + i;
        const size_t m = s1 - i;
        if (accumulate)
          for (size_t j = 0; j < m; j++) y[j] += mn + (float)l[j] * unit;
        else
          for (size_t j = 0; j < m; j++) y[j] = mn + (float)l[j] * unit;
        i = s1;
      }
    }
  }
  return LK_OK;
}
