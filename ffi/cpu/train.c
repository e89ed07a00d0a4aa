/* Training kernels: the backward of every forward op of a Llama block, the general GEMM with
 * transposes that linear layers' backward needs, softmax cross-entropy and AdamW (see lmkit.h).
 * Reductions that cross rows (dw of RMSNorm, dk/dv of attention) go through per-thread or
 * per-head partial buffers summed in a fixed order, so that results do not depend on timing. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include "attention_tiles.h"
#include "internal.h"

#define LK_BLAS_MIN_MACS_TRAIN 134217728.0

int32_t lk_cpu_gemm_f32(const float* a, double a_len, const float* b, double b_len, float* c,
                        double c_len, int32_t m, int32_t k, int32_t n, int32_t trans_a,
                        int32_t trans_b, double beta) {
  const char* fn = "lk_cpu_gemm_f32";
  if (lk_check_dims(fn, m, k, n)) return LK_ESHAPE;
  if ((trans_a != 0 && trans_a != 1) || (trans_b != 0 && trans_b != 1))
    return lk_fail(LK_EARG, "%s: trans_a=%d trans_b=%d, expected 0 or 1", fn, trans_a, trans_b);
  if (beta != 0.0 && beta != 1.0)
    return lk_fail(LK_EARG, "%s: beta=%g, expected 0 or 1", fn, beta);
  if (lk_check_len(fn, "a", a_len, (double)m * k) || lk_check_len(fn, "b", b_len, (double)k * n) ||
      lk_check_len(fn, "c", c_len, (double)m * n))
    return LK_ESHAPE;
  if (m == 0 || n == 0) return LK_OK;
  if (k == 0) {
    if (beta == 0.0) memset(c, 0, sizeof(float) * (size_t)m * n);
    return LK_OK;
  }
  const lk_blas_t* bl = lk_blas();
  if (bl && m >= 8 && (double)m * n * k >= LK_BLAS_MIN_MACS_TRAIN) {
    bl->sgemm(LK_ROW_MAJOR, trans_a ? LK_TRANS : LK_NO_TRANS, trans_b ? LK_TRANS : LK_NO_TRANS, m,
              n, k, 1.0f, a, trans_a ? m : k, b, trans_b ? k : n, (float)beta, c, n);
    return LK_OK;
  }
  const ptrdiff_t rsa = trans_a ? 1 : k, csa = trans_a ? m : 1;
  const ptrdiff_t rsb = trans_b ? 1 : n, csb = trans_b ? k : 1;
  lk_sgemm(m, n, k, 1.0f, a, rsa, csa, b, rsb, csb, (float)beta, c, n, 0);
  return LK_OK;
}

static int32_t check_rows_cols(const char* fn, int32_t rows, int32_t cols) {
  if (rows < 0 || cols < 1)
    return lk_fail(LK_ESHAPE, "%s: rows=%d cols=%d, expected rows >= 0 and cols >= 1", fn, rows, cols);
  return LK_OK;
}

int32_t lk_cpu_rmsnorm_f32(const float* x, double x_len, const float* w, double w_len, float* y,
                           double y_len, float* rstd, double rstd_len, int32_t rows, int32_t cols,
                           double eps) {
  const char* fn = "lk_cpu_rmsnorm_f32";
  if (check_rows_cols(fn, rows, cols)) return LK_ESHAPE;
  if (!isfinite(eps) || eps < 0) return lk_fail(LK_EARG, "%s: eps=%g, expected finite >= 0", fn, eps);
  const double n = (double)rows * cols;
  if (lk_check_len(fn, "x", x_len, n) || lk_check_len(fn, "w", w_len, cols) ||
      lk_check_len(fn, "y", y_len, n) || lk_check_len(fn, "rstd", rstd_len, rows))
    return LK_ESHAPE;
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int r = 0; r < rows; r++) {
    const float* xr = x + (size_t)r * cols;
    float* yr = y + (size_t)r * cols;
    double ss = 0;
#pragma omp simd reduction(+ : ss)
    for (int i = 0; i < cols; i++) ss += (double)xr[i] * xr[i];
    const float inv = (float)(1.0 / sqrt(ss / cols + eps));
    rstd[r] = inv;
#pragma omp simd
    for (int i = 0; i < cols; i++) yr[i] = (xr[i] * inv) * w[i];
  }
  return LK_OK;
}

int32_t lk_cpu_rmsnorm_bwd_f32(const float* dy, double dy_len, const float* x, double x_len,
                               const float* w, double w_len, const float* rstd, double rstd_len,
                               float* dx, double dx_len, float* dw, double dw_len, int32_t rows,
                               int32_t cols) {
  const char* fn = "lk_cpu_rmsnorm_bwd_f32";
  if (check_rows_cols(fn, rows, cols)) return LK_ESHAPE;
  const double n = (double)rows * cols;
  if (lk_check_len(fn, "dy", dy_len, n) || lk_check_len(fn, "x", x_len, n) ||
      lk_check_len(fn, "w", w_len, cols) || lk_check_len(fn, "rstd", rstd_len, rows) ||
      lk_check_len(fn, "dx", dx_len, n) || lk_check_len(fn, "dw", dw_len, cols))
    return LK_ESHAPE;
  const int threads = n > 65536 ? omp_get_max_threads() : 1;
  double* part = calloc((size_t)threads * cols, sizeof(double));
  if (!part) return lk_fail(LK_ENOMEM, "%s: cannot allocate %d partial sums", fn, threads * cols);
#pragma omp parallel num_threads(threads)
  {
    double* acc = part + (size_t)omp_get_thread_num() * cols;
#pragma omp for schedule(static)
    for (int r = 0; r < rows; r++) {
      const float* xr = x + (size_t)r * cols;
      const float* gr = dy + (size_t)r * cols;
      float* dxr = dx + (size_t)r * cols;
      const float s = rstd[r];
      double dot = 0;
#pragma omp simd reduction(+ : dot)
      for (int i = 0; i < cols; i++) dot += (double)gr[i] * w[i] * (xr[i] * s);
      const float mean = (float)(dot / cols);
#pragma omp simd
      for (int i = 0; i < cols; i++) {
        const float xh = xr[i] * s;
        dxr[i] = s * (gr[i] * w[i] - xh * mean);
        acc[i] += (double)gr[i] * xh;
      }
    }
  }
  for (int i = 0; i < cols; i++) {
    double sum = 0;
    for (int t = 0; t < threads; t++) sum += part[(size_t)t * cols + i];
    dw[i] += (float)sum;
  }
  free(part);
  return LK_OK;
}

int32_t lk_cpu_rope_f32(float* x, double x_len, const float* cos_, double cos_len,
                        const float* sin_, double sin_len, int32_t t, int32_t heads, int32_t d,
                        int32_t dir) {
  const char* fn = "lk_cpu_rope_f32";
  if (t < 0 || heads < 1 || d < 2 || d % 2)
    return lk_fail(LK_ESHAPE, "%s: t=%d heads=%d d=%d, expected t >= 0, heads >= 1, d even >= 2", fn, t,
                   heads, d);
  if (dir != 1 && dir != -1) return lk_fail(LK_EARG, "%s: dir=%d, expected 1 or -1", fn, dir);
  const int half = d / 2;
  if (lk_check_len(fn, "x", x_len, (double)t * heads * d) ||
      lk_check_len(fn, "cos", cos_len, (double)t * half) ||
      lk_check_len(fn, "sin", sin_len, (double)t * half))
    return LK_ESHAPE;
  const float sg = (float)dir;
#pragma omp parallel for schedule(static) if ((double)t * heads * d > 65536)
  for (int i = 0; i < t; i++) {
    const float* c = cos_ + (size_t)i * half;
    const float* s = sin_ + (size_t)i * half;
    for (int h = 0; h < heads; h++) {
      float* xh = x + ((size_t)i * heads + h) * d;
#pragma omp simd
      for (int e = 0; e < half; e++) {
        const float a = xh[e], b = xh[e + half], se = sg * s[e];
        xh[e] = a * c[e] - b * se;
        xh[e + half] = b * c[e] + a * se;
      }
    }
  }
  return LK_OK;
}

int32_t lk_cpu_attention_bwd_f32(const float* q, double q_len, const float* k, double k_len,
                                 const float* v, double v_len, const float* dout, double dout_len,
                                 float* dq, double dq_len, float* dk, double dk_len, float* dv,
                                 double dv_len, int32_t t, int32_t heads, int32_t kv_heads,
                                 int32_t d) {
  const char* fn = "lk_cpu_attention_bwd_f32";
  if (t < 0 || heads < 1 || kv_heads < 1 || d < 1)
    return lk_fail(LK_ESHAPE, "%s: t=%d heads=%d kv_heads=%d d=%d, expected t >= 0 and the rest >= 1", fn,
                   t, heads, kv_heads, d);
  if (heads % kv_heads)
    return lk_fail(LK_ESHAPE, "%s: heads=%d is not a multiple of kv_heads=%d", fn, heads, kv_heads);
  const double qn = (double)t * heads * d, kn = (double)kv_heads * t * d;
  if (lk_check_len(fn, "q", q_len, qn) || lk_check_len(fn, "k", k_len, kn) ||
      lk_check_len(fn, "v", v_len, kn) || lk_check_len(fn, "dout", dout_len, qn) ||
      lk_check_len(fn, "dq", dq_len, qn) || lk_check_len(fn, "dk", dk_len, kn) ||
      lk_check_len(fn, "dv", dv_len, kn))
    return LK_ESHAPE;
  if (t == 0) return LK_OK;
  const int group = heads / kv_heads;
  const float scale = 1.0f / sqrtf((float)d);
  /* Kᵀ and Vᵀ (rows padded to whole vectors) once per call; K, and each head's Q and dO, with
   * rows padded to whole vectors where d is not a multiple of the vector width */
  const int kp = lk_att_round(t), dp = lk_att_round(d);
  const size_t hsz = (size_t)t * d, psz = (size_t)t * dp, tsz = (size_t)d * kp;
  const ptrdiff_t ldq = (ptrdiff_t)heads * d;
  /* per query head: its share of dk and dv, summed over the group afterwards in head order */
  float* part = calloc((size_t)heads * 2 * psz, sizeof(float));
  float* lay = lk_alloc(sizeof(float) * ((size_t)kv_heads * 2 * tsz + (dp != d ? (size_t)kv_heads * psz : 0)));
  if (!part || !lay) {
    free(part);
    free(lay);
    return lk_fail(LK_ENOMEM, "%s: cannot allocate %.0f floats of partial gradients", fn, 2.0 * heads * psz);
  }
  float* kt = lay;
  float* vt = kt + (size_t)kv_heads * tsz;
  float* kpad = dp != d ? vt + (size_t)kv_heads * tsz : NULL;
  int failed = 0;
  /* per head, by blocks of LK_ATT_BR query rows and within them tiles of LK_ATT_R rows, over
   * only the keys a tile sees: S = Q·Kᵀ/√d, P = causal softmax, dP = dO·Vᵀ, dS = P∘(dP −
   * rowsum(P∘dP))/√d, dQ = dS·K; then for the block's keys dV_h += Pᵀ·dO, dK_h += dSᵀ·Q */
