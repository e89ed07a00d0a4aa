/* Causal grouped-query attention over a KV cache (see lmkit.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "attention_tiles.h"
#include "internal.h"

/* From this many queries on, attention runs as register-tiled products (attention_tiles.h) over
 * blocks of LK_ATT_BR queries. */
#define LK_ATT_GEMM_MIN_T 16

int32_t lk_cpu_attention_f32(const float* q, double q_len, const float* k, double k_len,
                             const float* v, double v_len, float* out, double out_len, int32_t t,
                             int32_t start, int32_t heads, int32_t kv_heads, int32_t d,
                             int32_t cap) {
  const char* fn = "lk_cpu_attention_f32";
  if (t < 0 || start < 0 || heads < 1 || kv_heads < 1 || d < 1 || cap < 1)
    return lk_fail(LK_ESHAPE, "%s: t=%d start=%d heads=%d kv_heads=%d d=%d cap=%d, expected t, start >= 0 and the rest >= 1",
                   fn, t, start, heads, kv_heads, d, cap);
  if (heads % kv_heads)
    return lk_fail(LK_ESHAPE, "%s: heads=%d is not a multiple of kv_heads=%d", fn, heads, kv_heads);
  if ((double)start + t > cap)
    return lk_fail(LK_ESHAPE, "%s: positions up to %lld exceed the cache capacity %d", fn,
                   (long long)start + t, cap);
  double qn = (double)t * heads * d, kn = (double)kv_heads * cap * d;
  if (lk_check_len(fn, "q", q_len, qn) || lk_check_len(fn, "k", k_len, kn) ||
      lk_check_len(fn, "v", v_len, kn) || lk_check_len(fn, "out", out_len, qn))
    return LK_ESHAPE;
  const int group = heads / kv_heads;
  const float scale = 1.0f / sqrtf((float)d);
  const int total = start + t;
  int failed = 0;
  if (t >= LK_ATT_GEMM_MIN_T) {
    /* prefill: per (head, block of LK_ATT_BR queries), tile by tile of LK_ATT_R queries,
     * S = Q·Kᵀ/√d over the keys the tile sees (Kᵀ laid out once per call), the causal softmax
     * row by row (one exp per visible score), O = P·V over the same keys */
    const int kp = lk_att_round(total), dp = lk_att_round(d);
    const int nb = (t + LK_ATT_BR - 1) / LK_ATT_BR;
    const ptrdiff_t ldq = (ptrdiff_t)heads * d;
    float* kt = lk_alloc(sizeof(float) * (size_t)kv_heads * d * kp);
    float* vp = dp == d ? NULL : lk_alloc(sizeof(float) * (size_t)kv_heads * total * dp);
    if (!kt || (dp != d && !vp)) {
      free(kt);
      free(vp);
      return lk_fail(LK_ENOMEM, "%s: cannot allocate the keys of %d kv heads × %d positions", fn,
                     kv_heads, total);
    }
#pragma omp parallel
    {
#pragma omp for schedule(static)
      for (int g = 0; g < kv_heads; g++) {
        lk_att_transpose(total, kp, d, k + (size_t)g * cap * d, d, kt + (size_t)g * d * kp, kp);
        if (vp) lk_att_pad_rows(total, d, v + (size_t)g * cap * d, d, vp + (size_t)g * total * dp, dp);
      }
      float* s = lk_alloc(sizeof(float) * (size_t)LK_ATT_BR * (kp + dp));
      if (!s) {
#pragma omp atomic write
        failed = 1;
      }
#pragma omp for schedule(dynamic, 1)
      for (int task = 0; task < heads * nb; task++) {
        if (!s) continue;
        const int h = task % heads, b = nb - 1 - task / heads; /* longest blocks first */
        const int i0 = b * LK_ATT_BR, rows = t - i0 < LK_ATT_BR ? t - i0 : LK_ATT_BR;
        const int g = h / group;
        const float* qb = q + ((size_t)i0 * heads + h) * d;
        const float* ktg = kt + (size_t)g * d * kp;
        const float* vg = vp ? vp + (size_t)g * total * dp : v + (size_t)g * cap * d;
        float* o = s + (size_t)LK_ATT_BR * kp;
        for (int r0 = 0; r0 < rows; r0 += LK_ATT_R) {
          const int mr = rows - r0 < LK_ATT_R ? rows - r0 : LK_ATT_R;
          const int last = start + i0 + r0 + mr - 1; /* the tile's last position */
          float* st = s + (size_t)r0 * kp;
          lk_att_gemm(mr, lk_att_round(last + 1), d, scale, qb + r0 * ldq, ldq, 1, ktg, kp, st,
                      kp, 0);
          float inv[LK_ATT_R];
          for (int r = 0; r < mr; r++) {
            float* sr = st + (size_t)r * kp;
            const int p = start + i0 + r0 + r;
            /* the exponentials, 0 past p up to p + 1 rounded to whole vectors; 1/sum applied to O */
            inv[r] = lk_att_softmax_unscaled(sr, p + 1);
            for (int j = lk_att_round(p + 1); j <= last; j++) sr[j] = 0;
          }
          lk_att_gemm(mr, dp, last + 1, 1.0f, st, kp, 1, vg, dp, o + (size_t)r0 * dp, dp, 0);
          for (int r = 0; r < mr; r++) {
            float* orow = out + ((size_t)(i0 + r0 + r) * heads + h) * d;
            const float* ot = o + (size_t)(r0 + r) * dp;
            for (int e = 0; e < d; e++) orow[e] = ot[e] * inv[r];
          }
        }
      }
      free(s);
    }
    free(kt);
    free(vp);
    if (failed) return lk_fail(LK_ENOMEM, "%s: cannot allocate attention scratch", fn);
    return LK_OK;
  }
#pragma omp parallel if ((double)t * heads * total * d > 65536)
  {
    float* scores = malloc(sizeof(float) * (size_t)total);
    float* acc = malloc(sizeof(float) * (size_t)d);
    if (!scores || !acc) {
#pragma omp atomic write
      failed = 1;
    }
#pragma omp for collapse(2) schedule(dynamic, 4)
    for (int i = 0; i < t; i++) {
      for (int h = 0; h < heads; h++) {
        if (!scores || !acc) continue;
        const int p = start + i, g = h / group;
        const float* qi = q + ((size_t)i * heads + h) * d;
        const float* kg = k + (size_t)g * cap * d;
        const float* vg = v + (size_t)g * cap * d;
        float max = -INFINITY;
        for (int j = 0; j <= p; j++) {
          const float* kj = kg + (size_t)j * d;
          float s = 0;
#pragma omp simd reduction(+ : s)
          for (int e = 0; e < d; e++) s += qi[e] * kj[e];
          s *= scale;
          scores[j] = s;
          if (s > max) max = s;
        }
        float sum = 0;
#pragma omp simd reduction(+ : sum)
        for (int j = 0; j <= p; j++) {
          float w = lk_expf(scores[j] - max);
          scores[j] = w;
          sum += w;
        }
        for (int e = 0; e < d; e++) acc[e] = 0;
        for (int j = 0; j <= p; j++) {
          const float* vj = vg + (size_t)j * d;
          const float w = scores[j];
#pragma omp simd
          for (int e = 0; e < d; e++) acc[e] += w * vj[e];
        }
        float* oi = out + ((size_t)i * heads + h) * d;
        const float inv = 1.0f / sum;
        for (int e = 0; e < d; e++) oi[e] = acc[e] * inv;
      }
    }
    free(scores);
    free(acc);
  }
  if (failed) return lk_fail(LK_ENOMEM, "%s: cannot allocate %d attention scores", fn, total);
  return LK_OK;
}
