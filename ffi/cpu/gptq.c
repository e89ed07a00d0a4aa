/* GPTQ's column sweep (see lmkit.h and lib/quant/gptq.ts, its reference). */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include "internal.h"

#define round_f16 lk_round_f16

static inline double level(double x, double s, double z, double maxq) {
  double q = nearbyint(x / s) + z;
  return q < 0 ? 0 : (q > maxq ? maxq : q);
}

typedef struct {
  int bits, sym, mse, grid, f16;
  double maxq, maxshrink, norm;
} lk_qspec;

/* scale and zero of x[0..n) with range [lo, hi]; 0 when the scale is not a positive number */
static int pick(const lk_qspec* q, double lo, double hi, double* s, double* z) {
  double sc = (hi - lo) / q->maxq;
  if (q->f16) sc = round_f16(sc);
  if (!(sc > 0) || !isfinite(sc)) return 0;
  *s = sc;
  *z = q->sym ? (q->maxq + 1) / 2 : nearbyint(-lo / sc);
  return 1;
}

/* IST-DASLab/gptq's find_params for one row's values x[0..n): 0, or 1 for a weight that is not
 * finite, 2 when no scale is a positive number (called from worker threads: no lk_fail here) */
static int find_params(const lk_qspec* q, const double* x, int n, double* s, double* z) {
  double xmin = 0, xmax = 0;
  for (int j = 0; j < n; j++) {
    if (!isfinite(x[j])) return 1;
    if (x[j] < xmin) xmin = x[j];
    if (x[j] > xmax) xmax = x[j];
  }
  if (q->sym) {
    xmax = -xmin > xmax ? -xmin : xmax;
    if (xmin < 0) xmin = -xmax;
  }
  if (xmin == 0 && xmax == 0) xmin = -1, xmax = 1;
  if (!pick(q, xmin, xmax, s, z)) return 2;
  if (q->mse) {
    double best = INFINITY;
    const int steps = (int)floor(q->maxshrink * q->grid);
    for (int i = 0; i < steps; i++) {
      const double p = 1 - (double)i / q->grid;
      double s1, z1, err = 0;
      if (!pick(q, p * xmin, p * xmax, &s1, &z1)) continue;
      for (int j = 0; j < n; j++) err += pow(fabs(s1 * (level(x[j], s1, z1, q->maxq) - z1) - x[j]), q->norm);
      if (err < best) best = err, *s = s1, *z = z1;
    }
  }
  return 0;
}