#pragma omp parallel if ((double)t * t * heads * d > 65536)
  {
#pragma omp for schedule(static)
    for (int g = 0; g < kv_heads; g++) {
      lk_att_transpose(t, kp, d, k + (size_t)g * hsz, d, kt + (size_t)g * tsz, kp);
      lk_att_transpose(t, kp, d, v + (size_t)g * hsz, d, vt + (size_t)g * tsz, kp);
      if (kpad) lk_att_pad_rows(t, d, k + (size_t)g * hsz, d, kpad + (size_t)g * psz, dp);
    }
    const size_t bs = (size_t)LK_ATT_BR * kp;
    float* scratch = lk_alloc(sizeof(float) * (2 * bs + (size_t)LK_ATT_BR * dp + (kpad ? 2 * psz : 0)));
    if (!scratch) {
#pragma omp atomic write
      failed = 1;
    }
#pragma omp for schedule(dynamic, 1)
    for (int h = 0; h < heads; h++) {
      if (!scratch) continue;
      const int g = h / group;
      const float* ktg = kt + (size_t)g * tsz;
      const float* vtg = vt + (size_t)g * tsz;
      const float* kg = kpad ? kpad + (size_t)g * psz : k + (size_t)g * hsz;
      const float* qh = q + (size_t)h * d;
      const float* gh = dout + (size_t)h * d;
      float* P = scratch;
      float* dS = P + bs;
      float* dqt = dS + bs;
      /* Q and dO as B operands (rows of whole vectors) */
      const float* qb = qh;
      const float* gb = gh;
      ptrdiff_t ldb = ldq;
      if (kpad) {
        float* qp = dqt + (size_t)LK_ATT_BR * dp;
        float* gp = qp + psz;
        lk_att_pad_rows(t, d, qh, ldq, qp, dp);
        lk_att_pad_rows(t, d, gh, ldq, gp, dp);
        qb = qp;
        gb = gp;
        ldb = dp;
      }
      float* pk = part + (size_t)h * 2 * psz;
      float* pv = pk + psz;
      for (int i0 = 0; i0 < t; i0 += LK_ATT_BR) {
        const int rows = t - i0 < LK_ATT_BR ? t - i0 : LK_ATT_BR;
        for (int r0 = 0; r0 < rows; r0 += LK_ATT_R) {
          const int mr = rows - r0 < LK_ATT_R ? rows - r0 : LK_ATT_R;
          const int last = i0 + r0 + mr - 1, kw = lk_att_round(last + 1);
          float* pt = P + (size_t)r0 * kp;
          float* dt = dS + (size_t)r0 * kp;
          lk_att_gemm(mr, kw, d, scale, qh + (i0 + r0) * ldq, ldq, 1, ktg, kp, pt, kp, 0);
          lk_att_gemm(mr, kw, d, 1.0f, gh + (i0 + r0) * ldq, ldq, 1, vtg, kp, dt, kp, 0);
          for (int r = 0; r < mr; r++) {
            float* pi = pt + (size_t)r * kp;
            float* di = dt + (size_t)r * kp;
            const int i = i0 + r0 + r;
            /* over whole vectors (columns up to nv are written): P is 0 past i */
            const int nv = lk_att_round(i + 1);
            lk_att_softmax(pi, i + 1);
            double dot = 0;
#pragma omp simd reduction(+ : dot)
            for (int j = 0; j < nv; j++) dot += j <= i ? (double)pi[j] * di[j] : 0.0;
            const float fdot = (float)dot;
#pragma omp simd
            for (int j = 0; j < nv; j++) di[j] = j <= i ? pi[j] * (di[j] - fdot) * scale : 0.0f;
            for (int j = nv; j <= last; j++) pi[j] = di[j] = 0;
          }
          lk_att_gemm(mr, dp, last + 1, 1.0f, dt, kp, 1, kg, dp, dqt + (size_t)r0 * dp, dp, 0);
          for (int r = 0; r < mr; r++)
            memcpy(dq + (size_t)(i0 + r0 + r) * ldq + (size_t)h * d, dqt + (size_t)(r0 + r) * dp,
                   sizeof(float) * (size_t)d);
        }
        /* keys j0 … (tiles aligned, from i0 on, to the row tiles) meet the block's rows from
         * position max(j0, i0) on; P and dS are zero past each row's position up to its tile's end */
        for (int j0 = 0; j0 < i0 + rows;) {
          const int end = j0 < i0 ? i0 : i0 + rows; /* from i0 on, the row tiles' alignment */
          const int mj = end - j0 < LK_ATT_R ? end - j0 : LK_ATT_R;
          const int rs = j0 > i0 ? j0 - i0 : 0;
          lk_att_gemm(mj, dp, rows - rs, 1.0f, P + (size_t)rs * kp + j0, 1, kp,
                      gb + (i0 + rs) * ldb, ldb, pv + (size_t)j0 * dp, dp, 1);
          lk_att_gemm(mj, dp, rows - rs, 1.0f, dS + (size_t)rs * kp + j0, 1, kp,
                      qb + (i0 + rs) * ldb, ldb, pk + (size_t)j0 * dp, dp, 1);
          j0 += mj;
        }
      }
    }
    free(scratch);
  }
  free(lay);
  if (failed) {
    free(part);
    return lk_fail(LK_ENOMEM, "%s: cannot allocate the attention scratch for %d positions", fn, t);
  }
