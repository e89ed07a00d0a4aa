/* Causal grouped-query attention over a KV cache (see lmkit.h). */
#include <math.h>
#include <stdlib.h>
#include "internal.h"

/* From this many queries on, attention runs as per-head GEMMs over blocks of LK_ATT_ROWS. */
#define LK_ATT_GEMM_MIN_T 16
#define LK_ATT_ROWS 64

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
    /* prefill: per (head, block of LK_ATT_ROWS queries) S = Q·Kᵀ/√d over the keys the block
     * sees, the causal softmax row by row, O = P·V, both products by the own GEMM */
    const int nb = (t + LK_ATT_ROWS - 1) / LK_ATT_ROWS;
    const size_t gs = lk_sgemm_serial_scratch();
    const ptrdiff_t ldq = (ptrdiff_t)heads * d;
#pragma omp parallel
    {
      float* scratch = lk_alloc(sizeof(float) * (gs + (size_t)LK_ATT_ROWS * total));
      if (!scratch) {
#pragma omp atomic write
        failed = 1;
      }
#pragma omp for schedule(dynamic, 1)
      for (int task = 0; task < heads * nb; task++) {
        if (!scratch) continue;
        const int h = task % heads, b = nb - 1 - task / heads; /* longest blocks first */
        const int i0 = b * LK_ATT_ROWS, rows = t - i0 < LK_ATT_ROWS ? t - i0 : LK_ATT_ROWS;
        const int g = h / group, keys = start + i0 + rows;
        float* s = scratch + gs;
        lk_sgemm_serial(rows, keys, d, scale, q + ((size_t)i0 * heads + h) * d, ldq, 1,
                        k + (size_t)g * cap * d, 1, d, 0.0f, s, keys, 0, scratch);
        for (int r = 0; r < rows; r++) {
          float* sr = s + (size_t)r * keys;
          const int p = start + i0 + r;
          lk_softmax_row(sr, p + 1);
          for (int j = p + 1; j < keys; j++) sr[j] = 0;
        }
        lk_sgemm_serial(rows, d, keys, 1.0f, s, keys, 1, v + (size_t)g * cap * d, d, 1, 0.0f,
                        out + ((size_t)i0 * heads + h) * d, ldq, 0, scratch);
      }
      free(scratch);
    }
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