int32_t lk_cpu_gptq_f64(double* w, double w_len, const double* u, double u_len, int32_t rows, int32_t cols,
                        const int32_t* iopt, double iopt_len, const double* dopt, double dopt_len,
                        const int32_t* col_group, double col_group_len, double* scales, double scales_len,
                        double* zeros, double zeros_len, const uint8_t* mask, double mask_len, uint8_t* levels,
                        double levels_len) {
  const char* fn = "lk_cpu_gptq_f64";
  if (rows < 0 || cols < 1) return lk_fail(LK_ESHAPE, "%s: rows=%d cols=%d, expected rows >= 0, cols >= 1", fn, rows, cols);
  if (lk_check_len(fn, "iopt", iopt_len, 8) || lk_check_len(fn, "dopt", dopt_len, 2)) return LK_ESHAPE;
  lk_qspec q = {.bits = iopt[0], .sym = iopt[1] != 0, .mse = iopt[3] != 0, .grid = iopt[4], .f16 = iopt[5] != 0,
                .maxshrink = dopt[0], .norm = dopt[1]};
  const int group = iopt[2], is_static = iopt[6] != 0, block = iopt[7];
  /* iopt[8] (optional): columns from qcols on are kept unquantized (QUIK's outliers, swept last):
   * they only receive the error updates of the columns before them */
  const int qcols = iopt_len >= 9 ? iopt[8] : cols;
  if (qcols < 0 || qcols > cols) return lk_fail(LK_EARG, "%s: qcols=%d, expected 0 to cols=%d", fn, qcols, cols);
  if (q.bits < 2 || q.bits > 8) return lk_fail(LK_EARG, "%s: bits=%d, expected 2 to 8", fn, q.bits);
  if (group < 0 || (group >= cols && group != 0)) return lk_fail(LK_EARG, "%s: group=%d, expected 0 (per row) or 1 to cols-1 = %d", fn, group, cols - 1);
  if (block < 1) return lk_fail(LK_EARG, "%s: block=%d, expected >= 1", fn, block);
  if (q.mse && (q.grid < 1 || !(q.maxshrink > 0 && q.maxshrink <= 1) || !(q.norm > 0)))
    return lk_fail(LK_EARG, "%s: MSE grid=%d maxshrink=%g norm=%g, expected grid >= 1, maxshrink in (0, 1], norm > 0", fn,
                   q.grid, q.maxshrink, q.norm);
  q.maxq = (double)((1 << q.bits) - 1);
  const int ngroups = group ? (cols + group - 1) / group : 1;
  const int has_mask = mask_len > 0;
  if (lk_check_len(fn, "w", w_len, (double)rows * cols) || lk_check_len(fn, "u", u_len, (double)cols * cols) ||
      lk_check_len(fn, "col_group", col_group_len, cols) || lk_check_len(fn, "scales", scales_len, (double)ngroups * rows) ||
      lk_check_len(fn, "zeros", zeros_len, (double)ngroups * rows) ||
      (has_mask && lk_check_len(fn, "mask", mask_len, (double)rows * cols)) ||
      lk_check_len(fn, "levels", levels_len, (double)rows * cols))
    return LK_ESHAPE;
  for (int c = 0; c < cols; c++) {
    if (col_group[c] < 0 || col_group[c] >= ngroups)
      return lk_fail(LK_EARG, "%s: col_group[%d] = %d, expected 0 to %d", fn, c, col_group[c], ngroups - 1);
    if (!(u[(ptrdiff_t)c * cols + c] > 0))
      return lk_fail(LK_ENUMERICAL, "%s: U[%d,%d] = %g, expected a positive diagonal", fn, c, c, u[(ptrdiff_t)c * cols + c]);
  }
  if (is_static)
    for (ptrdiff_t i = 0; i < (ptrdiff_t)ngroups * rows; i++)
      if (!(scales[i] > 0) || !isfinite(scales[i]) || !(zeros[i] >= 0 && zeros[i] <= q.maxq) || zeros[i] != floor(zeros[i]))
        return lk_fail(LK_EARG, "%s: static group %td of row %td has scale %g and zero %g, expected a positive scale and an integer zero in [0, %g]",
                       fn, i / (rows ? rows : 1), i % (rows ? rows : 1), scales[i], zeros[i], q.maxq);
  double* err = lk_alloc(sizeof(double) * (size_t)(rows ? rows : 1) * block);
  /* one row's block-start values per thread: a row is swept by one thread at a time */
  const int nthreads = omp_get_max_threads();
  double* snap = lk_alloc(sizeof(double) * (size_t)nthreads * cols);
  if (!err || !snap) {
    free(err);
    free(snap);
    return lk_fail(LK_ENOMEM, "%s: cannot allocate the %d×%d work arrays", fn, rows, cols);
  }
  int bad = 0, bad_row = 0, bad_col = 0; /* the first failed group, reported after the loop */
  for (int i1 = 0; i1 < cols && !bad; i1 += block) {
    const int i2 = i1 + block < cols ? i1 + block : cols, count = i2 - i1;
#pragma omp parallel for schedule(static) if ((double)rows * count * count > 65536)
    for (int r = 0; r < rows; r++) {
      double* wr = w + (ptrdiff_t)r * cols;
      if (i1 >= qcols) { /* a block of kept columns: nothing to quantize, no error to spread */
        for (int i = 0; i < count; i++) levels[(ptrdiff_t)r * cols + i1 + i] = 0, err[(ptrdiff_t)r * block + i] = 0;
        continue;
      }
      double* sr = snap + (ptrdiff_t)omp_get_thread_num() * cols;
      const uint8_t* mr = has_mask ? mask + (ptrdiff_t)r * cols : NULL;
      uint8_t* lr = levels + (ptrdiff_t)r * cols;
      /* the columns that groups starting in this block read (per row: all, in the first block) */
      const int hi = is_static ? i1 : group ? (i2 + group < cols ? i2 + group : cols) : (i1 == 0 ? cols : i1);
      for (int j = i1; j < hi; j++) sr[j] = mr && mr[j] ? 0 : wr[j];
      for (int i = 0; i < count; i++) {
        const int c = i1 + i;
        if (c >= qcols) {
          lr[c] = 0, err[(ptrdiff_t)r * block + i] = 0;
          continue;
        }
        const ptrdiff_t k = (ptrdiff_t)col_group[c] * rows + r;
        if (!is_static && (group ? c % group == 0 : c == 0)) {
          const int end = group ? (c + group < cols ? c + group : cols) : cols;
          const int why = find_params(&q, sr + c, end - c, &scales[k], &zeros[k]);
          if (why) {
#pragma omp critical(lk_gptq_bad)
            if (!bad) bad = why, bad_row = r, bad_col = c;
            scales[k] = 1, zeros[k] = 0; /* finish the block; the error is reported after it */
          }
        }
        const double s = scales[k], z = zeros[k], x = wr[c];
        const double lv = mr && mr[c] ? z : level(x, s, z, q.maxq);
        const double qv = s * (lv - z), e = (x - qv) / u[(ptrdiff_t)c * cols + c];
        lr[c] = (uint8_t)lv;
        wr[c] = qv;
        err[(ptrdiff_t)r * block + i] = e;
        if (e != 0) {
          const double* uc = u + (ptrdiff_t)c * cols;
          for (int j = c + 1; j < i2; j++) wr[j] -= e * uc[j];
        }
      }
    }
    if (i2 < cols && rows > 0 && i1 < qcols) /* W[:, i2:] -= Err · U[i1:i2, i2:] */
      lk_dgemm(rows, cols - i2, count, -1.0, err, 0, block, 1, u + (ptrdiff_t)i1 * cols + i2, 0, cols, 1, 1.0, w + i2,
               cols, 0);
  }
  free(err);
  free(snap);
  if (bad)
    return lk_fail(LK_ENUMERICAL, "%s: the group at row %d, sweep column %d %s", fn, bad_row, bad_col,
                   bad == 1 ? "holds a weight that is not finite" : "gives no positive scale");
  return LK_OK;
}