#pragma omp parallel for schedule(static) if (kn > 65536)
  for (int g = 0; g < kv_heads; g++) {
    for (int j = 0; j < t; j++) {
      float* dkj = dk + (size_t)g * hsz + (size_t)j * d;
      float* dvj = dv + (size_t)g * hsz + (size_t)j * d;
      for (int e = 0; e < d; e++) dkj[e] = dvj[e] = 0;
      for (int h = g * group; h < (g + 1) * group; h++) {
        const float* pk = part + (size_t)h * 2 * psz + (size_t)j * dp;
        const float* pv = pk + psz;
#pragma omp simd
        for (int e = 0; e < d; e++) {
          dkj[e] += pk[e];
          dvj[e] += pv[e];
        }
      }
    }
  }
  free(part);
  return LK_OK;
}

int32_t lk_cpu_swiglu_bwd_f32(const float* gate, double gate_len, const float* up, double up_len,
                              const float* dout, double dout_len, float* dgate, double dgate_len,
                              float* dup, double dup_len, double n) {
  const char* fn = "lk_cpu_swiglu_bwd_f32";
  if (!(n >= 0) || n != floor(n) || n > 9007199254740992.0)
    return lk_fail(LK_ESHAPE, "%s: n=%g, expected a whole number >= 0", fn, n);
  if (lk_check_len(fn, "gate", gate_len, n) || lk_check_len(fn, "up", up_len, n) ||
      lk_check_len(fn, "dout", dout_len, n) || lk_check_len(fn, "dgate", dgate_len, n) ||
      lk_check_len(fn, "dup", dup_len, n))
    return LK_ESHAPE;
  const ptrdiff_t len = (ptrdiff_t)n;
#pragma omp parallel for simd schedule(static) if (len > 65536)
  for (ptrdiff_t i = 0; i < len; i++) {
    const float g = gate[i], s = 1.0f / (1.0f + lk_expf(-g)), dy = dout[i];
    dgate[i] = dy * up[i] * s * (1.0f + g * (1.0f - s));
    dup[i] = dy * g * s;
  }
  return LK_OK;
}

int32_t lk_cpu_embedding_bwd_f32(const int32_t* ids, double ids_len, const float* dh,
                                 double dh_len, float* dtable, double dtable_len, int32_t t,
                                 int32_t vocab, int32_t d) {
  const char* fn = "lk_cpu_embedding_bwd_f32";
  if (t < 0 || vocab < 1 || d < 1)
    return lk_fail(LK_ESHAPE, "%s: t=%d vocab=%d d=%d, expected t >= 0 and the rest >= 1", fn, t, vocab, d);
  if (lk_check_len(fn, "ids", ids_len, t) || lk_check_len(fn, "dh", dh_len, (double)t * d) ||
      lk_check_len(fn, "dtable", dtable_len, (double)vocab * d))
    return LK_ESHAPE;
  for (int i = 0; i < t; i++)
    if (ids[i] < 0 || ids[i] >= vocab)
      return lk_fail(LK_EARG, "%s: token id %d at row %d is outside [0, %d)", fn, ids[i], i, vocab);
  /* columns in parallel: every row's scatter-add stays in row order for each element */
#pragma omp parallel for schedule(static) if ((double)t * d > 262144)
  for (int e0 = 0; e0 < d; e0 += 64) {
    const int e1 = e0 + 64 < d ? e0 + 64 : d;
    for (int i = 0; i < t; i++) {
      float* row = dtable + (size_t)ids[i] * d;
      const float* g = dh + (size_t)i * d;
#pragma omp simd
      for (int e = e0; e < e1; e++) row[e] += g[e];
    }
  }
  return LK_OK;
}

int32_t lk_cpu_cross_entropy_f32(const float* logits, double logits_len, const int32_t* targets,
                                 double targets_len, float* loss, double loss_len, float* dlogits,
                                 double dlogits_len, int32_t rows, int32_t vocab, double scale) {
  const char* fn = "lk_cpu_cross_entropy_f32";
  if (rows < 0 || vocab < 1)
    return lk_fail(LK_ESHAPE, "%s: rows=%d vocab=%d, expected rows >= 0 and vocab >= 1", fn, rows, vocab);
  if (!isfinite(scale)) return lk_fail(LK_EARG, "%s: scale=%g, expected a finite number", fn, scale);
  const double n = (double)rows * vocab;
  if (lk_check_len(fn, "logits", logits_len, n) || lk_check_len(fn, "targets", targets_len, rows) ||
      lk_check_len(fn, "loss", loss_len, rows) || lk_check_len(fn, "dlogits", dlogits_len, n))
    return LK_ESHAPE;
  for (int r = 0; r < rows; r++)
    if (targets[r] != -1 && (targets[r] < 0 || targets[r] >= vocab))
      return lk_fail(LK_EARG, "%s: target %d of row %d is outside [0, %d) and is not -1", fn, targets[r], r,
                     vocab);
  int bad_row = -1;
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int r = 0; r < rows; r++) {
    const float* x = logits + (size_t)r * vocab;
    float* dx = dlogits + (size_t)r * vocab;
    const int y = targets[r];
    if (y == -1) {
      loss[r] = 0;
      memset(dx, 0, sizeof(float) * (size_t)vocab);
      continue;
    }
    float max = -INFINITY;
    int finite = 1;
    for (int i = 0; i < vocab; i++) {
      if (!isfinite(x[i])) finite = 0;
      if (x[i] > max) max = x[i];
    }
    if (!finite) {
#pragma omp critical(lk_ce_bad)
      if (bad_row < 0 || r < bad_row) bad_row = r;
      continue;
    }
    double sum = 0;
    for (int i = 0; i < vocab; i++) sum += exp((double)x[i] - max);
    const double lse = max + log(sum);
    loss[r] = (float)(lse - x[y]);
    for (int i = 0; i < vocab; i++) dx[i] = (float)(scale * exp((double)x[i] - lse));
    /* p_y − 1 as expm1, not p_y rounded to f32 minus 1: a confident row keeps its gradient */
    dx[y] = (float)(scale * expm1((double)x[y] - lse));
  }
  if (bad_row >= 0)
    return lk_fail(LK_ENUMERICAL, "%s: row %d of the logits holds NaN or Inf", fn, bad_row);
  return LK_OK;
}

int32_t lk_cpu_adamw_f32(float* p, double p_len, const float* g, double g_len, float* m,
                         double m_len, float* v, double v_len, double n, double lr, double b1,
                         double b2, double eps, double wd, double bc1, double bc2) {
  const char* fn = "lk_cpu_adamw_f32";
  if (!(n >= 0) || n != floor(n) || n > 9007199254740992.0)
    return lk_fail(LK_ESHAPE, "%s: n=%g, expected a whole number >= 0", fn, n);
  if (lk_check_len(fn, "p", p_len, n) || lk_check_len(fn, "g", g_len, n) ||
      lk_check_len(fn, "m", m_len, n) || lk_check_len(fn, "v", v_len, n))
    return LK_ESHAPE;
  if (!isfinite(lr) || lr < 0 || !(b1 >= 0 && b1 < 1) || !(b2 >= 0 && b2 < 1) || !isfinite(eps) ||
      eps < 0 || !isfinite(wd) || wd < 0 || !(bc1 > 0 && bc1 <= 1) || !(bc2 > 0 && bc2 <= 1))
    return lk_fail(LK_EARG, "%s: lr=%g b1=%g b2=%g eps=%g wd=%g bc1=%g bc2=%g out of range", fn, lr, b1, b2,
                   eps, wd, bc1, bc2);
  const ptrdiff_t len = (ptrdiff_t)n;
  const float fb1 = (float)b1, fb2 = (float)b2, a1 = (float)(1 - b1), a2 = (float)(1 - b2);
  const float decay = (float)(1 - lr * wd), step = (float)(lr / bc1), c2 = (float)sqrt(bc2);
  const float feps = (float)eps;
#pragma omp parallel for simd schedule(static) if (len > 65536)
  for (ptrdiff_t i = 0; i < len; i++) {
    const float gi = g[i];
    const float mi = fb1 * m[i] + a1 * gi;
    const float vi = fb2 * v[i] + a2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] = p[i] * decay - step * mi / (sqrtf(vi) / c2 + feps);
  }
  return LK_OK;
}
